"""``rlrec run``: agents on one environment, a table of their metrics (95% CI) and a run folder (summary.csv,
regret.png, config.json) that is never overwritten silently and never shared by two runs."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Annotated, Optional

import typer

from rlrec.agents.names import agent_names
from rlrec.bench.suite import MAX_COUNT, MAX_SEED
from rlrec.cli import output
from rlrec.cli.options import (
    ENV_HELP,
    EnvOverrides,
    Hyperparameters,
    ListsAgents,
    hyperparameters_for,
    parse_assignments,
    whole_number_option,
)
from rlrec.cli.output import explain_missing_episodes, fail, print_summaries
from rlrec.envs.specs import REGISTRY
from rlrec.errors import PathTakenError
from rlrec.files import RUN_FORMAT

RUN_FILES = ("summary.csv", "regret.png", "config.json")  # what `rlrec run` writes into its folder


def _run_folder(out: Path | None, overwrite: bool) -> Path | None:
    """Checks ``--out`` before anything runs: a folder holding an earlier run is never overwritten silently.

    Returns ``out``, or ``None`` for the default: a new folder per run, named when the results are written.
    """
    if out is None:
        return None
    from rlrec.files import check_folder_command, folder_command

    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file, not a folder; choose another --out for the run.")
    check_folder_command(out, "rlrec run")
    held = [name for name in RUN_FILES if (out / name).exists()]
    if "config.json" in held and folder_command(out) != "rlrec run":
        fail(f"--out {out} holds another kind of run (its config.json is not from `rlrec run`); choose another "
              "--out.")
    if held and not overwrite:
        fail(f"--out {out} already holds a run ({', '.join(held)}); choose another --out, or add --overwrite to "
              "replace it.")
    return out


def _new_run_folder(env_id: str) -> Path:
    """``runs/run-ENV-YYYYmmdd-HHMMSS`` (``-2``, ``-3``, ... when a run of the same second has it): created here,
    once, so two runs never share a folder."""
    import time

    stem = Path("runs") / f"run-{env_id}-{time.strftime('%Y%m%d-%H%M%S')}"
    for count in range(1, 1000):
        folder = stem if count == 1 else stem.with_name(f"{stem.name}-{count}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise PathTakenError(f"Too many runs named {stem}-*; pass --out.")


class RunCommand(ListsAgents):
    @staticmethod
    def agent_help() -> str:
        rollouts = ", ".join(agent_names("rollouts"))
        return ("Agent; repeat to compare several (default: random, linucb, lm-linucb, oracle). One of: "
                f"{', '.join(agent_names(without=['rollouts']))} ({rollouts}: `rlrec train`).")


def run(
    env_id: Annotated[str, typer.Option("--env", help=ENV_HELP)] = "MovieLens-BanditSlate-v0",
    agents: Annotated[Optional[list[str]], typer.Option("--agent", "-a")] = None,  # help: RunCommand's
    seeds: Annotated[int, whole_number_option("Independent seeds (vmapped, sharded over devices).", 1, MAX_COUNT)] = 8,
    steps: Annotated[int, whole_number_option("Steps per seed.", 1, MAX_COUNT)] = 200,
    mode: Annotated[
        str, typer.Option(help="personal (one learner per user) or shared (one for a batch).")
    ] = "personal",
    users: Annotated[int, whole_number_option("Users per seed in shared mode.", 1, MAX_COUNT)] = 64,
    seed: Annotated[int, whole_number_option("Root random seed.", 0, MAX_SEED)] = 0,
    accuracy_k: Annotated[
        int, whole_number_option("Size of each user's true top set for accuracy@k.", 0, MAX_COUNT)
    ] = 10,
    env_overrides: EnvOverrides = None,
    hyperparameters: Hyperparameters = None,
    out: Annotated[
        Optional[Path],
        typer.Option(help="Folder for summary.csv, regret.png and config.json (default: a new runs/run-ENV-TIME)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run already in --out.")] = False,
) -> None:
    """Run agents on an environment: a table of regret, CTR, diversity and accuracy (95% CI), and a regret plot."""
    from rlrec.agents import AGENTS
    from rlrec.agents.base import check_hyperparameters
    from rlrec.envs.registry import check_overrides
    from rlrec.files import FolderLock
    from rlrec.rollout.modes import MODES

    agents = agents or ["random", "linucb", "lm-linucb", "oracle"]
    if env_id.removeprefix("rlrec/") not in REGISTRY:
        fail(f"Unknown environment {env_id!r}; choose one of: {', '.join(sorted(REGISTRY))}.")
    unknown = [name for name in agents if name not in AGENTS]
    if unknown:
        fail(f"Unknown agent(s) {unknown}; choose from: {', '.join(AGENTS)}.")
    for name in agents:
        if name in agent_names("rollouts"):
            fail(f"{name} learns from rollouts: train it with `rlrec train --agent {name}`, then "
                  "`rlrec evaluate RUN_DIR`.")
        if name in agent_names("asks") and not REGISTRY[env_id.removeprefix("rlrec/")].conversational:
            fail(f"{name} asks questions: use a Conversational env such as MovieLens-Conversational-v0 "
                  f"(`rlrec envs` lists them), not {env_id}.")
    if mode not in MODES:
        fail(f"--mode must be one of {MODES}, got {mode!r}.")
    overrides = parse_assignments(env_overrides, "--set")
    hyper = hyperparameters_for(agents, hyperparameters)
    check_overrides(env_id.removeprefix("rlrec/"), overrides)
    for name in agents:  # hyperparameters first: cheap, and a mistake should not wait for the catalog
        check_hyperparameters(AGENTS[name][0], hyper[name], agent=name)
    out = _run_folder(out, overwrite)
    with contextlib.ExitStack() as stack:
        if out is not None:  # held until the results are written: a second `rlrec run --out` here is refused
            stack.enter_context(FolderLock(out, "`rlrec run` folder"))
        _run_and_write(env_id, agents, overrides, hyper, out, seeds=seeds, steps=steps, mode=mode, users=users,
                       seed=seed, accuracy_k=accuracy_k)


def _run_and_write(env_id: str, agents: list[str], overrides: dict, hyper: dict, out: Path | None, **settings) -> None:
    """The part of `rlrec run` after its input is checked: build, run every agent, print, write."""
    import csv
    import json

    from rlrec.agents import make_agent
    from rlrec.bench import report
    from rlrec.envs.registry import catalog_extras, make
    from rlrec.files import atomic_write_text
    from rlrec.rollout import run as run_agent

    seeds, steps, mode = settings["seeds"], settings["steps"], settings["mode"]
    env, params = make(env_id, **overrides)
    built = [make_agent(name, env, **hyper[name]) for name in agents]
    popularity, genres = catalog_extras(env)

    results, summaries = [], {}
    for agent in built:
        result = run_agent(
            env, params, agent, num_seeds=seeds, num_steps=steps, seed=settings["seed"], mode=mode,
            num_users=settings["users"], accuracy_k=settings["accuracy_k"], chunk_size=max(1, steps // 10),
            progress=True,
        )
        results.append(result)
        summaries[agent.name] = report.summarise(result, env.num_items(params), popularity, genres)

    wall_times = {agent.name: result.wall_time for agent, result in zip(built, results)}
    print_summaries(f"{env.name}: {mode} mode, {seeds} seeds x {steps} steps, mean ± 95% CI", summaries, wall_times)
    explain_missing_episodes(summaries, steps, int(params.max_steps))

    out = out or _new_run_folder(env.name)
    out.mkdir(parents=True, exist_ok=True)
    lines = [["env", "agent", "mode", "seeds", "steps", "metric", "mean", "ci95_half_width"]]
    for agent_name, summary in summaries.items():
        lines += [
            [env.name, agent_name, mode, seeds, steps, name, mean, half] for name, (mean, half) in summary.items()
        ]
        lines.append([env.name, agent_name, mode, seeds, steps, "wall_time_s", wall_times[agent_name], ""])
    with io.StringIO() as text:
        csv.writer(text).writerows(lines)
        atomic_write_text(out / "summary.csv", text.getvalue())
    config = {
        "format": RUN_FORMAT, "env": env.name, "agents": agents, **settings,
        "users": settings["users"] if mode == "shared" else None, "env_overrides": overrides, "hyperparameters": hyper,
    }
    atomic_write_text(out / "config.json", json.dumps(config, indent=2, default=str) + "\n")
    report.plot_regret(results, out / "regret.png")
    output.console.print(f"wrote {out}/: summary.csv (every metric), regret.png, config.json")
