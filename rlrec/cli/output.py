"""What the ``rlrec`` commands print: the console, the one-line errors, and terminal tables fitted to the width.

A table never cuts a name or wraps a value: it shows as many columns as fit and names the ones left out. The
commands print through ``output.console``, looked up when they print (not imported by name), so a test can
swap in a recording console in this one place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from rlrec.envs.specs import REGISTRY, SETTINGS

console = Console()
errors = Console(stderr=True)


def print_error(message: str) -> None:
    """``error: <message>`` on stderr, one line (the form of every refusal of the ``rlrec`` commands)."""
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


def fail(message: str) -> None:
    """Refuses the command's input: :func:`print_error`, then exit code 2 (the usage-error code)."""
    print_error(message)
    raise typer.Exit(code=2)


def _fits(table: Table) -> bool:
    """Whether ``table`` prints at its natural width (nothing cut, nothing wrapped) in the console."""
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    return natural <= console.width


def _fitted_table(
    first: str,
    rows: dict[str, dict[str, str]],
    columns: dict[str, str],
    styles: dict[tuple[str, str], str] | None = None,
) -> tuple[Table, list[str]]:
    """One row per name (never cut) and as many of ``columns`` (key -> label, in priority order) as fit the
    console width, each value on one line; returns the table and the labels of the columns left out.

    Rich would otherwise squeeze every column into the width, cutting names (``lm-lin…``) and wrapping values.
    """
    styles = styles or {}

    def build(keys: list[str]) -> Table:
        table = Table(show_edge=False, pad_edge=False)
        table.add_column(first, no_wrap=True)
        for key in keys:
            table.add_column(columns[key], justify="right", no_wrap=True)
        for name, values in rows.items():
            cells = [f"[{styles[name, k]}]{values[k]}[/]" if (name, k) in styles else values[k] for k in keys]
            table.add_row(escape(name), *cells)
        return table

    shown: list[str] = []
    for key in columns:
        if shown and not _fits(build([*shown, key])):
            break
        shown.append(key)
    return build(shown), [columns[key] for key in columns if key not in shown]


def explain_missing_episodes(summaries: dict[str, dict], steps: int, max_steps: int) -> None:
    """Says why the episode return is missing when no seed of any agent finished an episode."""
    if not any(np.isfinite(summary["episode_return"][0]) for summary in summaries.values()):
        console.print(f"episode return: no episode finished within {steps} steps (an episode lasts up to "
                      f"max_steps={max_steps} steps); give --steps {max_steps} or more to measure it.")


def print_summaries(title: str, summaries: dict[str, dict], wall_times: dict[str, float] | None = None,
                     bold: dict[str, set[str]] | None = None, more: str = "summary.csv") -> None:
    """The terminal table of one env: agents as rows, as many metric columns as fit, values as ``45.8 ± 13.0``."""
    from rlrec.bench import report

    columns = {m: label for m, label in report.TERMINAL_COLUMNS.items()
               if any(m in s and np.isfinite(s[m][0]) for s in summaries.values())}
    rows: dict[str, dict[str, str]] = {name: {} for name in summaries}
    for m in columns:
        for name, text in zip(summaries, report.format_column([summary[m] for summary in summaries.values()])):
            rows[name][m] = text
    if wall_times:
        columns["wall_time"] = "wall s"
        for name, seconds in wall_times.items():
            rows[name]["wall_time"] = f"{seconds:.1f}"
    styles = {(name, m): "bold" for m, names in (bold or {}).items() for name in names}
    table, left_out = _fitted_table("agent", rows, columns, styles)
    console.print(f"[bold]{escape(title)}[/]")
    console.print(table)
    if left_out:
        console.print(f"not shown at this width, in {more}: {', '.join(left_out)}")


def print_suite(result) -> None:
    """One fitted table per env of a suite run, the best value of each column in bold (as in summary.md)."""
    from rlrec.bench import report

    suite, summary = result.suite, result.summary()
    for env in suite.envs:
        cells = {agent: summary[(env, agent)] for agent in suite.agents if (env, agent) in summary}
        if not cells:
            continue
        bold = {m: report.best_agents(cells, m, lower) for m, (_, lower) in report.SUITE_COLUMNS.items()}
        console.print()
        print_summaries(f"{env}: {suite.seeds} seeds x {suite.steps} steps, mean ± 95% CI (best in bold)", cells,
                         bold=bold, more="results.csv")
        max_steps = suite.env_overrides.get(env, {}).get("max_steps", SETTINGS[REGISTRY[env].setting]["max_steps"])
        explain_missing_episodes(cells, suite.steps, int(max_steps))


def print_evaluation(summary: dict, out: Path) -> None:
    """The table of ``rlrec evaluate``: one row per trained seed, then their mean return with its 95% CI."""
    from rlrec.metrics import mean_confidence_interval

    actions = "greedy" if summary["deterministic"] else "sampled"
    console.print(
        f"[bold]evaluation of {escape(str(out))} at iteration {summary['iteration']} on fresh users: "
        f"{summary['num_seeds']} seeds x {summary['num_steps']} steps per trained seed, {actions} actions[/]"
    )
    table = Table(show_edge=False, pad_edge=False)
    for column in ("trained seed", "episode return", "CTR", "regret / step"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in summary["seeds"]:
        episode_return = f"{row['episode_return']:.2f}" if np.isfinite(row["episode_return"]) else "-"
        table.add_row(str(row["trained_seed"]), episode_return, f"{row['ctr']:.3f}", f"{row['regret_per_step']:.4f}")
    returns = [row["episode_return"] for row in summary["seeds"] if np.isfinite(row["episode_return"])]
    if returns:
        mean, half = mean_confidence_interval(returns)
        table.add_row("all", f"{mean:.2f} ± {half:.2f}" if len(returns) > 1 else f"{mean:.2f}", "", "")
    console.print(table)
    if len(returns) < len(summary["seeds"]):
        console.print(f"episode return: no episode ended within {summary['num_steps']} steps for some trained seeds "
                      "(nan); evaluate longer with `rlrec evaluate RUN_DIR --steps N`.")


def print_settings(rows: list[tuple[str, str, str, str]]) -> None:
    """``(name, default, valid values, meaning)`` rows: names and defaults whole, the rest wrapped at words."""
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("default", no_wrap=True)
    table.add_column("valid values: meaning", overflow="fold")
    for name, default, valid, meaning in rows:
        table.add_row(name, default, f"{valid}: {meaning}")
    console.print(table)
