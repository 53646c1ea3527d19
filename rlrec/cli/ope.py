"""``rlrec ope``: an off-policy evaluation suite (envs x behaviours x targets x estimators x log sizes), scored
against the simulator's exact truth; resumable; ``--list`` shows the built-in suites."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from rlrec.bench.suite import MAX_COUNT, MAX_SEED
from rlrec.cli import output
from rlrec.cli.options import whole_number_option
from rlrec.cli.output import fail


def ope(
    suite_name: Annotated[
        str, typer.Option("--suite", "-s", help="Built-in suite (quick, standard) or a JSON file describing one.")
    ] = "quick",
    out: Annotated[Optional[Path], typer.Option(help="Run folder (default: runs/ope-SUITE); rerun to resume.")] = None,
    seeds: Annotated[
        Optional[int],
        whole_number_option("Override the suite's seeds (more on an existing --out adds seeds).", 2, MAX_COUNT),
    ] = None,
    seed: Annotated[Optional[int], whole_number_option("Override the suite's root seed.", 0, MAX_SEED)] = None,
    list_suites: Annotated[bool, typer.Option("--list", help="List the built-in suites and exit.")] = False,
) -> None:
    """Score off-policy estimators against the exact truth: summary.md, tables and a plot (resumable)."""
    import dataclasses

    from rlrec.ope.suite import SUITES, OPESuiteError, get_suite

    if list_suites:
        for name, each in SUITES.items():
            output.console.print(f"[bold]{name}[/]: {escape(each.description)}", highlight=False)
            sizes = ", ".join(f"{size:,}" for size in each.sizes)
            output.console.print(f"  {each.seeds} seeds, logs of {sizes} rounds", highlight=False)
            output.console.print(f"  envs: {', '.join(each.envs)}", highlight=False)
            output.console.print(f"  behaviours: {', '.join(each.behaviours)}", highlight=False)
            output.console.print(f"  targets: {', '.join(each.targets)}", highlight=False)
        output.console.print("run one with `rlrec ope --suite NAME`; a JSON file describes your own", highlight=False)
        return
    from rlrec.ope.suite_run import check_run_folder, run_ope_suite

    try:
        chosen = get_suite(suite_name)
        changes = {k: v for k, v in (("seeds", seeds), ("seed", seed)) if v is not None}
        chosen = dataclasses.replace(chosen, **changes).validate()
        out = out or Path("runs") / f"ope-{chosen.name}"
        check_run_folder(out)  # before the line below says where the results go
        cells = len(chosen.envs) * len(chosen.behaviours) * chosen.seeds
        output.console.print(f"OPE suite {chosen.name}: {cells} logs ({len(chosen.envs)} envs x "
                             f"{len(chosen.behaviours)} behaviours x {chosen.seeds} seeds), {len(chosen.targets)} "
                             f"targets; results in {out}", highlight=False)
        result = run_ope_suite(chosen, out)
    except OPESuiteError as error:
        fail(str(error))
    if result.ran < result.cells:
        output.console.print(f"resumed: {result.cells - result.ran} finished logs were read back from {out}")
    _print_table(result)
    output.console.print(f"wrote {out}/: summary.md, table.csv, results.csv (per seed), relative_rmse.png",
                         highlight=False)


def _print_table(result) -> None:
    """Relative RMSE at the largest log size, per env: the estimators down, the (behaviour, target) pairs across
    (lettered, with a key below, so the table fits 80 columns)."""
    import numpy as np
    from rich.table import Table

    from rlrec.ope.report import reported
    from rlrec.ope.specs import parse_policy

    table, suite = result.table, result.suite
    largest = max(suite.sizes)
    at_largest = table[table["rounds"] == largest]
    pairs = [(behaviour, target) for behaviour in suite.behaviours for target in suite.targets]
    letters = {pair: chr(ord("A") + i) for i, pair in enumerate(pairs)}
    for env in suite.envs:
        part = at_largest[at_largest["env"] == env]
        output.console.print(f"{env}: relative RMSE at {largest:,} rounds ({suite.seeds} seeds)", highlight=False)
        grid = Table()
        grid.add_column("estimator")
        for pair in pairs:
            grid.add_column(letters[pair], justify="right")
        for estimator in dict.fromkeys(part["estimator"]):
            cells = []
            for behaviour, target in pairs:
                row = reported(part[(part["estimator"] == estimator) & (part["behaviour"] == behaviour)
                                    & (part["target"] == target)])
                value = float(row.iloc[0]["relative_rmse"]) if not row.empty else float("nan")
                cells.append(f"{100 * value:.0f}%" if np.isfinite(value) else "-")
            grid.add_row(estimator, *cells)
        output.console.print(grid)
    for pair, letter in letters.items():
        output.console.print(f"{letter}: logged by {parse_policy(pair[0]).label}, target {parse_policy(pair[1]).label}",
                             highlight=False)
    output.console.print("-: undefined in most logs (e.g. SNIPS when no logged slate is the target's)",
                         highlight=False)
