"""Running an OPE suite (:func:`run_ope_suite`) and writing what it measured.

The run folder:

- ``suite.json``: the suite;
- ``cells/ENV__BEHAVIOUR__seedS.json``: one finished (env, behaviour, seed): every target's truth and every
  estimate at every size. A rerun reads finished cells back and runs the rest (resume);
- ``results.csv``: one row per (env, behaviour, target, estimator, rounds, seed): estimate, its standard
  error, the truth and the error;
- ``table.csv``: the same over seeds: bias, standard deviation, RMSE and relative RMSE, with 95% intervals;
- ``summary.md``: the tables to read, per env; ``relative_rmse.png``: relative RMSE against log size.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from rlrec import _progress
from rlrec.errors import NotAFolderError, PathTakenError
from rlrec.files import LOCK_FILES, OPE_FORMAT, FolderInUseError, FolderLock, atomic_write_text, check_folder_command
from rlrec.ope.suite import SEED_STRIDE, OPESuite, OPESuiteError, get_suite

FORMAT = OPE_FORMAT  # suite.json says so: rlrec.files.FOLDER_FORMATS
CONFIDENCE = 0.95
BOOTSTRAP = 2000  # resamples of the seeds for the RMSE intervals


def _cell_path(out: Path, env: str, behaviour: str, seed: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{env}__{behaviour}")
    return out / "cells" / f"{safe}__seed{seed}.json"


def check_run_folder(out: str | os.PathLike) -> None:
    """Refuses, before anything is written there, a ``--out`` that cannot hold an OPE suite run: a file, another
    command's run folder, or a folder of other files (which ``results.csv`` or ``summary.md`` could overwrite).
    A new or empty folder, or one holding an OPE suite run (to resume), passes."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotAFolderError(f"{out} is a file, not a folder; choose another --out.")
    check_folder_command(out, "rlrec ope")
    if out.is_dir() and not (out / "suite.json").exists() and any(p.name not in LOCK_FILES for p in out.iterdir()):
        raise PathTakenError(f"{out} exists and does not hold an OPE suite run (no suite.json); choose another --out.")


def _prepare(suite: OPESuite, out: Path) -> None:
    """Writes ``suite.json``, or checks that the folder's suite is this one (resume; only a new number of seeds
    may differ, which continues the run: each seed's log is a cell of its own)."""
    path = out / "suite.json"
    description = {"format": FORMAT, **json.loads(suite.to_json())}
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except ValueError as error:
            raise OPESuiteError(f"{path} is not valid JSON ({error}); delete {out} or choose another --out.") from None
        if {**existing, "seeds": 0} != {**description, "seeds": 0}:
            raise OPESuiteError(f"{out} holds another suite's run ({existing.get('name')!r} with other settings); "
                                "choose another --out, or delete the folder to start over.")
        if existing == description:
            return
        # Only the number of seeds changed: the finished seeds' logs stay valid (each seed is its own cell).
    atomic_write_text(path, json.dumps(description, indent=2))


def _run_cell(suite: OPESuite, env, params, behaviour, targets: dict, seed_index: int) -> dict:
    """One env x behaviour x seed: the log at the largest size, each target's truth and estimates at each size."""
    from rlrec.ope.collector import collect
    from rlrec.ope.evaluation import evaluate
    from rlrec.ope.truth import true_value

    started = time.perf_counter()
    seed = suite.seed * SEED_STRIDE + seed_index
    log = collect(env, params, behaviour, max(suite.sizes), steps_per_user=suite.steps_per_user, seed=seed)
    rows = []
    for target_name, target in targets.items():
        truth = true_value(env, params, target, log, seed=seed)
        for size in suite.sizes:
            part = log.head(size)
            evaluation = evaluate(env, params, part, target, estimators=suite.estimators or None, seed=seed)
            value = float(truth.per_round[:size].mean())
            for estimator, (estimate, stderr) in evaluation.estimates.items():
                rows.append({"target": target_name, "estimator": estimator, "rounds": size, "estimate": estimate,
                             "stderr": stderr, "truth": value})
    return {"seed": seed_index, "behaviour_value": float(log.expected_reward.mean()), "rows": rows,
            "seconds": time.perf_counter() - started}


@dataclasses.dataclass
class OPESuiteResult:
    """What a suite run measured: the per-seed rows and the table over seeds."""

    suite: OPESuite
    results: pd.DataFrame
    table: pd.DataFrame
    ran: int  # cells run now (the rest were read back)
    cells: int


def run_ope_suite(suite: OPESuite | str, out: str | os.PathLike, *, progress: bool | None = True,
                  on_cell: Callable[[str], None] | None = None) -> OPESuiteResult:
    """Runs ``suite`` (or resumes it) in the folder ``out`` and writes its outputs (see the module docstring)."""
    suite = (get_suite(suite) if isinstance(suite, str) else suite).validate()
    out = Path(out)
    check_run_folder(out)
    try:
        with FolderLock(out, "OPE suite run"):
            _prepare(suite, out)
            ran = _run_cells(suite, out, progress, on_cell)
            return _finish(suite, out, ran)
    except FolderInUseError as error:
        raise OPESuiteError(str(error)) from None


