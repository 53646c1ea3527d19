"""Regret benchmark suites: a grid of environments x agents x seeds x horizon, run cell by cell, resumable.

Each (env, agent) cell is one :func:`rlrec.bench.runner.run` call: one jitted program, vmapped over seeds and
sharded over every device, so the same command uses 1 CPU, 8 forced CPU devices or an accelerator (and gives
the same numbers on each). A run folder holds::

    DIR/config.json          the suite (what was asked) + environment (versions, devices, command)
    DIR/cells/ENV__AGENT.npz one finished cell: per-seed metrics and cumulative-regret curves
    DIR/results.csv, .json   tidy results: one row per env / agent / seed
    DIR/summary.md           mean and 95% confidence interval per cell, best per env in bold
    DIR/regret.png           cumulative regret with confidence bands, one panel per env
    DIR/regret_vs_diversity.png

Every file is written atomically. A cell is saved as soon as it finishes; running the same suite into the same
folder again skips finished cells, and a folder written by a different suite is refused (never mixed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rlrec import _progress, _repr
from rlrec.bench import report
from rlrec.files import LOCK_FILES, FolderInUseError, FolderLock, atomic_save_npz, atomic_write_text, package_versions

FORMAT = "rlrec-bench-suite/1"


class SuiteError(ValueError):
    """A suite that cannot run as asked (bad config, or a folder holding a different suite)."""


@dataclasses.dataclass(frozen=True)
class Suite:
    """A benchmark grid. Every cell uses the same root ``seed``, so agents meet the same simulated users.

    Attributes:
        name: the suite's name (recorded, and used in titles).
        envs: registered environment ids.
        agents: agent names (see ``rlrec.agents.AGENTS``); agents that learn from whole rollouts (PPO,
            REINFORCE) are trained with ``rlrec train`` instead.
        seeds: independent seeds per cell (vmapped, sharded over devices).
        steps: steps per seed (the horizon of the regret curves).
        mode: ``personal`` (one learner per user, cold start) or ``shared`` (one learner per batch of users).
        users: users per seed in shared mode (personal mode: one per seed; left out of the suite's JSON).
        accuracy_k: size of each user's true top set for precision/recall/NDCG@k.
        seed: root random seed.
        env_overrides: ``{env_id: {name: value}}`` passed to :func:`rlrec.make` (e.g. a longer ``max_steps``).
        hyperparameters: ``{agent: {name: value}}`` passed to :func:`rlrec.agents.make_agent`.
        description: one line for humans.
    """

    name: str
    envs: tuple[str, ...]
    agents: tuple[str, ...]
    seeds: int
    steps: int
    mode: str = "personal"
    users: int = 64
    accuracy_k: int = 10
    seed: int = 0
    env_overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    hyperparameters: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "envs", tuple(e.removeprefix("rlrec/") for e in self.envs))
        object.__setattr__(self, "agents", tuple(self.agents))

    @property
    def cells(self) -> list[tuple[str, str]]:
        """``(env, agent)`` pairs in run order (env by env)."""
        return [(env, agent) for env in self.envs for agent in self.agents]

    def validate(self) -> Suite:
        """Checks names and sizes without building anything (cheap); raises :class:`SuiteError`."""
        from rlrec.agents import AGENTS
        from rlrec.agents.base import check_hyperparameters
        from rlrec.bench.runner import MODES
        from rlrec.envs.registry import REGISTRY, check_overrides

        problems = []
        if not self.envs or not self.agents:
            problems.append("a suite needs at least one env and one agent")
        for name, value in (("seeds", self.seeds), ("steps", self.steps), ("users", self.users)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.accuracy_k, bool) or not isinstance(self.accuracy_k, int) or self.accuracy_k < 0:
            problems.append(f"accuracy_k must be an integer >= 0, got {self.accuracy_k!r}")
        if self.mode not in MODES:
            problems.append(f"mode must be one of {MODES}, got {self.mode!r}")
        for kind, names in (("env", self.envs), ("agent", self.agents)):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                problems.append(f"{kind}s listed twice: {repeated}")
        unknown_envs = [env for env in self.envs if env not in REGISTRY]
        if unknown_envs:
            problems.append(f"unknown env(s) {unknown_envs}; registered: {', '.join(sorted(REGISTRY))}")
        unknown_agents = [agent for agent in self.agents if agent not in AGENTS]
        if unknown_agents:
            problems.append(f"unknown agent(s) {unknown_agents}; choose from {', '.join(AGENTS)}")
        for agent in self.agents:
            cls = AGENTS.get(agent, (None,))[0]
            if getattr(cls, "learns_from_rollouts", False):
                problems.append(f"{agent} learns from whole rollouts: train it with `rlrec train`, not in a suite")
        for env, overrides in self.env_overrides.items():
            if env not in self.envs:
                problems.append(f"env_overrides names {env!r}, which is not one of the suite's envs")
            try:
                check_overrides(env, overrides)
            except ValueError as error:
                problems.append(str(error).rstrip("."))
        for agent, settings in self.hyperparameters.items():
            if agent not in self.agents:
                problems.append(f"hyperparameters names {agent!r}, which is not one of the suite's agents")
            elif agent in AGENTS:
                try:
                    check_hyperparameters(AGENTS[agent][0], dict(AGENTS[agent][1], **settings), agent=agent)
                except ValueError as error:
                    problems.append(str(error).rstrip("."))
        if problems:
            raise SuiteError(f"Suite {self.name!r} is not valid: " + "; ".join(problems) + ".")
        return self

    def to_json(self) -> dict[str, Any]:
        """The suite as JSON reads it back (tuples become lists), so saved and asked suites compare equal.

        ``users`` is left out in personal mode: each seed is then one user, and the field would mean nothing.
        """
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        if self.mode == "personal":
            del data["users"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Suite:
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise SuiteError(f"Unknown suite field(s) {unknown}; a suite has {sorted(fields)}.")
        missing = sorted(name for name in ("name", "envs", "agents", "seeds", "steps") if name not in data)
        if missing:
            raise SuiteError(f"A suite needs the field(s) {missing}.")
        wrong = [
            f"{name} must be {kind}, got {data[name]!r}"
            for name, kind, ok in (
                ("name", "a string", lambda v: isinstance(v, str)),
                ("description", "a string", lambda v: isinstance(v, str)),
                ("mode", "a string", lambda v: isinstance(v, str)),
                ("envs", "a list of env ids", lambda v: isinstance(v, list) and all(isinstance(e, str) for e in v)),
                ("agents", "a list of agent names", lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v)),
                ("env_overrides", "an object {env: {name: value}}",
                 lambda v: isinstance(v, dict) and all(isinstance(o, dict) for o in v.values())),
                ("hyperparameters", "an object {agent: {name: value}}",
                 lambda v: isinstance(v, dict) and all(isinstance(o, dict) for o in v.values())),
            )
            if name in data and not ok(data[name])
        ]
        if wrong:
            raise SuiteError("Suite JSON: " + "; ".join(wrong) + ".")
        return cls(**data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Suite:
        """A suite from a JSON file with the fields of :class:`Suite`."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise SuiteError(f"Cannot read a suite from {path}: {error}") from None
        if not isinstance(data, dict):
            raise SuiteError(f"{path} must hold a JSON object with the fields of a suite.")
        return cls.from_json(data)


_BANDITS = ("random", "popularity", "epsilon-greedy", "ucb1", "linucb", "lints", "lm-linucb", "lm-lints")

SUITES: dict[str, Suite] = {
    "quick": Suite(
        name="quick",
        description="Bandits on MovieLens, one item and slates of 5, 8 cold-start users x 200 steps (minutes on a laptop CPU).",
        envs=("MovieLens-Bandit-v0", "MovieLens-BanditSlate-v0"),
        agents=_BANDITS,
        seeds=8,
        steps=200,
    ),
    "standard": Suite(
        name="standard",
        description=(
            "Every bandit (and the text-match and oracle references) on MovieLens bandit, drift and session "
            "slates and the 58,788-title IMDB catalog; 32 cold-start users x 500 steps."
        ),
        envs=(
            "MovieLens-Bandit-v0",
            "MovieLens-BanditSlate-v0",
            "MovieLens-DriftSlate-v0",
            "MovieLens-SessionSlate-v0",
            "IMDB-BanditSlate-v0",
        ),
        agents=("random", "popularity", "text-match", *_BANDITS[2:], "oracle"),
        seeds=32,
        steps=500,
        # Users stay for the whole horizon in the bandit and drift settings (default 200 steps), so each curve
        # is one learner on one user; session users still leave when unsatisfied.
        env_overrides={
            env: {"max_steps": 500}
            for env in ("MovieLens-Bandit-v0", "MovieLens-BanditSlate-v0", "MovieLens-DriftSlate-v0", "IMDB-BanditSlate-v0")
        },
    ),
}


def get_suite(name_or_path: str | os.PathLike) -> Suite:
    """A built-in suite by name, or one loaded from a JSON file."""
    if str(name_or_path) in SUITES:
        return SUITES[str(name_or_path)]
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        return Suite.load(path)
    raise SuiteError(f"Unknown suite {str(name_or_path)!r}; built-in suites are {sorted(SUITES)}, or pass a JSON file.")


# -- one cell ---------------------------------------------------------------------------------------------------


def _cell_path(out: Path, env: str, agent: str) -> Path:
    return out / "cells" / f"{env}__{agent}.npz"


def catalog_extras(env_id: str, overrides: dict[str, Any]):
    """Popularity and genres of the env's catalog (for novelty and genre entropy), when it has them."""
    from rlrec.data import Catalog, load_catalog
    from rlrec.envs.registry import DEFAULT_DIM, REGISTRY

    catalog = overrides.get("catalog", REGISTRY[env_id].catalog)
    if isinstance(catalog, str):
        catalog = load_catalog(catalog, dim=overrides.get("dim", DEFAULT_DIM), model_path=overrides.get("model_path"))
    if not isinstance(catalog, Catalog):
        return None, None
    return catalog.popularity, catalog.genres


def _cell_run_arguments(suite: Suite, env, agent_name: str) -> dict:
    """The arguments of ``runner.run`` (and ``runner.compile_run``) for one cell, after ``env, params``."""
    from rlrec.agents import make_agent

    return dict(
        agent=make_agent(agent_name, env, **suite.hyperparameters.get(agent_name, {})), num_seeds=suite.seeds,
        num_steps=suite.steps, seed=suite.seed, mode=suite.mode, num_users=suite.users, accuracy_k=suite.accuracy_k,
    )


def _compile_cell(suite: Suite, env, params, agent_name: str) -> float:
    """Compiles a cell's programs ahead (in a worker thread); 0 if that fails: its run then raises the error."""
    from rlrec.bench.runner import compile_run

    try:
        return compile_run(env, params, **_cell_run_arguments(suite, env, agent_name))
    except Exception:  # noqa: BLE001 - reported by the cell's own run, in the main thread, with its context
        return 0.0


def _run_cell(suite: Suite, env, params, env_id: str, agent_name: str, extras,
              compiled_ahead: float = 0.0) -> dict[str, np.ndarray]:
    """Runs one cell and returns what its file stores.

    ``compiled_ahead``: seconds a worker thread spent compiling this cell's programs before it ran, added to the
    cell's compile and wall times (two programs compiling at once each take longer than one alone, so these
    overstate what the cell would cost by itself; the suite as a whole takes less).
    """
    import jax

    from rlrec.bench.runner import run

    result = run(env, params, **_cell_run_arguments(suite, env, agent_name))
    result.compile_time += compiled_ahead
    result.wall_time += compiled_ahead
    popularity, genres = extras
    values = report.per_seed_metrics(result, env.num_items(params), popularity, genres)
    info = {
        "env": env_id,
        "agent": agent_name,
        "suite": suite.to_json(),
        "wall_time_s": result.wall_time,
        "compile_time_s": result.compile_time,
        "compiled_ahead": compiled_ahead > 0,
        "user_steps": result.user_steps(),
        "devices": result.devices,
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
    }
    return {
        "info": np.asarray(json.dumps(info)),
        "cumulative_regret": result.cumulative_regret().astype(np.float32),
        **{f"metric/{name}": np.asarray(value, np.float64) for name, value in values.items()},
    }


@dataclasses.dataclass
class Cell:
    """A finished cell read back from its file."""

    env: str
    agent: str
    metrics: dict[str, np.ndarray]  # name -> (S,) per-seed values
    cumulative_regret: np.ndarray  # (S, T)
    info: dict[str, Any]

    @classmethod
    def from_arrays(cls, arrays) -> Cell:
        """A cell from what its file stores (a dict, or an open ``.npz``)."""
        info = json.loads(str(arrays["info"]))
        metrics = {key.removeprefix("metric/"): np.asarray(arrays[key]) for key in arrays if key.startswith("metric/")}
        return cls(info["env"], info["agent"], metrics, np.asarray(arrays["cumulative_regret"]), info)

    @classmethod
    def read(cls, path: Path) -> Cell:
        with np.load(path, allow_pickle=False) as data:
            return cls.from_arrays({key: data[key] for key in data.files})

    def __repr__(self) -> str:
        """Names, size, mean final regret and time (not the regret curves or the recorded environment)."""
        seeds, steps = self.cumulative_regret.shape if self.cumulative_regret.ndim == 2 else (0, 0)
        regret = float(np.mean(self.cumulative_regret[:, -1])) if seeds and steps else float("nan")
        return _repr.call(
            "Cell",
            {
                "env": self.env,
                "agent": self.agent,
                "seeds": seeds,
                "steps": steps,
                "cumulative_regret": round(regret, 3),
                "metrics": len(self.metrics),
                "wall_time": round(float(self.info.get("wall_time_s", float("nan"))), 2),
            },
        )


# -- the run folder ---------------------------------------------------------------------------------------------


def environment_info() -> dict[str, Any]:
    """What produced the numbers: versions, platform, devices and the command line."""
    import jax

    return {
        "versions": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "devices": [str(device) for device in jax.devices()],
        "process_count": jax.process_count(),
        "command": " ".join(sys.argv),
    }


def _comparable(saved: Any) -> Any:
    """A saved suite (config.json, a cell's info) as :meth:`Suite.to_json` writes it now: folders written before
    it left ``users`` out in personal mode (where it means nothing) still hold it, and still resume."""
    if isinstance(saved, dict) and saved.get("mode") == "personal":
        return {name: value for name, value in saved.items() if name != "users"}
    return saved


def _differences(saved: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    return [
        f"{name}: saved {saved.get(name)!r}, asked {asked.get(name)!r}"
        for name in sorted(set(saved) | set(asked))
        if saved.get(name) != asked.get(name)
    ]


def _prepare(suite: Suite, out: Path) -> None:
    """Creates ``out`` for ``suite`` or checks that it already holds this suite."""
    config_path = out / "config.json"
    suite_json = suite.to_json()
    if config_path.exists():
        try:
            saved = json.loads(config_path.read_text())
        except json.JSONDecodeError as error:
            raise SuiteError(f"{config_path} is not valid JSON ({error}); delete {out} or choose another --out.") from None
        if saved.get("format") != FORMAT:
            raise SuiteError(f"{config_path} has format {saved.get('format')!r}, not {FORMAT!r}; choose another --out.")
        different = _differences(_comparable(saved.get("suite", {})), suite_json)
        if different:
            raise SuiteError(
                f"{out} holds results of a different suite ({'; '.join(different)}). Results are never mixed: "
                "rerun with the same settings to resume, or choose another --out."
            )
        return
    if out.exists() and any(path.name not in LOCK_FILES for path in out.iterdir()):
        raise SuiteError(f"{out} exists and does not hold a benchmark suite (no config.json); choose another --out.")
    atomic_write_text(
        config_path,
        json.dumps({"format": FORMAT, "suite": suite_json, "environment": environment_info()}, indent=2) + "\n",
    )


@dataclasses.dataclass
class SuiteResult:
    """A finished (or partly finished) suite: its cells, tidy rows and per-cell summaries."""

    suite: Suite
    out: Path
    cells: list[Cell]
    ran: list[tuple[str, str]]  # cells computed by this call (the rest were read back)

    def rows(self) -> list[dict[str, Any]]:
        """Tidy results: one dict per env / agent / seed."""
        rows = []
        for cell in self.cells:
            seconds = cell.info["wall_time_s"]
            for index in range(self.suite.seeds):
                row = {"env": cell.env, "agent": cell.agent, "mode": self.suite.mode, "seed_index": index,
                       "root_seed": self.suite.seed, "steps": self.suite.steps,
                       "users": self.suite.users if self.suite.mode == "shared" else 1}
                row.update({name: float(values[index]) for name, values in cell.metrics.items()})
                running = seconds - cell.info["compile_time_s"]
                row.update(
                    cell_wall_time_s=round(seconds, 3),
                    cell_compile_time_s=round(cell.info["compile_time_s"], 3),
                    cell_user_steps_per_s=round(cell.info["user_steps"] / max(running, 1e-9), 1),
                    backend=cell.info["backend"],
                    device_kind=cell.info["device_kind"],
                    devices=len(cell.info["devices"]),
                )
                rows.append(row)
        return rows

    def summary(self, confidence: float = 0.95) -> dict[tuple[str, str], dict[str, tuple[float, float]]]:
        """``{(env, agent): {metric: (mean, half_width)}}`` over seeds (Student-t)."""
        return {(cell.env, cell.agent): report.mean_intervals(cell.metrics, confidence) for cell in self.cells}

    @property
    def wall_time(self) -> float:
        return float(sum(cell.info["wall_time_s"] for cell in self.cells))

    @property
    def compile_time(self) -> float:
        return float(sum(cell.info["compile_time_s"] for cell in self.cells))

    @property
    def user_steps(self) -> int:
        return int(sum(cell.info["user_steps"] for cell in self.cells))

    def __repr__(self) -> str:
        return _repr.call(
            "SuiteResult",
            {
                "suite": self.suite.name,
                "envs": len(self.suite.envs),
                "agents": len(self.suite.agents),
                "cells": len(self.cells),
                "ran": len(self.ran),
                "seeds": self.suite.seeds,
                "steps": self.suite.steps,
                "mode": self.suite.mode,
                "out": str(self.out),
                "wall_time": round(self.wall_time, 2),
            },
        )


def _write_tables(result: SuiteResult) -> None:
    rows = result.rows()
    if not rows:
        return
    columns = list(dict.fromkeys(name for row in rows for name in row))
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(result.out / "results.csv", buffer.getvalue())
    clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()} for row in rows]
    atomic_write_text(result.out / "results.json", json.dumps(clean, indent=1) + "\n")
    atomic_write_text(result.out / "summary.md", report.suite_markdown(result))


