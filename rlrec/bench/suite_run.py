"""Running a benchmark suite (:class:`rlrec.bench.suite.Suite`) into a run folder, cell by cell, resumable.

Each (env, agent) cell is one :func:`rlrec.run` call: one jitted program, vmapped over seeds and
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
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rlrec import _progress
from rlrec.bench import report
from rlrec.bench.suite import Suite, SuiteError, get_suite
from rlrec.bench.suite_results import Cell, SuiteResult, write_outputs
from rlrec.files import (
    BENCH_FORMAT,
    LOCK_FILES,
    FolderInUseError,
    FolderLock,
    atomic_save_npz,
    atomic_write_text,
    check_folder_command,
    package_versions,
)

FORMAT = BENCH_FORMAT  # config.json says so: rlrec.files.FOLDER_FORMATS


# -- one cell ---------------------------------------------------------------------------------------------------


def _cell_path(out: Path, env: str, agent: str) -> Path:
    return out / "cells" / f"{env}__{agent}.npz"


def _cell_run_arguments(suite: Suite, env, agent_name: str) -> dict:
    """The arguments of ``runner.run`` (and ``runner.compile_run``) for one cell, after ``env, params``."""
    from rlrec.agents import make_agent

    base, settings = suite.agent_settings(agent_name)
    return dict(
        agent=make_agent(base, env, **settings).replace(label=agent_name), num_seeds=suite.seeds,
        num_steps=suite.steps, seed=suite.seed, mode=suite.mode, num_users=suite.users, accuracy_k=suite.accuracy_k,
    )


def _compile_cell(suite: Suite, env, params, agent_name: str) -> float:
    """Compiles a cell's programs ahead (in a worker thread); 0 if that fails: its run then raises the error."""
    from rlrec.rollout.runner import compile_run

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

    from rlrec.rollout.runner import run

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
            raise SuiteError(
                f"{config_path} is not valid JSON ({error}); delete {out} or choose another --out."
            ) from None
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


# -- running the cells ------------------------------------------------------------------------------------------


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
    check_folder_command(out, "rlrec bench")  # before the lock, which would write into another command's folder
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
    holds the GIL, so two programs at a time is what a 2-core CPU gains from; more threads would only contend.
    With ``jax.distributed`` every process must compile the same programs in the same order, so the suite then
    compiles as it goes.

    What the threads share is safe to share: they build agents (small frozen pytrees) and trace and compile
    programs, reading the env, params and catalog that the main thread built before and never changes; builders
    they may reach are memoised per key under a lock (``rlrec._lazy.memoised``); and each program's key names its
    agent's class (``rlrec.agents.pytree.ClassKeyed``: without it, JAX's caches could hand one agent class
    another's program, threads or not, issue 38). ``benchmarks/compile_ahead_stress.py`` runs suites cold, again
    and again.
    """
    import jax

    if len(os.sched_getaffinity(0)) < 2 or jax.process_count() > 1:
        return None
    from concurrent.futures import ThreadPoolExecutor

    # What the threads import, imported here first, so that no thread meets a module another is still running.
    import rlrec.agents.registry
    import rlrec.rollout.runner  # noqa: F401

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
            from rlrec.envs.registry import catalog_extras, make

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
                extras = catalog_extras(env)
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


__all__ = ["FORMAT", "environment_info", "run_suite"]
