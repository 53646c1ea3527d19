"""A suite's results: finished cells read back from a run folder, tidy rows, summaries, tables and plots.

:func:`rlrec.bench.suite_run.run_suite` returns a :class:`SuiteResult` and writes its outputs with
:func:`write_outputs`; the run folder's layout is described there.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rlrec import _repr
from rlrec.bench import questions, report
from rlrec.bench.suite import Suite
from rlrec.files import atomic_write_text


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
    clean = [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()} for row in rows
    ]
    atomic_write_text(result.out / "results.json", json.dumps(clean, indent=1) + "\n")
    markdown = report.suite_markdown(result)
    talking = questions.questions_markdown(result)
    atomic_write_text(result.out / "summary.md", markdown + ("\n" + talking if talking else ""))


def _asked(result: SuiteResult) -> bool:
    """Whether any cell ran on a conversational env (it counts questions, asked or not)."""
    return any("questions" in cell.metrics for cell in result.cells)


def write_outputs(result: SuiteResult) -> list[Path]:
    """Tables (CSV, JSON, Markdown) and plots of ``result`` (on conversational envs also regret vs questions asked);
    returns the paths written."""
    _write_tables(result)
    report.plot_suite_regret(result, result.out / "regret.png")
    report.plot_regret_vs_diversity(result, result.out / "regret_vs_diversity.png")
    names = ["results.csv", "results.json", "summary.md", "regret.png", "regret_vs_diversity.png"]
    if _asked(result):
        questions.plot_regret_vs_questions(result, result.out / "regret_vs_questions.png")
        names.append("regret_vs_questions.png")
    return [result.out / name for name in names]


__all__ = ["Cell", "SuiteResult", "write_outputs"]