def write_outputs(result: SuiteResult) -> list[Path]:
    """Tables (CSV, JSON, Markdown) and plots of ``result``; returns the paths written."""
    _write_tables(result)
    report.plot_suite_regret(result, result.out / "regret.png")
    report.plot_regret_vs_diversity(result, result.out / "regret_vs_diversity.png")
    return [result.out / name for name in ("results.csv", "results.json", "summary.md", "regret.png", "regret_vs_diversity.png")]


def run_suite(
    suite: Suite | str,
    out: str | os.PathLike,
    *,
    progress: bool | None = True,
    on_cell: Callable[[Cell], None] | None = None,
    compile_ahead: bool = True,
) -> SuiteResult:
    """Runs every cell of ``suite`` not yet finished in ``out``, then writes tables and plots.

    Args:
        suite: a :class:`Suite`, a built-in name (``quick``, ``standard``) or a JSON file.
        out: the run folder; created, or resumed when it holds the same suite.
        progress: ``True``: a progress bar over cells where someone watches (a terminal or a notebook), plain
            lines on stderr elsewhere (one per environment built and per cell, with its compile and run times);
            ``None``: the bar where someone watches, nothing elsewhere; ``False``: nothing. A suite whose cells
            are all finished shows nothing.
        on_cell: called with each cell as it finishes (e.g. to print it).
        compile_ahead: compile the next cells' programs in worker threads while earlier cells compile and run
            (the same numbers either way; off on one core and with several processes).

    Raises:
        SuiteError: an invalid suite, or ``out`` holding something else (a different suite, other files).
    """
    import jax

    suite = get_suite(suite) if not isinstance(suite, Suite) else suite
    suite.validate()
    out = Path(out)
    writer = jax.process_index() == 0  # with jax.distributed, every process runs; one writes
    if not writer:
        return _run_cells(suite, out, writer, progress, on_cell, compile_ahead)
    # One process writes a run folder at a time: a second run on the same folder is refused (naming who holds
    # it) instead of mixing its config, cells or results with the first's.
    try:
        with FolderLock(out, "benchmark run"):
            _prepare(suite, out)
            return _run_cells(suite, out, writer, progress, on_cell, compile_ahead)
    except FolderInUseError as error:
        raise SuiteError(str(error)) from None


