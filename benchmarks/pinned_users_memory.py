"""Memory of ``rlrec.run(..., users="all")``: two population sizes in one run, and the ratio (linear or not).

What it measures: ``users="all"`` runs every user of a population of ``P`` users with every seed, ``P x seeds``
streams in one program. For each size (``--sizes``) a fresh process builds ``--env`` with a population of that
many users (MovieLens's real users, resampled with replacement) and runs ``--agent`` for ``--steps`` steps, pinned
(``users="all"``) and, for reference, unpinned with as many streams (``num_seeds = P x seeds``). Each process
reports the compiled step program's memory (arguments, temporaries and outputs, from XLA's
``memory_analysis()``, as compiled and before running) and its peak resident memory (``ru_maxrss``; it includes
Python, JAX and the catalog, the same in every process). Printed: one row per process, then the ratios of the
larger size to the smaller. Linear in users x seeds: the compiled memory grows by the size ratio; quadratic
(as before: each stream held sampling weights over all ``P`` users): by its square.

Run from the repository root::

    python benchmarks/pinned_users_memory.py                       # 2,000 and 4,000 users x 2 seeds, a few minutes
    python benchmarks/pinned_users_memory.py --sizes 8000 --seeds 4 --steps 2
    git worktree add /tmp/rlrec-before <commit>                    # the same figures for another source tree
    python benchmarks/pinned_users_memory.py --compare /tmp/rlrec-before
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One measurement in a fresh process (so each peak RSS is its own): prints one JSON line.
WORKER = """
import json, resource, sys
import numpy as np
import rlrec
from rlrec.agents import make_agent
from rlrec.rollout import runner
from rlrec.simulators.population import Population, default_population

env_id, agent_name, users, seeds, steps, pinned = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
real = default_population()
rows = np.random.default_rng(0).integers(len(real), size=users)
population = Population.from_arrays(real.interests[rows], real.requests[rows], name=f"{users} resampled users")
env, params = rlrec.make(env_id, population=population)
agent = make_agent(agent_name, env)
settings = dict(num_seeds=seeds, users="all") if pinned else dict(num_seeds=users * seeds)
compiled = runner._compile(env, params, agent, num_steps=steps, seed=0, mode="personal", num_users=1,
                           accuracy_k=10, chunk_size=None, **settings)
memory = compiled.chunk.memory_analysis()
result = rlrec.run(env, params, agent, num_steps=steps, **settings)
print(json.dumps({
    "rows": result.num_seeds,
    "compiled": memory.argument_size_in_bytes + memory.temp_size_in_bytes + memory.output_size_in_bytes,
    "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "regret": float(result.regret.sum(axis=1).mean()),
}))
"""


def measure(source: Path, args: argparse.Namespace, users: int, pinned: bool) -> dict:
    """One fresh process's figures (see :data:`WORKER`), run with ``source`` first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run([sys.executable, "-c", WORKER, args.env, args.agent, str(users), str(args.seeds),
                           str(args.steps), str(int(pinned))], capture_output=True, text=True, env=env, cwd=source)
    if done.returncode != 0:
        raise SystemExit(f"the measurement of {users} users failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mib(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="MovieLens-Bandit-v0")
    parser.add_argument("--agent", default="text-match", help="an agent with little state per stream shows the "
                        "population's share of the memory best")
    parser.add_argument("--sizes", default="2000,4000", help="comma-separated population sizes (users)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per user")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="another source tree, measured the same way in this run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import jax  # only for the header: the measurements run in their own processes

    print(f"python {platform.python_version()}, {os.cpu_count()} CPU cores seen, jax {jax.__version__} "
          f"({jax.default_backend()}); {args.agent} on {args.env}, {args.seeds} seeds x {args.steps} steps")
    sizes = [int(size) for size in args.sizes.split(",")]
    sources = [("this tree", ROOT)] + ([("compared", args.compare.resolve())] if args.compare else [])
    print(f"\n{'source':<10} {'users':>6} {'streams':>8} {'pinned':>7} {'compiled program':>17} {'peak RSS':>10} "
          f"{'regret':>8}")
    figures = {}
    for label, source in sources:
        for users in sizes:
            for pinned in (True, False):
                row = measure(source, args, users, pinned)
                figures[label, users, pinned] = row
                print(f"{label:<10} {users:>6,} {row['rows']:>8,} {'yes' if pinned else 'no':>7} "
                      f"{mib(row['compiled']):>17} {mib(row['peak_rss']):>10} {row['regret']:>8.3f}", flush=True)
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        print(f"\nratios, {large:,} users over {small:,} (linear: {large / small:.2f}, quadratic: "
              f"{(large / small) ** 2:.2f}):")
        for label, _ in sources:
            for pinned in (True, False):
                a, b = figures[label, small, pinned], figures[label, large, pinned]
                print(f"  {label:<10} {'pinned' if pinned else 'unpinned':<9} compiled program "
                      f"{b['compiled'] / a['compiled']:.2f}x, peak RSS {b['peak_rss'] / a['peak_rss']:.2f}x "
                      f"({(b['peak_rss'] - a['peak_rss']) / 2**20:+,.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
