"""Off-policy estimators' throughput: every estimator of ``rlrec.ope.estimators`` on a million logged rounds.

What it measures: random but valid :class:`~rlrec.ope.estimators.EstimatorInputs` (``--rounds`` rounds, slates of
each ``--slate-sizes``; probabilities in ``(0, 1]``, one click or none per round, a pseudo-inverse weight per round)
are made on the device, then :func:`~rlrec.ope.estimators.estimate_all` over all nine estimators is called once
(tracing and compiling: reported apart) and ``--repeats`` more times, each call waited for with
``block_until_ready``. It prints the first call's seconds, the median of the repeats, and rounds per second.
``--each`` also times every estimator alone (its own compiled program) to show where the time goes.

The requirement (issue: OPE estimators): all estimators on 1,000,000 rounds in under a second of compute after
compilation, on a 2-core CPU.

Run from the repository root (CPU or GPU, nothing is hard-coded)::

    python benchmarks/ope_estimators.py                       # 1M rounds, k = 5 and k = 1, about 20 s on 2 cores
    python benchmarks/ope_estimators.py --rounds 10000 --repeats 3 --each      # a quick smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp

# Shared formatting with the sibling benchmarks (run from the repo root: benchmarks/ is on sys.path).
from env_throughput import header, human

from rlrec.ope.estimators import ESTIMATORS, EstimatorInputs, estimate_all


def random_inputs(key: jax.Array, rounds: int, slate_size: int) -> EstimatorInputs:
    """Valid inputs of ``rounds`` rounds: prefix probabilities that shrink slot by slot, a click in a random slot
    (or none) with probability 1/2, a reward model's predictions in ``[0, 0.3]``, pseudo-inverse weights."""
    keys = jax.random.split(key, 8)
    shape = (rounds, slate_size)
    behaviour_prefix = jnp.cumprod(jax.random.uniform(keys[0], shape, minval=1e-4, maxval=1.0), axis=1)
    target_prefix = jnp.cumprod(jax.random.uniform(keys[1], shape, maxval=1.0), axis=1)
    slot = jax.random.randint(keys[2], (rounds,), 0, 2 * slate_size)  # >= slate_size: no click
    clicks = jax.nn.one_hot(slot, slate_size, dtype=jnp.float32)
    return EstimatorInputs(
        reward=clicks.sum(axis=1), clicks=clicks, behaviour_prefix=behaviour_prefix,
        behaviour_slot=jax.random.uniform(keys[3], shape, minval=1e-3, maxval=1.0), target_prefix=target_prefix,
        target_slot=jax.random.uniform(keys[4], shape), dm_logged=jax.random.uniform(keys[5], shape, maxval=0.3),
        dm_target=jax.random.uniform(keys[6], (rounds,)), pi_weight=jax.random.normal(keys[7], (rounds,)) * 50.0)


def time_calls(call, repeats: int) -> tuple[float, float]:
    """The first call's seconds (tracing + compiling + running) and the median of ``repeats`` later calls."""
    started = time.perf_counter()
    jax.block_until_ready(call())
    first = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - started)
    return first, statistics.median(times)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1_000_000, help="logged rounds")
    parser.add_argument("--slate-sizes", default="5,1", help="comma-separated slate sizes k")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls after compiling (median reported)")
    parser.add_argument("--each", action=argparse.BooleanOptionalAction, default=True,
                        help="also time every estimator alone")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPU cores seen")
    print(f"  jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    summary: list[tuple[str, str]] = []
    names = tuple(ESTIMATORS)
    for slate_size in (int(size) for size in args.slate_sizes.split(",")):
        header(f"{args.rounds:,} rounds, slates of {slate_size}")
        inputs = jax.block_until_ready(jax.jit(random_inputs, static_argnums=(1, 2))(
            jax.random.key(args.seed), args.rounds, slate_size))
        size = sum(leaf.nbytes for leaf in jax.tree.leaves(inputs))
        print(f"  inputs: {size / 2**20:.1f} MiB on {jax.devices()[0].platform}")
        first, call = time_calls(lambda: estimate_all(inputs, names), args.repeats)
        results = estimate_all(inputs, names)
        print(f"  estimate_all, {len(names)} estimators: first call {first:.2f} s (compiling included), then "
              f"{call * 1e3:.1f} ms a call (median of {args.repeats}): {human(args.rounds / call, 'rounds/s')}")
        print("  " + ", ".join(f"{name} {float(result.value):.4g}" for name, result in results.items()))
        verdict = "met" if call * 1e6 / args.rounds < 1.0 else "NOT met"  # scaled to a million rounds
        summary.append((f"k={slate_size}: compile (first call - a call)", f"{first - call:.2f} s"))
        summary.append((f"k={slate_size}: all {len(names)} estimators, a call", f"{call * 1e3:.1f} ms, "
                        f"{human(args.rounds / call, 'rounds/s')} (target < 1 s for 1M rounds: {verdict})"))
        if args.each:
            for name in names:
                _, alone = time_calls(lambda name=name: estimate_all(inputs, (name,)), args.repeats)
                print(f"    {name:<10} alone {alone * 1e3:7.1f} ms")
    header("summary")
    print(f"  device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {len(jax.devices())} device(s)")
    width = max(len(name) for name, _ in summary)
    for name, value in summary:
        print(f"  {name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
