"""``rlrec train`` and ``rlrec evaluate``: train an agent into a run folder (metrics, checkpoints, resume), and
evaluate a saved checkpoint, frozen, on fresh simulated users."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from rlrec.agents.names import agent_names
from rlrec.cli import output
from rlrec.cli.options import (
    ENV_HELP,
    EnvOverrides,
    Hyperparameters,
    ListsAgents,
    hyperparameters_for,
    parse_assignments,
)
from rlrec.cli.output import fail, print_evaluation, print_settings


class TrainCommand(ListsAgents):
    @staticmethod
    def agent_help() -> str:
        return f"{', '.join(agent_names('deep'))} (or any agent: {', '.join(agent_names())})."


def train(
    env_id: Annotated[str, typer.Option("--env", help=ENV_HELP)] = "MovieLens-Session-v0",
    agent: Annotated[str, typer.Option("--agent", "-a")] = "ppo",  # help: TrainCommand's
    seeds: Annotated[int, typer.Option(help="Independent training seeds (vmapped).", min=1)] = 4,
    users: Annotated[int, typer.Option(help="Simulated users per seed, stepping in parallel.", min=1)] = 256,
    iterations: Annotated[int, typer.Option(help="Training iterations (rollout + update each).", min=1)] = 300,
    chunk: Annotated[int, typer.Option(help="Iterations per metrics row and checkpoint.", min=1)] = 25,
    seed: Annotated[int, typer.Option(help="Root seed.")] = 0,
    env_overrides: EnvOverrides = None,
    hyperparameters: Hyperparameters = None,
    out: Annotated[Path, typer.Option(help="Run folder: config, metrics.csv, checkpoints.")] = Path("runs/train"),
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    list_hp: Annotated[bool, typer.Option("--list-hp", help="Show the agent's hyperparameters and exit.")] = False,
) -> None:
    """Train an agent (DQN/SlateQ, PPO, REINFORCE, ...) with checkpoints, metrics and resume."""
    import json

    from rlrec.agents import AGENTS, hyperparameter_specs
    from rlrec.files import atomic_write_text
    from rlrec.train.run import EVALUATION_FILE, TrainConfig, run_training
    from rlrec.train.run import evaluate as evaluate_run

    if agent not in AGENTS:
        fail(f"Unknown agent {agent!r}; choose one of {', '.join(AGENTS)}.")
    if list_hp:
        output.console.print(f"[bold]{agent}[/] hyperparameters (--hp name=value)")
        print_settings([(name, repr(default), spec.describe(), spec.meaning)
                         for name, (default, spec) in sorted(hyperparameter_specs(agent).items())])
        return
    try:
        config = TrainConfig(
            env=env_id,
            agent=agent,
            hyperparameters=hyperparameters_for([agent], hyperparameters)[agent],
            env_overrides=parse_assignments(env_overrides, "--set"),
            seeds=seeds,
            users=users,
            iterations=iterations,
            chunk=chunk,
            seed=seed,
        )
        result = run_training(config, out, resume=resume)
    except KeyboardInterrupt as interrupt:
        output.console.print(f"[yellow]{interrupt}[/]")
        raise typer.Exit(code=130)
    speed = result.env_steps / max(result.wall_time, 1e-9)
    output.console.print(
        f"trained {agent} on {env_id}: {result.env_steps:,} env steps in {result.wall_time:.1f} s "
        f"({speed:,.0f} steps/s incl. compilation); run folder {out}", highlight=False,
    )
    output.console.print(f"evaluating the trained learners on fresh users (as `rlrec evaluate {out}` does)",
                         highlight=False)
    summary = evaluate_run(out)  # the defaults of `rlrec evaluate`, so both report the same numbers
    # JSON has no NaN: an episode return with no finished episode is written as null.
    clean = {**summary, "seeds": [{k: None if isinstance(v, float) and not np.isfinite(v) else v
                                   for k, v in row.items()} for row in summary["seeds"]]}
    atomic_write_text(out / EVALUATION_FILE, json.dumps(clean, indent=2, allow_nan=False) + "\n")
    print_evaluation(summary, out)
    output.console.print(f"wrote {out / EVALUATION_FILE}; `rlrec evaluate {out}` reproduces it", highlight=False)


def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `rlrec train`.")],
    step: Annotated[Optional[int], typer.Option(help="Checkpoint iteration (default: the latest).")] = None,
    seeds: Annotated[
        Optional[int],
        typer.Option(help="Evaluation seeds (fresh user streams) per trained seed [default: those of the evaluation "
                     "that ends `rlrec train`; the table says how many].", min=1, show_default=False),
    ] = None,
    steps: Annotated[
        Optional[int],
        typer.Option(help="Steps per evaluation seed [default: as `rlrec train`'s evaluation].", min=1,
                     show_default=False),
    ] = None,
    greedy: Annotated[
        Optional[bool], typer.Option("--greedy/--sampled", help="Greedy or sampled actions (default: per agent).")
    ] = None,
) -> None:
    """Evaluate a saved checkpoint, frozen, on fresh simulated users (episode return, CTR, regret)."""
    from rlrec.train.run import evaluate as evaluate_run

    given = {k: v for k, v in (("num_seeds", seeds), ("num_steps", steps)) if v is not None}
    summary = evaluate_run(run_dir, step=step, deterministic=greedy, **given)
    print_evaluation(summary, run_dir)