def _compile_ahead_pool():
    """Two compiling threads on a machine with two or more cores and one process; else ``None``.

    XLA compiles one program with about 1.5 of 2 cores (its LLVM code generation is partly parallel) and tracing
    holds the GIL, so two programs at a time is what a 2-core CPU gains from: the quick suite, cold, took 76-79 s
    against 87-92 s one program at a time (alternating runs, the same numbers); more threads would only contend.
    With ``jax.distributed`` every process must compile the same programs in the same order, so the suite then
    compiles as it goes.
    """
    import jax

    if len(os.sched_getaffinity(0)) < 2 or jax.process_count() > 1:
        return None
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="rlrec-compile")


class _SuiteProgress:
    """A suite's progress: one bar over cells (the current cell and phase in its postfix) where someone watches,
    else plain lines: one per environment built, one per cell (its compile and run times) and a last one.

    The estimate of the time left is the mean time of the cells run so far, leaving out two kinds of one-off
    work: building environments (loading, and the first time encoding, a catalog: its own bar or lines) and
    the first cell this call runs (the first compilations, which start cold and alone).
    """

    def __init__(self, suite: Suite, finished: int):
        self.cells = suite.cells
        todo = len(self.cells) - finished
        self.progress = _progress.Progress(
            len(self.cells), f"suite {suite.name}", "cell", initial=finished, interval=None,
            announce=f"{todo} of {len(self.cells)} cells to run ({finished} finished before)" if finished
            else f"{todo} cells to run",
        )
        self.building_s = 0.0
        self.ran = 0

    def set_status(self, status: str) -> None:
        self.progress.set_status(status)

    @contextlib.contextmanager
    def building(self, env_id: str):
        self.progress.set_status(f"building {env_id}")
        began = time.perf_counter()
        with self.progress.excluded():
            yield
        seconds = time.perf_counter() - began
        self.building_s += seconds
        self.progress.note(f"built {env_id} in {_progress.duration(seconds)}")

    def cell_done(self, cell: Cell, last: bool) -> None:
        info = cell.info
        self.ran += 1
        # The first cell's cold start is not what the others will take: the estimate counts from the second.
        self.progress.update(1, status="", restart=self.ran == 1 and not last)
        ahead = " ahead" if info.get("compiled_ahead") else ""
        number = self.cells.index((cell.env, cell.agent)) + 1
        self.progress.note(
            f"cell {number}/{len(self.cells)} {cell.env} x {cell.agent}: compiled "
            f"{_progress.duration(info['compile_time_s'])}{ahead}, ran "
            f"{_progress.duration(info['wall_time_s'] - info['compile_time_s'])} ({self.progress.so_far()})"
        )

    def close(self) -> None:
        if self.progress.n < self.progress.total:  # an error is on its way
            self.progress.close()
            return
        took = _progress.duration(time.perf_counter() - self.progress.started)
        building = _progress.duration(self.building_s)
        building = f" (building environments: {building})" if self.building_s >= 0.05 else ""
        self.progress.close(f"{self.ran} cell{'s' if self.ran != 1 else ''} in {took}{building}")


