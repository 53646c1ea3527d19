"""``rlrec bench``: a regret benchmark suite (envs x agents x seeds), resumable; ``--list`` shows the built-in
suites."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from rlrec.bench.suite import MAX_COUNT, MAX_SEED
from rlrec.cli import output
from rlrec.cli.options import whole_number_option
from rlrec.cli.output import fail, print_suite


def bench(
    suite_name: Annotated[
        str, typer.Option("--suite", "-s",
                          help="Built-in suite (quick, standard, conversational) or a JSON file describing one.")
    ] = "quick",
    out: Annotated[
        Optional[Path], typer.Option(help="Run folder (default: runs/bench-SUITE); rerun to resume.")
    ] = None,
    seeds: Annotated[Optional[int], whole_number_option("Override the suite's seeds per cell.", 1, MAX_COUNT)] = None,
    steps: Annotated[Optional[int], whole_number_option("Override the suite's steps per seed.", 1, MAX_COUNT)] = None,
    seed: Annotated[Optional[int], whole_number_option("Override the suite's root seed.", 0, MAX_SEED)] = None,
    list_suites: Annotated[bool, typer.Option("--list", help="List the built-in suites and exit.")] = False,
) -> None:
    """Run a regret benchmark suite (envs x agents x seeds): tidy CSV/JSON, summary.md and plots, resumable."""
    import dataclasses

    from rlrec.bench.suite import SUITES, SuiteError, get_suite

    if list_suites:
        # Text, not a table: suite, env and agent names are printed whole at any width.
        for name, each in SUITES.items():
            output.console.print(f"[bold]{name}[/]: {escape(each.description)}", highlight=False)
            output.console.print(f"  {each.seeds} seeds x {each.steps} steps per cell, {each.mode} mode",
                                 highlight=False)
            output.console.print(f"  envs: {', '.join(each.envs)}", highlight=False)
            output.console.print(f"  agents: {', '.join(each.agents)}", highlight=False)
        output.console.print("run one with `rlrec bench --suite NAME`; a JSON file describes your own",
                             highlight=False)
        return
    from rlrec.bench.suite_run import run_suite
    from rlrec.files import check_folder_command

    try:
        chosen = get_suite(suite_name)
        changes = {k: v for k, v in (("seeds", seeds), ("steps", steps), ("seed", seed)) if v is not None}
        chosen = dataclasses.replace(chosen, **changes).validate()
        out = out or Path("runs") / f"bench-{chosen.name}"
        if out.exists() and not out.is_dir():
            fail(f"--out {out} is a file, not a folder; choose another --out for the benchmark run.")
        check_folder_command(out, "rlrec bench")  # run_suite checks too; here, before the line below
        output.console.print(f"suite {chosen.name}: {len(chosen.cells)} cells ({len(chosen.envs)} envs x "
                             f"{len(chosen.agents)} agents), {chosen.seeds} seeds x {chosen.steps} steps each; "
                             f"results in {out}", highlight=False)
        result = run_suite(chosen, out)
    except SuiteError as error:
        fail(str(error))
    if len(result.ran) < len(result.cells):
        output.console.print(f"resumed: {len(result.cells) - len(result.ran)} finished cells were read back from "
                             f"{out}")
    print_suite(result)
    plots = "regret.png, regret_vs_diversity.png" + (", regret_vs_questions.png" if any(
        "questions" in cell.metrics for cell in result.cells) else "")
    output.console.print(f"wrote {out}/: results.csv and results.json (every metric, per seed), summary.md, {plots}",
                         highlight=False)
