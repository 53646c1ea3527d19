"""Summaries (means with confidence intervals over seeds), tables and plots of runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rlrec import metrics
from rlrec.bench.runner import RunResult

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
}


def per_seed_metrics(
    result: RunResult, num_items: int, popularity: np.ndarray | None = None, genres: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """``(S,)`` values of every summary metric, one per seed."""
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
    return values


def summarise(result: RunResult, num_items: int, popularity=None, genres=None, confidence=0.95) -> dict:
    """``{metric: (mean, half_width)}`` over seeds (Student-t interval)."""
    summary = {}
    for name, values in per_seed_metrics(result, num_items, popularity, genres).items():
        finite = values[np.isfinite(values)]
        if len(finite) == 0:
            summary[name] = (math.nan, math.nan)
            continue
        mean, half = metrics.mean_confidence_interval(finite, confidence)
        summary[name] = (float(mean), float(half))
    return summary


def format_value(mean: float, half: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "-"
    if not np.isfinite(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def plot_regret(results: Sequence[RunResult], path: str | Path, title: str | None = None, confidence=0.95) -> Path:
    """Cumulative regret curves (mean over seeds) with confidence bands; written as PNG or SVG by suffix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axis = plt.subplots(figsize=(7, 4.5), dpi=120)
    for result in results:
        curves = result.cumulative_regret()
        mean, half = metrics.mean_confidence_interval(curves, confidence)
        steps = np.arange(1, curves.shape[1] + 1)
        (line,) = axis.plot(steps, mean, label=result.agent)
        if np.all(np.isfinite(half)):
            axis.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
    axis.set_xlabel("step")
    axis.set_ylabel("cumulative regret (expected clicks)")
    seeds = results[0].num_seeds if results else 0
    axis.set_title(title or f"{results[0].env_id}: mean over {seeds} seeds, {int(confidence * 100)}% CI")
    axis.grid(alpha=0.3)
    axis.legend(frameon=False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{path.suffix}")
    figure.savefig(temporary)
    plt.close(figure)
    temporary.replace(path)
    return path
