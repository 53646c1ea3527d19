"""Fidelity of the LM-derived users: do they predict held-out *real* MovieLens ratings?

Each of the 671 MovieLens users' ratings is split at random into train and test (``--test-fraction`` held
out, per user). Every predictor is built from the train ratings only, and scores each user's held-out items;
the metric is the per-user AUC of liked (rating >= 4) vs disliked (rating <= 2) held-out items (ties count
1/2), averaged over the users that have both, with a 95% confidence interval over users.

Predictors (see :func:`rlrec.simulators.fidelity.predictor_scores`):

- **LM interest** ``<u, e_j>``, ``u`` the user's hidden taste in LM space (and in each PCA space of ``--dims``);
- **LM request**: the mean embedding of the user's three stated requests (what an agent observes);
- **simulator utility**: ``affinity_weight <u, e_j> + quality_weight q_j`` with the environment's default
  weights: the ranking a simulated user chooses by;
- **popularity** (train rating counts) and **item quality** (train Bayesian-average rating): baselines;
- **random**: a sanity check, ~0.5.

Run from the repository root::

    python benchmarks/fidelity.py                                  # seed 0, 20% held out, LM and PCA-32
    python benchmarks/fidelity.py --dims none 16 32 64 --seed 1 --out fidelity.csv

The first run with a new seed or test fraction encodes the users' new request texts with the LM (seconds);
they are cached on disk (``RLREC_CACHE_DIR``) like the item embeddings.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import pandas as pd

from rlrec.data import load_catalog
from rlrec.simulators.fidelity import DISLIKED_AT, LIKED_AT, fidelity_report


def parse_dim(text: str) -> int | None:
    """``"none"``/``"full"``/``"lm"`` -> ``None`` (full LM space); otherwise a positive PCA dim."""
    if text.lower() in {"none", "full", "lm"}:
        return None
    try:
        dim = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"a dim is 'none' (full LM space) or a positive int, got {text!r}") from error
    if dim < 1:
        raise argparse.ArgumentTypeError(f"a PCA dim must be positive, got {dim}")
    return dim


def print_table(report: pd.DataFrame) -> None:
    """The report as a rich table when rich is available, else plain text."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency, but keep the script usable without it
        print(report.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
        return
    table = Table(title=f"Per-user AUC, held-out liked (>= {LIKED_AT:g}) vs disliked (<= {DISLIKED_AT:g})")
    for column, justify in (
        ("predictor", "left"),
        ("space", "left"),
        ("mean AUC", "right"),
        ("95% CI", "right"),
        ("users", "right"),
    ):
        table.add_column(column, justify=justify)
    for row in report.itertuples(index=False):
        table.add_row(
            row.predictor, row.space, f"{row.mean_auc:.4f}", f"[{row.ci_low:.4f}, {row.ci_high:.4f}]", str(row.users)
        )
    Console(width=100).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/test split (default 0)")
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of each user's ratings held out (default 0.2)"
    )
    parser.add_argument(
        "--dims",
        type=parse_dim,
        nargs="+",
        default=[None, 32],
        help="spaces for the LM predictors: 'none' for the full LM space, ints for PCA dims (default: none 32)",
    )
    parser.add_argument("--out", type=Path, default=None, help="optional CSV path for the report")
    args = parser.parse_args(argv)

    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    start = time.perf_counter()
    catalog = load_catalog("movielens")
    load_s = time.perf_counter() - start
    summary = catalog.summary()
    print(
        f"catalog: {summary['name']}, {summary['items']:,} items, {summary['interactions']:,} ratings by "
        f"{summary['users']:,} users, LM {summary['model']} ({summary['embedding_dim']}-d); loaded in {load_s:.2f} s"
    )

    start = time.perf_counter()
    report = fidelity_report(catalog, dims=args.dims, seed=args.seed, test_fraction=args.test_fraction)
    report_s = time.perf_counter() - start
    attrs = report.attrs
    print(
        f"split: seed {attrs['seed']}, {attrs['test_fraction']:.0%} held out per user -> {attrs['train_ratings']:,} "
        f"train / {attrs['test_ratings']:,} test ratings, {attrs['labelled_test_ratings']:,} of them liked "
        f"(>= {LIKED_AT:g}) or disliked (<= {DISLIKED_AT:g}); users evaluated (both classes held out): "
        f"{int(report['users'].iloc[0])} of {attrs['users']}"
    )
    print_table(report)
    print(f"wall time: report {report_s:.2f} s (catalog load {load_s:.2f} s, total {load_s + report_s:.2f} s)")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
