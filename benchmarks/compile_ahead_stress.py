"""Stress check of compiling ahead: a cold benchmark suite, many times, each a fresh process; failures counted.

``rlrec bench`` compiles the next cells' programs in two worker threads while the main thread runs earlier ones
(``rlrec.bench.suite_run._compile_ahead_pool``). Issue 38 saw one cold quick suite in about a dozen stop with
``Incompatible shapes for broadcasting: shapes=[(0,), (9066,)]``. The cause was not the threads: jaxlib 0.10
compares the tree structures of two ``flax.struct`` classes with equal static fields as equal (while hashing
them apart), so JAX's caches now and then handed LinTS the program traced for LinUCB (or the reverse, or
popularity random's).
Agents are now ``rlrec.agents.pytree.ClassKeyed``: each agent's class is in the programs' keys.

Each run is ``python -m rlrec.cli bench --suite SUITE --out TMP`` in a fresh process with a fresh, empty
``JAX_COMPILATION_CACHE_DIR`` (the embedding cache stays warm: this measures compiling, not the language model),
under two conditions: ``quiet``, and ``busy`` (another process spinning on one core the whole time). A run
*fails* when it exits non-zero (its stderr is saved under ``--out``); it has *wrong numbers* when a cell's
cumulative-regret curves differ from what most runs computed for that cell, or equal another agent's curves in the
same run (one agent ran another's program). A mix-up depends on where classes landed in memory, so every fresh
process is a new draw. Prints a table; exits 1 if any run failed or had wrong numbers.

Run from the repository root::

    python benchmarks/compile_ahead_stress.py --runs 8                 # the quick suite (2-4 min a run, 2 cores)
    python benchmarks/compile_ahead_stress.py --runs 8 --suite small   # the quick suite's agents on one env
    PYTHONPATH=/path/to/old/checkout python benchmarks/compile_ahead_stress.py ...   # another version of rlrec

``--copies 80`` measures the mechanism instead, in one process (:func:`mix_ups`, a minute or two).

``small`` keeps the quick suite's eight agents and their order (so the programs meet the same caches, in the
same order) on ``MovieLens-Bandit-v0`` alone, 8 seeds x 50 steps: half the programs of ``quick``.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SMALL = {
    "name": "small",
    "description": "the quick suite's agents, in its order, on one env (benchmarks/compile_ahead_stress.py)",
    "envs": ["MovieLens-Bandit-v0"],
    "agents": ["random", "popularity", "epsilon-greedy", "ucb1", "linucb", "lints", "lm-linucb", "lm-lints"],
    "seeds": 8,
    "steps": 50,
}
BUSY = "while True:\n    pass\n"


def cell_curves(out: Path) -> dict[str, bytes]:
    """``{cell file name: its cumulative-regret curves as bytes}`` of a finished run folder."""
    curves = {}
    for path in sorted((out / "cells").glob("*.npz")):
        with np.load(path) as cell:
            curves[path.stem] = np.ascontiguousarray(cell["cumulative_regret"]).tobytes()
    return curves


def one_run(suite: str, condition: str, work: Path, timeout: float, checkout: Path) -> dict:
    """One cold suite in a fresh process (with a core-spinning neighbour when ``busy``)."""
    cache = Path(tempfile.mkdtemp(prefix="xla-", dir=work))
    out = Path(tempfile.mkdtemp(prefix="run-", dir=work)) / "suite"
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache)}
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY]) if condition == "busy" else None
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "rlrec.cli", "bench", "--suite", suite, "--out", str(out)],
                              env=env, cwd=checkout, capture_output=True, text=True, timeout=timeout)
        code, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired as expired:  # its stderr comes back as bytes, text=True or not
        code, stderr = "timeout", (expired.stderr or b"").decode(errors="replace")
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    seconds = time.perf_counter() - started
    curves = cell_curves(out) if code == 0 else {}
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out.parent, ignore_errors=True)
    return {"condition": condition, "code": code, "seconds": seconds, "stderr": stderr, "curves": curves}


def wrong_numbers(runs: list[dict]) -> list[list[str]]:
    """Per run, its cells whose curves differ from the majority's or equal another cell's of the same run."""
    votes = collections.defaultdict(collections.Counter)
    for run in runs:
        for cell, curve in run["curves"].items():
            votes[cell][hashlib.sha256(curve).hexdigest()] += 1
    majority = {cell: counter.most_common(1)[0][0] for cell, counter in votes.items()}
    flagged = []
    for run in runs:
        digests = {cell: hashlib.sha256(curve).hexdigest() for cell, curve in run["curves"].items()}
        seen = collections.Counter(digests.values())
        flagged.append(sorted(cell for cell, digest in digests.items()
                              if digest != majority[cell] or seen[digest] > 1))
    return flagged


def mix_ups(copies: int) -> list[str]:
    """The mechanism, in this process: ``copies`` fresh subclasses of one linear bandit (new classes, the same
    fields, as LinUCB and LinTS have), then as many of the other, lowered through ``rlrec.run``'s initialisation
    program as ``rlrec.rollout.runner._compile`` lowers them; counts the copies handed the other class's program
    (LinUCB's variances are ``(seeds, 9066)``, LinTS keeps none: ``(seeds, 0)``) and compiles the first such agent
    as ``rlrec.run`` would. Each direction, one line."""
    import jax

    import rlrec
    from rlrec.agents.bandits import LinTS, LinUCB
    from rlrec.rollout import runner
    from rlrec.rollout.seeds import SeedPlacement

    env, params = rlrec.make("MovieLens-Bandit-v0")
    seeds = 8
    placement = SeedPlacement(0, seeds)
    keys, placed = placement.keys, placement.replicate(params)

    def shapes(agent) -> list[tuple]:
        lowered = runner._init_seeds.lower(keys, placed, agent, None, env=env, mode="personal", users=1)
        return [leaf.shape for leaf in jax.tree.leaves(lowered.out_info)]

    lines = []
    for first, second in ((LinUCB, LinTS), (LinTS, LinUCB)):
        other = (seeds, 0) if second is LinUCB else (seeds, env.num_items(params))
        for index in range(copies):
            shapes(type(f"{first.__name__}{index}", (first,), {})(slate_size=1))
        handed, error = 0, "none compiled"
        for index in range(copies):
            agent = type(f"{second.__name__}{index}", (second,), {})(slate_size=1)
            if other in shapes(agent):
                handed += 1
                if handed == 1:  # at once: later entries reshape JAX's cache tables
                    try:
                        runner._compile(env, params, agent, num_seeds=seeds, num_steps=5, seed=0, mode="personal",
                                        num_users=1, accuracy_k=10, chunk_size=None)
                        error = "compiled without error"
                    except Exception as raised:  # noqa: BLE001 - reported, it is what this measures
                        error = f"{type(raised).__name__}: {raised}"
        lines.append(f"{handed} of {copies} {second.__name__} copies were handed {first.__name__}'s program; "
                     f"the first one compiled as rlrec.run would: {error}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="quick", help="quick (default), small (see the docstring) or a JSON file")
    parser.add_argument("--runs", type=int, default=8, help="runs per condition (default 8)")
    parser.add_argument("--conditions", default="quiet,busy", help="quiet, busy or both (default quiet,busy)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before a run counts as hung")
    parser.add_argument("--out", type=Path, default=Path("runs/compile-ahead-stress"),
                        help="where failing runs' stderr and results.json are kept")
    parser.add_argument("--copies", type=int, default=0,
                        help="instead of suites: the mechanism with this many class copies (see mix_ups)")
    args = parser.parse_args()
    if args.copies > 0:
        for line in mix_ups(args.copies):
            print(line, flush=True)
        return 0
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    if set(conditions) - {"quiet", "busy"} or args.runs < 1:
        parser.error("--conditions takes quiet and/or busy; --runs must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="compile-ahead-stress-"))
    suite = str(Path(args.suite).resolve()) if Path(args.suite).is_file() else args.suite  # runs start elsewhere
    if suite == "small":
        suite = str(work / "small.json")
        Path(suite).write_text(json.dumps(SMALL))
    import rlrec

    # The runs import the rlrec this script imports (``python -m`` puts the working folder first on the path).
    checkout = Path(rlrec.__file__).resolve().parent.parent
    print(f"rlrec from {checkout}; suite {args.suite}; "
          f"{args.runs} runs x {conditions}", flush=True)
    runs = []
    try:
        # Conditions alternate run by run, so a change in the machine's load falls on both.
        for index in range(args.runs):
            for condition in conditions:
                run = one_run(suite, condition, work, args.timeout, checkout)
                runs.append(run)
                print(f"run {len(runs)}: {condition}, exit {run['code']}, {run['seconds']:.0f} s", flush=True)
                if run["code"] != 0:
                    saved = args.out / f"failure-{len(runs)}-{condition}.stderr"
                    saved.write_text(run["stderr"])
                    print(f"  stderr kept in {saved}; last line: {run['stderr'].strip().splitlines()[-1:]}",
                          flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    flagged = wrong_numbers(runs)
    for run, cells in zip(runs, flagged):
        run["wrong"] = cells
    table = []
    print("\n| condition | runs | failed | wrong numbers | median s |\n|---|---|---|---|---|")
    for condition in conditions:
        mine = [run for run in runs if run["condition"] == condition]
        failed = sum(run["code"] != 0 for run in mine)
        wrong = sum(bool(run["wrong"]) for run in mine)
        median = statistics.median(run["seconds"] for run in mine)
        table.append({"condition": condition, "runs": len(mine), "failed": failed, "wrong_numbers": wrong,
                      "median_s": round(median, 1)})
        print(f"| {condition} | {len(mine)} | {failed} | {wrong} | {median:.0f} |")
    for number, run in enumerate(runs, 1):
        if run["wrong"]:
            print(f"run {number} ({run['condition']}): wrong numbers in {', '.join(run['wrong'])}")
    summary = {"suite": args.suite, "rlrec": str(checkout), "table": table,
               "runs": [{k: run[k] for k in ("condition", "code", "seconds", "wrong")} for run in runs]}
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if any(row["failed"] or row["wrong_numbers"] for row in table) else 0


if __name__ == "__main__":
    sys.exit(main())
