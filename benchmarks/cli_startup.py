"""How long the everyday commands take to answer: ``rlrec --help``, ``rlrec envs``, ``rlrec bench --list``, ...

Each command runs as a fresh process (what a user waits for at the shell), ``--repeats`` times; the script prints
the median wall time, which heavy libraries the process loaded (JAX, Flax, pandas, torch: none should load to
print help or a list), and, with ``--compare SRC``, the same figures for another source tree measured in the
same run and the ratio. To compare against an earlier commit::

    git worktree add /tmp/rlrec-before <commit>
    python benchmarks/cli_startup.py --compare /tmp/rlrec-before

Wall times on a shared CPU drift from run to run; compare the figures of one run with each other.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (
    ["--help"],
    ["run", "--help"],
    ["bench", "--help"],
    ["envs"],
    ["bench", "--list"],
    ["envs", "--knobs", "MovieLens-Bandit-v0"],
)
HEAVY = ("jax", "flax", "optax", "pandas", "torch", "transformers", "matplotlib")
# Runs the command line in-process, then reports which heavy libraries it loaded.
PROBE = (
    "import json, sys\n"
    "from rlrec.cli import app\n"
    "try:\n"
    "    app(sys.argv[1:], prog_name='rlrec')\n"
    "except SystemExit as done:\n"
    "    code = done.code or 0\n"
    f"print(json.dumps({{'code': code, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}), file=sys.stderr)\n"
)


def measure(source: Path, command: list[str], repeats: int) -> tuple[float, dict]:
    """Median seconds of ``repeats`` fresh processes, and what the last one reported."""
    env = {**os.environ, "PYTHONPATH": str(source), "COLUMNS": "80"}
    times, report = [], {}
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", PROBE, *command], env=env, cwd=source, capture_output=True, text=True
        )
        times.append(time.perf_counter() - started)
        try:
            report = json.loads(done.stderr.strip().splitlines()[-1])
        except (IndexError, ValueError):  # the probe died (e.g. an import error in that tree)
            return statistics.median(times), {"code": "failed: " + (done.stderr.strip()[-200:] or "no output")}
    return statistics.median(times), report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per command (median reported)")
    parser.add_argument("--compare", type=Path, help="another source tree (e.g. a git worktree of an earlier commit)")
    args = parser.parse_args()
    bare = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - started)
    bare = statistics.median(bare)
    print(f"python itself starts in {bare:.2f} s; median of {args.repeats} fresh processes per command")
    header = f"{'command':<42} {'now':>7}  loads"
    if args.compare:
        header = f"{'command':<42} {'now':>7} {'before':>7} {'ratio':>6}"
    print(header)
    for command in COMMANDS:
        now, report = measure(ROOT, command, args.repeats)
        label = "rlrec " + " ".join(command)
        if report.get("code"):
            print(f"{label:<42} exit code {report['code']} (command not available in this tree)")
            continue
        if not args.compare:
            print(f"{label:<42} {now:>6.2f}s  {', '.join(report['heavy']) or 'no heavy library'}")
            continue
        before, old = measure(args.compare, command, args.repeats)
        if old.get("code"):
            print(f"{label:<42} {now:>6.2f}s {'n/a':>7} (not in {args.compare})")
            continue
        print(f"{label:<42} {now:>6.2f}s {before:>6.2f}s {before / now:>5.1f}x")


if __name__ == "__main__":
    main()
