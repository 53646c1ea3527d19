"""Summaries (means with confidence intervals over seeds), tables and plots of runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rlrec.rollout.runner import RunResult


def _metrics():
    """:mod:`rlrec.metrics`, imported on first use: it loads JAX, which ``rlrec bench --list`` does not need."""
    from rlrec import metrics

    return metrics

# Metric name -> what it means, in the order tables show them.
SUMMARY_METRICS = {
    "cumulative_regret": "sum of per-step regret (expected clicks lost to the oracle)",
    "ctr": "click-through rate",
    "expected_ctr": "mean P(click) of the shown slates",
    "episode_return": "mean clicks per finished episode",
    "precision": "precision@k against the user's true top items",
    "recall": "recall@k against the user's true top items",
    "ndcg": "NDCG@k against the user's true top items",
    "diversity": "intra-list diversity (mean pairwise cosine distance in a slate)",
    "coverage": "share of the catalog ever shown",
    "exposure_gini": "Gini coefficient of item exposure",
    "genre_entropy": "entropy (bits) of the genres shown",
    "novelty": "mean -log2 popularity share of shown items",
    "questions": "questions asked per user over the horizon (conversational envs only)",
}


def per_seed_metrics(
    result: RunResult, num_items: int, popularity: np.ndarray | None = None, genres: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """``(S,)`` values of every summary metric, one per seed."""
    metrics = _metrics()
    values = {
        "cumulative_regret": result.regret.sum(axis=1),
        "ctr": result.reward.mean(axis=1),
        "expected_ctr": result.expected_reward.mean(axis=1),
        "precision": result.precision.mean(axis=1),
        "recall": result.recall.mean(axis=1),
        "ndcg": result.ndcg.mean(axis=1),
        "diversity": result.diversity.mean(axis=1),
    }
    if result.mode == "personal":
        values["episode_return"] = np.array(
            [
                returns.mean() if len(returns) else np.nan
                for returns in (metrics.episode_returns(r, d) for r, d in zip(result.reward, result.done))
            ]
        )
    else:
        finished = result.done.sum(axis=1)
        clicks = result.reward.sum(axis=1) * result.num_users
        values["episode_return"] = np.where(finished > 0, clicks / np.maximum(finished, 1), np.nan)
    slates = result.slates.reshape(result.num_seeds, -1)
    exposure = np.stack([np.bincount(s[s >= 0], minlength=num_items) for s in slates]).astype(np.float32)
    values["coverage"] = np.asarray(metrics.coverage(exposure))
    values["exposure_gini"] = np.asarray(metrics.exposure_gini(exposure))
    if genres is not None:
        values["genre_entropy"] = np.asarray(metrics.genre_entropy(exposure, genres))
    if popularity is not None:
        values["novelty"] = np.asarray(metrics.novelty(slates, popularity)).reshape(result.num_seeds)
    if result.questions is not None:  # shared mode: the share of users asked each step, so this is per user too
        values["questions"] = result.questions.sum(axis=1)
    return values


def mean_intervals(per_seed: dict[str, np.ndarray], confidence: float = 0.95) -> dict[str, tuple[float, float]]:
    """``{metric: (mean, half_width)}`` of per-seed values (Student-t); NaN seeds are left out."""
    summary = {}
    for name, values in per_seed.items():
        values = np.asarray(values, np.float64)
        finite = values[np.isfinite(values)]
        if len(finite) == 0:
            summary[name] = (math.nan, math.nan)
            continue
        mean, half = _metrics().mean_confidence_interval(finite, confidence)
        summary[name] = (float(mean), float(half))
    return summary


def summarise(result: RunResult, num_items: int, popularity=None, genres=None, confidence=0.95) -> dict:
    """``{metric: (mean, half_width)}`` over seeds (Student-t interval)."""
    return mean_intervals(per_seed_metrics(result, num_items, popularity, genres), confidence)


def format_value(mean: float, half: float, digits: int = 3) -> str:
    """``mean ± half`` to a fixed number of decimals (``summary.md``); see :func:`format_estimate`."""
    return format_estimate(mean, half, digits)


def _decimals(mean: float, half: float, significant: int = 3, max_decimals: int = 3) -> int:
    """Decimals that show three significant digits of the half-width (of the mean when it is 0 or missing)."""
    scale = abs(half) if np.isfinite(half) and half != 0 else abs(mean) if np.isfinite(mean) else 0.0
    return 2 if scale == 0 else int(np.clip(significant - 1 - math.floor(math.log10(scale)), 0, max_decimals))


def format_estimate(mean: float, half: float, decimals: int | None = None) -> str:
    """``45.8 ± 13.0``: a mean and its half-width to the decimals the half-width supports, short enough for one
    terminal cell; ``-`` when there is no value."""
    if not np.isfinite(mean):
        return "-"
    decimals = _decimals(mean, half) if decimals is None else decimals
    text = f"{mean:.{decimals}f}"
    return f"{text} ± {half:.{decimals}f}" if np.isfinite(half) else text


def format_column(estimates: Sequence[tuple[float, float]]) -> list[str]:
    """:func:`format_estimate` of each ``(mean, half)`` with the decimals of the most precise one, so a column of
    a table lines up (``0.026 ± 0.078`` above ``0.000 ± 0.000``, not ``0.00 ± 0.00``)."""
    decimals = max((_decimals(mean, half) for mean, half in estimates if np.isfinite(mean)), default=2)
    return [format_estimate(mean, half, decimals) for mean, half in estimates]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | Path) -> Path:
    """Saves a figure atomically (PNG or SVG by suffix) and closes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        figure.savefig(temporary)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
        pyplot().close(figure)
    return path