def _run_cells(suite: Suite, out: Path, writer: bool, progress: bool | None, on_cell, compile_ahead: bool = True
               ) -> SuiteResult:
    """Runs the cells of ``suite`` missing from ``out``, then (``writer``) writes tables and plots."""
    done: dict[tuple[str, str], Cell] = {}
    for env_id, agent in suite.cells:
        path = _cell_path(out, env_id, agent)
        if path.exists():
            cell = Cell.read(path)
            if _comparable(cell.info.get("suite")) != suite.to_json():
                raise SuiteError(f"{path} was written by a different suite; delete it or choose another --out.")
            done[(env_id, agent)] = cell

    ran = []
    # Nothing is shown when every cell is already finished (a resumed, finished suite).
    shown = _progress.wanted(progress) and len(done) < len(suite.cells)
    display = _SuiteProgress(suite, len(done)) if shown else None
    pool = _compile_ahead_pool() if compile_ahead else None
    try:
        for env_id in suite.envs:
            todo = [agent for agent in suite.agents if (env_id, agent) not in done]
            if not todo:
                continue
            from rlrec.envs.registry import make

            overrides = dict(suite.env_overrides.get(env_id, {}))
            # Building an env loads its catalog (and encodes it, the first time: minutes): one-off work that
            # the estimate of the time left leaves out.
            with display.building(env_id) if display else contextlib.nullcontext():
                try:
                    env, params = make(env_id, **overrides)
                except ValueError as error:
                    raise SuiteError(f"Cannot build {env_id} for suite {suite.name!r}: {error}") from None
                if suite.accuracy_k > env.num_items(params):
                    raise SuiteError(f"accuracy_k={suite.accuracy_k} is larger than {env_id}'s catalog.")
                extras = catalog_extras(env_id, overrides)
            # The cells' programs are compiled by worker threads, in order, while earlier cells compile and run;
            # a cell waits for its own before it runs (so nothing is compiled twice).
            ahead = [pool.submit(_compile_cell, suite, env, params, agent) for agent in todo] if pool else None
            for index, agent in enumerate(todo):
                if display:
                    waits = ahead is not None and not ahead[index].done()
                    display.set_status(f"{env_id} / {agent}: " + (
                        "compiling" if waits else "running" if ahead else "compiling and running"))
                compiled_ahead = ahead[index].result() if ahead else 0.0
                if display and ahead:
                    display.set_status(f"{env_id} / {agent}: running")
                arrays = _run_cell(suite, env, params, env_id, agent, extras, compiled_ahead)
                path = _cell_path(out, env_id, agent)
                if writer:
                    atomic_save_npz(path, **arrays)
                cell = Cell.from_arrays(arrays)
                done[(env_id, agent)] = cell
                ran.append((env_id, agent))
                if on_cell is not None:
                    on_cell(cell)
                if display:
                    display.cell_done(cell, last=len(done) == len(suite.cells))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # an error or Ctrl-C: drop what has not started
        if display:
            display.close()
    result = SuiteResult(suite, out, [done[key] for key in suite.cells], ran)
    if writer:
        write_outputs(result)
    return result


__all__ = ["SUITES", "Cell", "Suite", "SuiteError", "SuiteResult", "environment_info", "get_suite", "run_suite",
           "write_outputs"]