def _run_cells(suite: OPESuite, out: Path, progress, on_cell) -> int:
    import rlrec
    from rlrec.ope.build import make_policy
    from rlrec.ope.collector import check_memory

    todo = [(env_id, behaviour, seed) for env_id in suite.envs for behaviour in suite.behaviours
            for seed in range(suite.seeds) if not _cell_path(out, env_id, behaviour, seed).exists()]
    common = {"train_users": suite.train_users, "train_steps": suite.train_steps, "seed": suite.seed}
    # Every env and behaviour first, and the memory of each one's largest log checked, so a size that does not
    # fit is refused before any cell runs, not after the cells of the envs before it.
    built = {}
    for env_id in dict.fromkeys(env for env, _, _ in todo):
        env, params = rlrec.make(env_id)
        behaviours = {name: make_policy(name, env, params, **common)
                      for name in dict.fromkeys(b for e, b, _ in todo if e == env_id)}
        for behaviour in behaviours.values():
            check_memory(env, params, behaviour, max(suite.sizes), steps_per_user=suite.steps_per_user)
        built[env_id] = env, params, behaviours
    total = len(suite.envs) * len(suite.behaviours) * suite.seeds
    display = _progress.Progress(total, f"OPE suite {suite.name}", "cell", initial=total - len(todo)) \
        if _progress.wanted(progress) and todo else None
    ran = 0
    try:
        for env_id, (env, params, behaviours) in built.items():
            targets = {name: make_policy(name, env, params, **common) for name in suite.targets}
            for behaviour_name, behaviour in behaviours.items():
                for seed in [s for e, b, s in todo if e == env_id and b == behaviour_name]:
                    cell = _run_cell(suite, env, params, behaviour, targets, seed)
                    cell.update(env=env_id, behaviour=behaviour_name)
                    atomic_write_text(_cell_path(out, env_id, behaviour_name, seed), json.dumps(cell))
                    ran += 1
                    if display is not None:
                        display.update(1, status=f"{env_id}, {behaviour_name}, seed {seed}")
                    if on_cell is not None:
                        on_cell(f"{env_id} {behaviour_name} seed {seed}")
    finally:
        if display is not None:
            display.close()
    return ran


def _read_rows(suite: OPESuite, out: Path) -> pd.DataFrame:
    rows = []
    for env_id in suite.envs:
        for behaviour in suite.behaviours:
            for seed in range(suite.seeds):
                cell = json.loads(_cell_path(out, env_id, behaviour, seed).read_text())
                for row in cell["rows"]:
                    rows.append({"env": env_id, "behaviour": behaviour, "seed": seed, **row})
    frame = pd.DataFrame(rows)
    frame["error"] = frame["estimate"] - frame["truth"]
    return frame


def summarise(results: pd.DataFrame, confidence: float = CONFIDENCE, seed: int = 0) -> pd.DataFrame:
    """Over seeds, per (env, behaviour, target, estimator, rounds): the mean truth; bias (mean error) with its
    interval (Student t over seeds); standard deviation; RMSE and RMSE / truth with percentile-bootstrap intervals
    over seeds; how many logs left the estimate undefined (e.g. SNIPS when no logged round is one the target
    shows: its weights sum to 0)."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    keys = ["env", "behaviour", "target", "estimator", "rounds"]
    rows = []
    for key, group in results.groupby(keys, sort=False):
        errors = group["error"].to_numpy(float)
        defined = errors[np.isfinite(errors)]
        truth = float(group["truth"].mean())
        row = dict(zip(keys, key, strict=True), truth=truth, seeds=len(errors), undefined=len(errors) - len(defined))
        if len(defined) >= 2:
            rmse = float(np.sqrt(np.mean(defined ** 2)))
            resampled = rng.choice(defined, size=(BOOTSTRAP, len(defined)))
            low, high = np.quantile(np.sqrt(np.mean(resampled ** 2, axis=1)), [(1 - confidence) / 2,
                                                                               (1 + confidence) / 2])
            t = float(stats.t.ppf(0.5 + confidence / 2, len(defined) - 1))
            half = t * defined.std(ddof=1) / np.sqrt(len(defined))
            row.update(bias=float(defined.mean()), bias_low=float(defined.mean() - half),
                       bias_high=float(defined.mean() + half), std=float(defined.std(ddof=1)), rmse=rmse,
                       rmse_low=float(low), rmse_high=float(high), relative_rmse=rmse / truth,
                       relative_rmse_low=float(low) / truth, relative_rmse_high=float(high) / truth)
        rows.append(row)
    return pd.DataFrame(rows)


def _finish(suite: OPESuite, out: Path, ran: int) -> OPESuiteResult:
    from rlrec.ope import report

    results = _read_rows(suite, out)
    table = summarise(results, seed=suite.seed)
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    atomic_write_text(out / "table.csv", table.to_csv(index=False))
    result = OPESuiteResult(suite, results, table, ran, len(suite.envs) * len(suite.behaviours) * suite.seeds)
    atomic_write_text(out / "summary.md", report.summary_markdown(result))
    report.plot_relative_rmse(result, out / "relative_rmse.png")
    return result
