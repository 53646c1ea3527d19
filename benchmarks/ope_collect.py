"""Logging speed: ``rlrec.ope.collect`` against ``rlrec.run`` of the same policy on the same users and steps.

What it measures: a behaviour policy (``--behaviours``) logs ``--users`` user streams x ``--steps`` rounds with
:func:`rlrec.ope.collect` (propensities, hidden states, the exact expected reward of every slate), and
:func:`rlrec.run` runs the same policy as an agent (``rlrec.ope.truth.PolicyAgent``) in personal mode for the
same users and steps (regret, accuracy and diversity per step: what a regret run computes). Each is called twice
in this process: the first call compiles, the second runs compiled. Printed: seconds of both calls and the ratio
of rounds per second, compiled (``collect / run``; the requirement is >= 1: logging as fast as running).

Run from the repository root::

    python benchmarks/ope_collect.py                              # MovieLens slates, 10,000 x 10, about 1 min
    python benchmarks/ope_collect.py --env MovieLens-Bandit-v0 --users 2000 --steps 50
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
from env_throughput import header, human

import rlrec
from rlrec.ope import collect, make_policy
from rlrec.ope.truth import PolicyAgent


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="MovieLens-BanditSlate-v0")
    parser.add_argument("--behaviours", default="uniform,epsilon-greedy:popularity:0.1",
                        help="comma-separated policy names (rlrec.ope.specs)")
    parser.add_argument("--users", type=int, default=10_000, help="user streams")
    parser.add_argument("--steps", type=int, default=10, help="rounds per user")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPU cores seen, jax {jax.__version__} "
          f"({jax.default_backend()})")
    env, params = rlrec.make(args.env)
    rounds = args.users * args.steps
    summary = []
    for name in args.behaviours.split(","):
        header(f"{name} on {args.env}: {args.users:,} users x {args.steps} rounds")
        behaviour = make_policy(name, env, params)
        agent = PolicyAgent(slate_size=env.slate_size, label=behaviour.name, policy=behaviour)
        log_first, _ = timed(lambda: collect(env, params, behaviour, rounds, steps_per_user=args.steps))
        log_again, log = timed(lambda: collect(env, params, behaviour, rounds, steps_per_user=args.steps))
        run_first, _ = timed(lambda: rlrec.run(env, params, agent, num_seeds=args.users, num_steps=args.steps))
        run_again, _ = timed(lambda: rlrec.run(env, params, agent, num_seeds=args.users, num_steps=args.steps))
        print(f"  collect: first call {log_first:.2f} s (compiling), then {log_again:.2f} s: "
              f"{human(rounds / log_again, 'rounds/s')}; mean reward {log.reward.mean():.4f}")
        print(f"  run:     first call {run_first:.2f} s (compiling), then {run_again:.2f} s: "
              f"{human(rounds / run_again, 'rounds/s')}")
        summary.append((name, run_again / log_again, run_first / log_first))
    header("summary: collect's speed over run's (>= 1: collect is as fast)")
    for name, compiled, first in summary:
        print(f"  {name:<36} compiled {compiled:5.2f}x   first call (with compiling) {first:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
