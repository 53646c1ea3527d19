"""An OPE suite's summary (``summary.md``) and plot (``relative_rmse.png``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rlrec.bench.report import legend_below, pyplot
from rlrec.ope.specs import parse_policy

ASSUMPTIONS = {
    "dm": "the reward model is right",
    "ips": "the behaviour shows every target slate",
    "snips": "as IPS; consistent, biased in small logs",
    "dr": "propensities or the model right",
    "sndr": "as DR, self-normalised",
    "switch-dr": "DR where w <= sqrt(n), DM beyond",
    "iips": "each slot's click depends on its item only",
    "rips": "slot j's click depends on slots 1..j (cascade)",
    "pi": "slate reward additive over slots",
}


def _percent(value: float, low: float, high: float) -> str:
    if not np.isfinite(value):
        return "-"
    digits = 0 if value >= 0.095 else 1
    return f"{100 * value:.{digits}f}% [{100 * low:.{digits}f}, {100 * high:.{digits}f}]"


def _signed(value: float, low: float, high: float) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{value:+.4f} [{low:+.4f}, {high:+.4f}]"


def summary_markdown(result) -> str:
    """The run's tables: per env, behaviour and target, each estimator's relative RMSE at each log size and its
    bias at the largest, over the suite's seeds (95% intervals)."""
    suite, table = result.suite, result.table
    largest = max(suite.sizes)
    sizes = ", ".join(f"{size:,}" for size in suite.sizes)
    lines = [
        f"# OPE suite `{suite.name}`",
        "",
        suite.description,
        "",
        f"- Logs of {sizes} rounds ({suite.steps_per_user} rounds per simulated user), {suite.seeds} seeds per "
        "env and behaviour; the smaller logs are the first rounds of the largest.",
        "- **Truth**: the target's exact expected clicks per round on the logged users (the simulator's choice "
        "model, no sampling), averaged over the rounds of each log. Every error is estimate minus truth.",
        "- **Relative RMSE** = sqrt(mean over seeds of error²) / mean truth, 95% percentile-bootstrap interval over "
        "seeds. **Bias** = mean error, 95% Student-t interval. `-`: undefined in more than half of the logs "
        "(e.g. SNIPS when no logged slate is the target's).",
        f"- Targets that learn (LinUCB) were trained in shared mode on {suite.train_users} users x "
        f"{suite.train_steps} steps of their own, then frozen and greedy on their estimate.",
        "",
    ]
    for env in suite.envs:
        lines += [f"## {env}", ""]
        env_table = table[table["env"] == env]
        for behaviour in suite.behaviours:
            for target in suite.targets:
                part = env_table[(env_table["behaviour"] == behaviour) & (env_table["target"] == target)]
                if part.empty:
                    continue
                truth = float(part[part["rounds"] == largest]["truth"].mean())
                lines += [f"### logged by {parse_policy(behaviour).label}, target {parse_policy(target).label} (true "
                          f"value {truth:.4f} clicks per round)", ""]
                header = ["estimator"] + [f"rel. RMSE, {size:,}" for size in suite.sizes] + \
                    [f"bias at {largest:,}", "assumes"]
                lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                for estimator in dict.fromkeys(part["estimator"]):
                    cells = [f"`{estimator}`"]
                    for size in suite.sizes:
                        row = part[(part["estimator"] == estimator) & (part["rounds"] == size)]
                        cells.append(_cell(row, _percent, "relative_rmse"))
                    cells.append(_cell(part[(part["estimator"] == estimator) & (part["rounds"] == largest)],
                                       _signed, "bias"))
                    cells.append(ASSUMPTIONS.get(estimator, ""))
                    lines.append("| " + " | ".join(cells) + " |")
                lines.append("")
    lines += ["![relative RMSE against log size](relative_rmse.png)", ""]
    return "\n".join(lines)


def reported(rows):
    """The rows of a suite's table whose estimate is defined in at least half of the logs; the others show as
    ``-`` in the summary, the terminal and the plot (e.g. SNIPS when no logged slate is the target's)."""
    if "relative_rmse" not in rows:  # no row had two defined seeds: summarise wrote no error columns
        return rows.iloc[:0]
    return rows[rows["undefined"] * 2 <= rows["seeds"]]


def _cell(rows, formatter, column: str) -> str:
    rows = reported(rows)
    if rows.empty:
        return "-"
    row = rows.iloc[0]
    return formatter(row[column], row[f"{column}_low"], row[f"{column}_high"])


def plot_relative_rmse(result, path: str | Path) -> Path:
    """Relative RMSE against log size, one line per estimator (95% bootstrap bars), one panel per env, behaviour
    and target (log-log)."""
    plt = pyplot()
    suite, table = result.suite, result.table
    panels = [(env, behaviour, target) for env in suite.envs for behaviour in suite.behaviours
              for target in suite.targets]
    columns = len(suite.targets) * min(len(suite.behaviours), 2)
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.8 * columns, 3.1 * rows + 1.0), dpi=110, squeeze=False)
    estimators = list(dict.fromkeys(table["estimator"]))
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(estimators)}
    for axis, (env, behaviour, target) in zip(axes.ravel(), panels, strict=False):
        part = table[(table["env"] == env) & (table["behaviour"] == behaviour) & (table["target"] == target)]
        for estimator in estimators:
            line = reported(part[part["estimator"] == estimator]).sort_values("rounds")
            line = line[np.isfinite(line["relative_rmse"].to_numpy(float))] if not line.empty else line
            if line.empty:
                continue
            y = line["relative_rmse"].to_numpy(float)
            spread = np.stack([y - line["relative_rmse_low"].to_numpy(float),
                               line["relative_rmse_high"].to_numpy(float) - y])
            axis.errorbar(line["rounds"], y, yerr=np.maximum(spread, 0.0), marker="o", markersize=3, capsize=2,
                          color=colours[estimator], label=estimator, linewidth=1.2)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(f"{env.removesuffix('-v0')}\n{parse_policy(behaviour).label} -> {parse_policy(target).label}",
                       fontsize=8)
        axis.set_xlabel("logged rounds", fontsize=8)
        axis.set_ylabel("relative RMSE", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3, which="both")
    for axis in axes.ravel()[len(panels):]:
        axis.set_visible(False)
    return legend_below(figure, list(axes.ravel()[: len(panels)]), 9,
                         f"OPE suite {suite.name}: relative RMSE against the exact truth ({suite.seeds} seeds)", path)