def _regret_panel(axis, curves: dict[str, np.ndarray], colours: dict[str, str], confidence: float) -> None:
    """Mean cumulative regret per agent (``curves``: agent -> (S, T)) with a confidence band over seeds."""
    for agent, curve in curves.items():
        mean, half = _metrics().mean_confidence_interval(curve, confidence)
        steps = np.arange(1, curve.shape[1] + 1)
        axis.plot(steps, mean, label=agent, color=colours[agent])
        if np.all(np.isfinite(half)):
            axis.fill_between(steps, mean - half, mean + half, color=colours[agent], alpha=0.2, linewidth=0)
    axis.set_xlabel("step")
    axis.set_ylabel("cumulative regret (expected clicks)")
    axis.grid(alpha=0.3)


def agent_colours(agents: Sequence[str]) -> dict[str, str]:
    """One colour per agent, the same in every figure of a run."""
    palette = pyplot().get_cmap("tab10" if len(agents) <= 10 else "tab20")
    return {agent: palette(i % palette.N) for i, agent in enumerate(agents)}


def plot_regret(results: Sequence[RunResult], path: str | Path, title: str | None = None, confidence=0.95) -> Path:
    """Cumulative regret curves (mean over seeds) with confidence bands; written as PNG or SVG by suffix."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5), dpi=120)
    agents = [result.agent for result in results]
    _regret_panel(axis, {r.agent: r.cumulative_regret() for r in results}, agent_colours(agents), confidence)
    seeds = results[0].num_seeds if results else 0
    axis.set_title(title or f"{results[0].env_id}: mean over {seeds} seeds, {int(confidence * 100)}% CI")
    axis.legend(frameon=False)
    figure.tight_layout()
    return _save(figure, path)


# -- benchmark suites ---------------------------------------------------------------------------------------------

# Columns of a suite's Markdown table (all metrics are in its CSV/JSON) and whether lower is better.
# metric -> (column label, whether lower is better; None: no best, e.g. questions asked is a choice, not a score)
SUITE_COLUMNS = {
    "cumulative_regret": ("cumulative regret", True),
    "questions": ("questions", None),
    "ctr": ("CTR", False),
    "episode_return": ("episode return", False),
    "ndcg": ("NDCG@k", False),
    "diversity": ("ILD", False),
    "coverage": ("coverage", False),
    "exposure_gini": ("exposure Gini", True),
    "novelty": ("novelty", False),
}


# Every summary metric's column label, in the order terminal tables add them while they fit: the suite's columns
# first, then the rest (all of them are in the CSV files).
TERMINAL_COLUMNS = {
    **{metric: label for metric, (label, _) in SUITE_COLUMNS.items()},
    "expected_ctr": "expected CTR",
    "precision": "precision@k",
    "recall": "recall@k",
    "genre_entropy": "genre entropy",
}
assert set(TERMINAL_COLUMNS) == set(SUMMARY_METRICS)


def best_agents(summary: dict[str, dict[str, tuple[float, float]]], metric: str, lower_is_better: bool) -> set[str]:
    """Agents whose mean of ``metric`` is the best (ties included); empty when no agent has a finite value or the
    metric has no better direction (``lower_is_better`` None)."""
    means = {agent: values[metric][0] for agent, values in summary.items()
             if metric in values and np.isfinite(values[metric][0])}
    if not means or lower_is_better is None:
        return set()
    best = min(means.values()) if lower_is_better else max(means.values())
    return {agent for agent, mean in means.items() if np.isclose(mean, best, rtol=1e-9, atol=1e-12)}


def suite_markdown(result, confidence: float = 0.95) -> str:
    """``summary.md`` of a suite run: one table per env, mean ± CI half-width per cell, best in bold."""
    suite = result.suite
    summary = result.summary(confidence)
    digits = {"cumulative_regret": 2, "episode_return": 2}
    lines = [
        f"# Benchmark suite `{suite.name}`",
        "",
        suite.description,
        "",
        f"{suite.mode} mode, {suite.seeds} seeds x {suite.steps} steps per cell"
        + (f" ({suite.users} users per seed)" if suite.mode == "shared" else "")
        + f", root seed {suite.seed}, accuracy@{suite.accuracy_k}. Mean ± half-width of the {int(confidence * 100)}% "
        "Student-t interval over seeds. **Bold**: best in its column for that env (lowest cumulative regret and "
        "exposure Gini, highest otherwise). Every setting is in `config.json`; per-seed values in `results.csv`.",
    ]
    for env in suite.envs:
        cells = {agent: summary[(env, agent)] for agent in suite.agents if (env, agent) in summary}
        if not cells:
            continue
        columns = [m for m in SUITE_COLUMNS
                   if any(m in values and np.isfinite(values[m][0]) for values in cells.values())]
        best = {m: best_agents(cells, m, SUITE_COLUMNS[m][1]) for m in columns}
        lines += ["", f"## {env}", "", "| agent | " + " | ".join(SUITE_COLUMNS[m][0] for m in columns) + " |"]
        lines.append("| --- |" + " ---: |" * len(columns))
        for agent, values in cells.items():
            row = []
            for m in columns:
                text = format_value(*values.get(m, (np.nan, np.nan)), digits=digits.get(m, 3))
                row.append(f"**{text}**" if agent in best[m] else text)
            lines.append(f"| {agent} | " + " | ".join(row) + " |")
    backends = sorted(
        {f"{c.info['backend']} ({len(c.info['devices'])} x {c.info['device_kind']})" for c in result.cells}
    )
    seconds, compiling = result.wall_time, result.compile_time
    running = max(seconds - compiling, 1e-9)
    lines += [
        "",
        f"{len(result.cells)} cells, {result.user_steps:,} simulated user-steps in {seconds:.1f} s of cell time, "
        f"{compiling:.1f} s of it compiling: {result.user_steps / running:,.0f} user-steps/s while running "
        f"({result.user_steps / max(seconds, 1e-9):,.0f} with compilation) on {', '.join(backends)}"
        + ("; programs were compiled two at a time, so the cells' compile times overlap and add up to more than the "
           "time waited." if any(c.info.get("compiled_ahead") for c in result.cells) else "."),
        "",
    ]
    return "\n".join(lines)


def panel_grid(count: int, width: float = 5.0, height: float = 3.6):
    """``(figure, axes)``: ``count`` panels of ``width`` x ``height`` inches, up to 3 a row (``axes`` flat)."""
    plt = pyplot()
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows + 0.8), dpi=110, squeeze=False)
    for axis in axes.ravel()[count:]:
        axis.set_visible(False)
    return figure, axes.ravel()


def plot_suite_regret(result, path: str | Path, confidence: float = 0.95) -> Path:
    """Cumulative regret with confidence bands, one panel per env, one colour per agent."""
    suite = result.suite
    cells = {(c.env, c.agent): c for c in result.cells}
    colours = agent_colours(suite.agents)
    envs = [env for env in suite.envs if any((env, a) in cells for a in suite.agents)]
    figure, axes = panel_grid(len(envs))
    for axis, env in zip(axes, envs):
        curves = {a: cells[(env, a)].cumulative_regret for a in suite.agents if (env, a) in cells}
        _regret_panel(axis, curves, colours, confidence)
        axis.set_title(env, fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False, fontsize=8)
    figure.suptitle(
        f"suite {suite.name}: mean over {suite.seeds} seeds, {int(confidence * 100)}% CI bands", fontsize=11
    )
    figure.tight_layout(rect=(0, 0.07 + 0.03 * (len(labels) > 6), 1, 0.97))
    return _save(figure, path)


def plot_regret_vs_diversity(result, path: str | Path, confidence: float = 0.95) -> Path:
    """Final cumulative regret against diversity per agent, one panel per env, with CI error bars.

    Diversity is intra-list diversity on slate envs and catalog coverage where slates have one item (ILD is
    undefined there).
    """
    suite = result.suite
    summary = result.summary(confidence)
    colours = agent_colours(suite.agents)
    markers = {agent: "osD^vP*Xph<>"[i % 12] for i, agent in enumerate(suite.agents)}  # overlapping points differ
    envs = [env for env in suite.envs if any((env, a) in summary for a in suite.agents)]
    figure, axes = panel_grid(len(envs), width=4.6)
    for axis, env in zip(axes, envs):
        cells = {a: summary[(env, a)] for a in suite.agents if (env, a) in summary}
        use_ild = any(np.isfinite(values["diversity"][0]) for values in cells.values())
        x_name = "diversity" if use_ild else "coverage"
        for agent, values in cells.items():
            (x, x_half), (y, y_half) = values[x_name], values["cumulative_regret"]
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            # A legend, not labels beside the points: agents with close results would stack their labels.
            axis.errorbar(
                x, y, xerr=np.nan_to_num(x_half), yerr=np.nan_to_num(y_half), fmt=markers[agent],
                color=colours[agent], label=agent, capsize=2, markersize=6,
            )
        axis.set_xlabel("intra-list diversity (ILD)" if use_ild else "catalog coverage")
        axis.set_ylabel("final cumulative regret")
        axis.set_title(env, fontsize=10)
        axis.grid(alpha=0.3)
    return legend_below(figure, axes[: len(envs)], 5,
                         f"suite {suite.name}: regret vs diversity (mean ± {int(confidence * 100)}% CI)", path)


def legend_below(figure, axes, columns: int, title: str, path: str | Path) -> Path:
    """One legend under the panels (each label once, in ``columns`` columns), the title, then saves the figure."""
    labels = {}
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            labels.setdefault(label, handle)
    figure.legend(labels.values(), labels.keys(), loc="lower center", ncol=min(len(labels), columns), frameon=False,
                  fontsize=8)
    figure.suptitle(title, fontsize=11)
    rows = math.ceil(len(labels) / columns) if labels else 0
    figure.tight_layout(rect=(0, 0.05 * rows, 1, 0.96))
    return _save(figure, path)
