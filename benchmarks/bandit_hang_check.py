"""Stress check: the linear bandits' runs always return (no hang), each as its own process under a timeout.

The linear bandits once factorised ``A`` with LAPACK in every decision, and under ``vmap`` on a 2-core CPU the
batched triangular solves were seen to hang XLA's CPU thread pool (7 of 30 runs with 4,096 seeds). They now
keep their posterior with matrix products only (:class:`rlrec.agents.bandits.LinearBandit`). This script is
the evidence that no run hangs: it calls ``rlrec.run`` with each agent, ``--seeds`` x ``--steps`` on
``--env``, ``--runs`` times each, every run a fresh Python process killed after ``--timeout`` seconds, and
prints completions, hangs (timeouts), failures and wall times. It exits 1 if any run hung or failed.

Run from the repository root (about 100 minutes with the defaults on a quiet 2-core CPU)::

    python benchmarks/bandit_hang_check.py
    python benchmarks/bandit_hang_check.py --runs 2 --seeds 256 --steps 20     # a quick smoke run
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
import time

import numpy as np

WORKER = textwrap.dedent(
    """
    import sys, time
    started = time.perf_counter()
    import rlrec
    from rlrec.agents import make_agent
    env_id, agent_name, seeds, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    env, params = rlrec.make(env_id)
    result = rlrec.run(env, params, make_agent(agent_name, env), num_seeds=seeds, num_steps=steps)
    print(f"ok {time.perf_counter() - started:.2f} {result.compile_time:.2f} {result.regret.mean():.6f}", flush=True)
    """
)


def one_run(env_id: str, agent: str, seeds: int, steps: int, timeout: float) -> dict:
    """One ``rlrec.run`` in a fresh process: ``outcome`` is ok, hang (killed at the timeout) or failed."""
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", WORKER, env_id, agent, str(seeds), str(steps)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"outcome": "hang", "wall": time.perf_counter() - started}
    wall = time.perf_counter() - started
    last = (done.stdout.strip().splitlines() or [""])[-1].split()
    if done.returncode != 0 or not last or last[0] != "ok":
        return {"outcome": "failed", "wall": wall, "error": (done.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return {"outcome": "ok", "wall": wall, "inside": float(last[1]), "compile": float(last[2]),
            "regret": float(last[3])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="MovieLens-BanditSlate-v0")
    parser.add_argument("--agents", nargs="+", default=["linucb", "lints", "epsilon-greedy"])
    parser.add_argument("--runs", type=int, default=20, help="processes per agent")
    parser.add_argument("--seeds", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a run counts as hung")
    args = parser.parse_args(argv)
    print(f"{args.runs} runs each of {', '.join(args.agents)} on {args.env}: {args.seeds:,} seeds x {args.steps} "
          f"steps, every run its own process, killed after {args.timeout:.0f} s", flush=True)
    table = {}
    for run in range(args.runs):  # agents interleaved: a noisy spell of the machine hits all of them alike
        for agent in args.agents:
            result = one_run(args.env, agent, args.seeds, args.steps, args.timeout)
            table.setdefault(agent, []).append(result)
            detail = (f"{result['wall']:.1f} s wall ({result['compile']:.1f} s compiling), regret/step "
                      f"{result['regret']:.4f}" if result["outcome"] == "ok" else
                      f"after {result['wall']:.1f} s" + (f": {result['error']}" if "error" in result else ""))
            print(f"  run {run + 1:>2} {agent:<15} {result['outcome']:<6} {detail}", flush=True)
    print(f"\n{'agent':<15} {'runs':>5} {'ok':>5} {'hangs':>6} {'failed':>7} {'wall min / median / max (s)':>30}")
    bad = 0
    for agent, results in table.items():
        walls = np.array([r["wall"] for r in results if r["outcome"] == "ok"])
        hangs = sum(r["outcome"] == "hang" for r in results)
        failed = sum(r["outcome"] == "failed" for r in results)
        bad += hangs + failed
        spread = f"{walls.min():.1f} / {np.median(walls):.1f} / {walls.max():.1f}" if len(walls) else "-"
        print(f"{agent:<15} {len(results):>5} {len(walls):>5} {hangs:>6} {failed:>7} {spread:>30}")
    total = sum(len(results) for results in table.values())
    print(f"\n{total - bad} of {total} runs completed; {bad} hung or failed (timeout {args.timeout:.0f} s).")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
