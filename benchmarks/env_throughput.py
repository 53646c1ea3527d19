"""Environment throughput: jitted + vmapped + scanned steps vs a Gymnasium Python loop, in one run.

What it measures (all in the same process, so the printed ratios compare like with like on a noisy machine):

1. **Jitted, vmapped env.** ``env.step`` (the auto-resetting functional step, oracle and regret included) under
   ``jax.jit`` + ``jax.vmap`` over users + ``jax.lax.scan`` over steps. The whole rollout is compiled ahead of
   time once (compile time reported separately); a separate call is then timed with ``block_until_ready``.
   Actions come from a cheap uniformly random slate policy (:func:`rlrec.agents.base.random_distinct_items`),
   and per-user sums of regret/reward are carried through the scan and printed, so no work can be optimised away.
2. **Python loop baseline.** The same environment through the Gymnasium adapter
   (``gymnasium.make("rlrec/<id>")``), one user, ``env.step(env.action_space.sample())`` in a plain Python
   loop (reset on done). The ratio jitted/Python is the headline number (target: >= 100x).
2b. **Conversational twin** (``--conversation``, on by default): the same rollout on the env's conversational
   twin (``MovieLens-BanditSlate-v0`` -> ``MovieLens-ConversationalSlate-v0``) with a random question at every
   step, and its user-steps/s as a ratio of part 1's (target: within 2x, ratio >= 0.5).
3. **Large catalog** (``--large``, on by default): the 58,788-title ggplot2movies catalog
   (``IMDB-BanditSlate-v0``). Reports user-steps/s and the achieved FLOP/s of the scoring matmul, compared
   with this machine's float32 matmul throughput measured in the same run (a dot of the step's own shape and a
   square 2048^3 one).
4. **Memory.** Params (catalog) bytes vs state bytes for two user counts, and XLA's compiled memory analysis
   of the rollout: the catalog is an argument shared by all users, never copied per user.

Run from the repository root (CPU or GPU, nothing is hard-coded)::

    python benchmarks/env_throughput.py                      # defaults: 4,096 users x 1,000 steps
    python benchmarks/env_throughput.py --users 512 --steps 100 --no-large    # a quick smoke run

The first ever ``--large`` run encodes 58,788 titles with the language model (several minutes on a 2-core
CPU); the embeddings are cached on disk (``RLREC_CACHE_DIR``) and later runs load them in seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import rlrec
from rlrec.agents.base import random_distinct_items as random_slate
from rlrec.envs.conversation import ConversationalEnv
from rlrec.envs.recsys import EnvParams, RecEnv

# -- helpers --------------------------------------------------------------------------------------------------


def human(value: float, unit: str = "") -> str:
    """SI prefixes: ``human(2.5e10, "FLOP/s") -> '25.00 GFLOP/s'``, ``human(12345, "steps/s") -> '12.35k steps/s'``."""
    attach = unit.startswith(("FLOP", "B/s"))
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}{unit}" if attach else f"{value / factor:.2f}{prefix} {unit}"
    return f"{value:.2f} {unit}"


def human_bytes(value: float) -> str:
    for factor, prefix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}"
    return f"{int(value)} B"


def tree_bytes(tree: Any) -> int:
    """Bytes of every array leaf of a pytree (works on ``jax.ShapeDtypeStruct`` leaves too)."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        if not hasattr(leaf, "shape"):  # a Python scalar default (e.g. a knob left at its dataclass default)
            leaf = np.asarray(leaf)
        total += int(np.prod(leaf.shape, dtype=np.int64)) * np.dtype(leaf.dtype).itemsize
    return total


def header(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 74 - len(title)), flush=True)


# -- the policy and the rollout -------------------------------------------------------------------------------


def make_rollout(env: RecEnv, num_items: int, steps: int, num_key_terms: int = 0):
    """``rollout(params, state, key) -> (state, sums)``: ``steps`` auto-resetting steps of a batch of users.

    ``num_key_terms > 0`` (a conversational env): every action also asks a uniformly random key-term, the most
    conversation a step can carry (each question is answered, each slate without a click may be critiqued).
    """
    slate_size = env.slate_size
    step_fn = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def one_action(key):
        slate_key, question_key = jax.random.split(key)
        slate = random_slate(slate_key, num_items, slate_size)
        if not num_key_terms:
            return slate
        return {"slate": slate, "question": jax.random.randint(question_key, (), 0, num_key_terms, jnp.int32)}

    policy = jax.vmap(one_action)

    def rollout(params: EnvParams, state, key: jax.Array):
        users = state.step.shape[0]
        zeros = jnp.zeros((users,), jnp.float32)
        sums0 = {"regret": zeros, "reward": zeros, "expected_reward": zeros, "oracle": zeros, "episodes": zeros}

        def body(carry, _):
            state, key, sums = carry
            key, action_key, step_key = jax.random.split(key, 3)
            actions = policy(jax.random.split(action_key, users))
            _, state, reward, terminated, truncated, info = step_fn(
                jax.random.split(step_key, users), state, actions, params
            )
            sums = {
                "regret": sums["regret"] + info["regret"],
                "reward": sums["reward"] + reward,
                "expected_reward": sums["expected_reward"] + info["expected_reward"],
                "oracle": sums["oracle"] + info["oracle_expected_reward"],
                "episodes": sums["episodes"] + jnp.logical_or(terminated, truncated).astype(jnp.float32),
            }
            return (state, key, sums), None

        (state, _, sums), _ = jax.lax.scan(body, (state, key, sums0), None, length=steps)
        return state, sums

    return rollout


def initial_state(env: RecEnv, params: EnvParams, users: int, seed: int):
    keys = jax.random.split(jax.random.key(seed), users)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    return jax.block_until_ready(state)


def compile_and_time(function, args: tuple, repeats: int):
    """Compiles ``function(*args)`` once ahead of time, then times ``repeats`` separate calls.

    Returns ``(compiled, compile seconds, outputs of the last call, per-call seconds)``.
    """
    start = time.perf_counter()
    compiled = jax.jit(function).lower(*args).compile()
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return compiled, compile_s, outputs, times


def bench_jitted(env: RecEnv, params: EnvParams, users: int, steps: int, seed: int, repeats: int) -> dict[str, Any]:
    """Compiles the rollout once (AOT), then times ``repeats`` separate calls."""
    num_items = env.num_items(params)
    num_key_terms = env.num_key_terms(params) if isinstance(env, ConversationalEnv) else 0
    state = initial_state(env, params, users, seed)
    key = jax.random.key(seed + 1)
    compiled, compile_s, (_, sums), times = compile_and_time(
        make_rollout(env, num_items, steps, num_key_terms), (params, state, key), repeats
    )
    sums = jax.tree.map(lambda x: float(jnp.sum(x)), sums)
    user_steps = users * steps
    best = min(times)
    return {
        "users": users,
        "steps": steps,
        "num_items": num_items,
        "dim": int(params.item_features.shape[1]),
        "compile_s": compile_s,
        "times": times,
        "seconds": best,
        "rate": user_steps / best,
        "mean_regret": sums["regret"] / user_steps,
        "click_rate": sums["reward"] / user_steps,
        "mean_expected_reward": sums["expected_reward"] / user_steps,
        "mean_oracle": sums["oracle"] / user_steps,
        "episodes": sums["episodes"],
        "compiled": compiled,
    }


def print_jitted(result: dict[str, Any]) -> None:
    times = ", ".join(f"{t:.3f}" for t in result["times"])
    total = result["users"] * result["steps"]
    print(f"  users x steps         : {result['users']:,} x {result['steps']:,} = {total:,} user-steps")
    print(f"  catalog               : {result['num_items']:,} items, d={result['dim']}")
    print(f"  compile (AOT, once)   : {result['compile_s']:.2f} s")
    print(f"  timed call(s)         : {times} s (best used)")
    print(f"  throughput            : {human(result['rate'], 'user-steps/s')}")
    print(
        f"  checksums             : mean regret {result['mean_regret']:.4f}, click rate {result['click_rate']:.4f}, "
        f"P(click) {result['mean_expected_reward']:.4f} vs oracle {result['mean_oracle']:.4f}, "
        f"episodes finished {result['episodes']:,.0f}"
    )


# -- the Python loop baseline ---------------------------------------------------------------------------------


def sample_distinct(space, max_tries: int = 100) -> tuple[np.ndarray, int]:
    """``space.sample()``; Gymnasium's MultiDiscrete may repeat an item, which the adapter rejects: resample."""
    for tries in range(max_tries):
        action = space.sample()
        if np.ndim(action) == 0 or len(np.unique(action)) == len(action):
            return action, tries
    raise RuntimeError("could not sample a slate of distinct items")


def bench_python_loop(env_id: str, steps: int, seed: int, warmup: int = 5, functional=None) -> dict[str, Any]:
    import gymnasium

    from rlrec.envs.gym import RecGymEnv

    start = time.perf_counter()
    # From a snapshot the adapter is built directly (no gymnasium.make wrappers: slightly less overhead).
    env = RecGymEnv(functional=functional) if functional else gymnasium.make(f"rlrec/{env_id}")
    make_s = time.perf_counter() - start
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(warmup):  # compiles reset/step_env and runs Gymnasium's passive checker
        action, _ = sample_distinct(env.action_space)
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    resamples = episodes = 0
    regret = 0.0
    start = time.perf_counter()
    for _ in range(steps):
        action, tries = sample_distinct(env.action_space)
        resamples += tries
        _, _, terminated, truncated, info = env.step(action)
        regret += info["regret"]
        if terminated or truncated:
            episodes += 1
            env.reset()
    seconds = time.perf_counter() - start
    env.close()
    return {
        "steps": steps,
        "seconds": seconds,
        "rate": steps / seconds,
        "make_s": make_s,
        "resamples": resamples,
        "episodes": episodes,
        "mean_regret": regret / steps,
    }


# -- matmul reference throughput ------------------------------------------------------------------------------


def matmul_rate(m: int, k: int, n: int, repeats: int, seed: int = 0, target_s: float = 0.25) -> tuple[float, float]:
    """Measured float32 ``(m, k) @ (k, n)`` throughput (default precision, as in the env): ``(FLOP/s, s/product)``.

    The product runs in a jitted ``fori_loop`` (its trip count is an argument, calibrated so one call takes
    about ``target_s``; best of ``repeats`` calls), each iteration feeding a row max of the result back into
    the left operand, as the env's top-k reads its scores: nothing can be hoisted or skipped. Inside a loop
    the output buffer is reused; a standalone call of a large product would also pay first-touch page faults
    for a fresh output buffer (on CPU that can cost more than the product itself).
    """
    key_a, key_b = jax.random.split(jax.random.key(seed))
    a = jax.random.normal(key_a, (m, k), jnp.float32)
    b = jax.random.normal(key_b, (k, n), jnp.float32)

    def loop(a, b, iterations):
        def body(_, a):
            product = jnp.dot(a, b, preferred_element_type=jnp.float32)
            return a + 1e-6 * jnp.max(product, axis=1, keepdims=True)

        return jax.lax.fori_loop(0, iterations, body, a)

    compiled = jax.jit(loop).lower(a, b, jnp.int32(1)).compile()

    def timed(iterations: int) -> float:
        start = time.perf_counter()
        jax.block_until_ready(compiled(a, b, jnp.int32(iterations)))
        return time.perf_counter() - start

    timed(1)  # warm-up
    iterations = int(min(10_000, max(3, np.ceil(target_s / max(timed(1), 1e-7)))))
    seconds = min(timed(iterations) for _ in range(repeats)) / iterations
    return 2.0 * m * k * n / seconds, seconds


def scoring_flops_per_user_step(num_items: int, dim: int) -> int:
    """FLOPs of the matmul in ``RecEnv.item_utilities``: ``(N, d) @ (d, 2)`` (interest and boredom memory)."""
    return 2 * num_items * dim * 2


# -- memory ---------------------------------------------------------------------------------------------------


def memory_report(env: RecEnv, params: EnvParams, user_counts: list[int], steps: int, seed: int,
                  compiled_for: dict[int, Any]) -> dict[str, Any]:
    params_bytes = tree_bytes(params)
    catalog_bytes = tree_bytes((params.item_features, params.item_quality, params.item_appeal))
    rows = []
    for users in user_counts:
        keys = jax.ShapeDtypeStruct((users,), jax.random.key(0).dtype)
        _, state_shape = jax.eval_shape(jax.vmap(env.reset, in_axes=(0, None)), keys, params)
        row = {"users": users, "params_bytes": tree_bytes(params), "state_bytes": tree_bytes(state_shape)}
        compiled = compiled_for.get(users)
        if compiled is None:
            state = initial_state(env, params, users, seed)
            compiled = jax.jit(make_rollout(env, env.num_items(params), steps)).lower(
                params, state, jax.random.key(seed)
            ).compile()
        try:
            stats = compiled.memory_analysis()
        except Exception:  # noqa: BLE001 - not every backend implements it
            stats = None
        if stats is not None:
            row["argument_bytes"] = int(stats.argument_size_in_bytes)
            row["temp_bytes"] = int(stats.temp_size_in_bytes)
            row["output_bytes"] = int(stats.output_size_in_bytes)
        row["per_user_catalog_copy_bytes"] = users * catalog_bytes
        rows.append(row)
    return {"params_bytes": params_bytes, "catalog_bytes": catalog_bytes, "rows": rows}


# -- main -----------------------------------------------------------------------------------------------------


def conversational_twin(env_id: str) -> str | None:
    """``MovieLens-BanditSlate-v0`` -> ``MovieLens-ConversationalSlate-v0`` (Session -> ConversationalSession);
    ``None`` for envs without a conversational twin (Drift) or already conversational."""
    from rlrec.envs.specs import REGISTRY

    prefix, _, rest = env_id.partition("-")
    for setting, talking in (("Bandit", "Conversational"), ("Session", "ConversationalSession")):
        if rest.startswith(setting) and not rest.startswith("Conversational"):
            twin = f"{prefix}-{talking}{rest[len(setting):]}"
            return twin if twin in REGISTRY else None
    return None


def build(env_id: str, snapshots: str | None):
    """``rlrec.make(env_id)``, or the saved snapshot ``<snapshots>/<env_id>.npz``."""
    if snapshots is None:
        return rlrec.make(env_id)
    from rlrec.envs.snapshot import load_env

    return load_env(os.path.join(snapshots, f"{env_id}.npz"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--env", default="MovieLens-BanditSlate-v0", help="registered environment id")
    parser.add_argument("--users", type=int, default=4096, help="users stepped in parallel (vmap)")
    parser.add_argument("--steps", type=int, default=1000, help="steps per user (lax.scan)")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls of the compiled rollout (best is used)")
    parser.add_argument("--python-steps", type=int, default=500, help="steps of the Gymnasium Python loop")
    parser.add_argument(
        "--conversation", action=argparse.BooleanOptionalAction, default=True,
        help="also time the env's conversational twin (a question every step) and print its ratio to the plain env",
    )
    parser.add_argument(
        "--large", action=argparse.BooleanOptionalAction, default=True, help="run the large-catalog part"
    )
    parser.add_argument("--large-env", default="IMDB-BanditSlate-v0", help="large-catalog environment id")
    parser.add_argument("--large-users", type=int, default=1024, help="users for the large-catalog part")
    parser.add_argument("--large-steps", type=int, default=100, help="steps for the large-catalog part")
    parser.add_argument(
        "--matmul-repeats", type=int, default=3, help="timed calls of each reference matmul loop (~0.25 s each)"
    )
    parser.add_argument("--square", type=int, default=2048, help="size of the square reference matmul")
    parser.add_argument("--memory-users", default="1024,4096", help="comma-separated user counts for the memory check")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--snapshots",
        default=None,
        help="folder of env snapshots (<env id>.npz from rlrec.envs.snapshot.save_env) to use instead of rlrec.make:"
        " runs where the language model and catalogs are not installed (e.g. an accelerator machine)",
    )
    args = parser.parse_args(argv)
    for name in ("users", "steps", "repeats", "python_steps", "large_users", "large_steps", "matmul_repeats", "square"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    try:
        args.memory_users = sorted({int(x) for x in args.memory_users.split(",") if x.strip()})
    except ValueError:
        parser.error("--memory-users must be comma-separated integers, e.g. 1024,4096")
    if len(args.memory_users) < 2 or min(args.memory_users) < 1:
        parser.error("--memory-users needs at least two positive user counts")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_start = time.perf_counter()
    summary: list[tuple[str, str]] = []

    header("machine")
    print(f"  jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    print(f"  python {platform.python_version()}, {os.cpu_count()} CPU cores visible, {platform.platform()}")
    print(f"  embedding cache: {os.environ.get('RLREC_CACHE_DIR', '(default location)')}")

    # 1. jitted + vmapped + scanned --------------------------------------------------------------------------
    header(f"1. jitted + vmapped + scanned env.step: {args.env}")
    start = time.perf_counter()
    env, params = build(args.env, args.snapshots)
    print(f"  build env             : {time.perf_counter() - start:.2f} s "
          f"({'snapshot' if args.snapshots else 'catalog + population, cached embeddings'})")
    what = "item" if env.slate_size == 1 else f"slate of {env.slate_size} distinct items"
    print(f"  policy                : uniformly random {what} (randint of ranks + rank shift, O(k^2) per user)")
    jitted = bench_jitted(env, params, args.users, args.steps, args.seed, args.repeats)
    print_jitted(jitted)
    summary.append((
        "jitted+vmapped env",
        f"{human(jitted['rate'], 'user-steps/s')} ({args.users:,} users x {args.steps:,} steps, "
        f"{jitted['seconds']:.1f} s; compile {jitted['compile_s']:.1f} s, not included)",
    ))

    # 2. Python loop ------------------------------------------------------------------------------------------
    header(f"2. Python loop: gymnasium.make('rlrec/{args.env}'), one user")
    loop = bench_python_loop(
        args.env, args.python_steps, args.seed, functional=(env, params) if args.snapshots else None
    )
    print(f"  steps                 : {loop['steps']:,} in {loop['seconds']:.2f} s ({loop['episodes']} episode ends)")
    print(f"  throughput            : {human(loop['rate'], 'steps/s')} ({1e3 / loop['rate']:.2f} ms/step)")
    print(f"  mean regret           : {loop['mean_regret']:.4f}")
    print(f"  repeated-item samples : {loop['resamples']} (MultiDiscrete.sample() can repeat an item; resampled)")
    ratio = jitted["rate"] / loop["rate"]
    verdict = "meets" if ratio >= 100 else "BELOW"
    print(f"  ratio jitted/Python   : {ratio:,.0f}x ({verdict} the >= 100x target)")
    summary.append(("Python loop (Gymnasium)", human(loop["rate"], "steps/s")))
    summary.append(("ratio jitted / Python loop", f"{ratio:,.0f}x (target >= 100x: {verdict})"))

    # 2b. the conversational twin ------------------------------------------------------------------------------
    talking_id = conversational_twin(args.env) if args.conversation else None
    if talking_id is not None:
        header(f"2b. conversational twin: {talking_id}, a random question every step")
        talking_env, talking_params = build(talking_id, args.snapshots)
        talking = bench_jitted(talking_env, talking_params, args.users, args.steps, args.seed, args.repeats)
        print_jitted(talking)
        ratio = talking["rate"] / jitted["rate"]
        verdict = "meets" if ratio >= 0.5 else "BELOW"
        print(f"  ratio to the plain env: {ratio:.2f} ({verdict} the >= 0.5 target: within 2x of the plain env)")
        summary.append((f"conversational twin ({talking_id})", f"{human(talking['rate'], 'user-steps/s')}, "
                        f"{ratio:.2f} of the plain env's (target >= 0.5: {verdict})"))
    else:
        header("2b. conversational twin: skipped" + (" (--no-conversation)" if not args.conversation else
                                                     f" ({args.env} has none)"))

    # 3. large catalog ----------------------------------------------------------------------------------------
    if args.large:
        header(f"3. large catalog: {args.large_env}")
        print(
            "  (the first ever load encodes the 58,788 titles with the LM: several minutes, 10+ on a busy 2-core CPU;"
            " cached on disk after)",
            flush=True,
        )
        start = time.perf_counter()
        large_env, large_params = build(args.large_env, args.snapshots)
        print(f"  build env             : {time.perf_counter() - start:.2f} s")
        large = bench_jitted(large_env, large_params, args.large_users, args.large_steps, args.seed, args.repeats)
        print_jitted(large)
        per_step = scoring_flops_per_user_step(large["num_items"], large["dim"])
        achieved = per_step * large["rate"]
        users, n, d = args.large_users, large["num_items"], large["dim"]
        shape_rate, shape_s = matmul_rate(2 * users, d, n, args.matmul_repeats, seed=args.seed)
        square_rate, _ = matmul_rate(args.square, args.square, args.square, args.matmul_repeats, seed=args.seed)
        print(f"  scoring matmul        : (N={n:,}, d={d}) @ (d, 2) per user-step = {human(per_step, 'FLOP')} "
              "(interest and boredom memory in one pass)")
        print(f"  achieved (whole step) : {human(achieved, 'FLOP/s')} of scoring matmul")
        print(f"  reference same shape  : jnp.dot ({2 * users:,}, {d}) @ ({d}, {n:,}) in a jitted loop: "
              f"{human(shape_rate, 'FLOP/s')} ({shape_s * 1e3:.1f} ms per product, incl. a row max of its output)")
        print(f"  reference square      : jnp.dot {args.square}^3 in a jitted loop: {human(square_rate, 'FLOP/s')}")
        print(f"  fraction              : {achieved / shape_rate:.1%} of the same-shape dot, "
              f"{achieved / square_rate:.1%} of the square dot")
        step_ms = 1e3 * large["seconds"] / large["steps"]
        dot_ms = 1e3 * shape_s  # (2 users, d) @ (d, N) is exactly one step's scoring for every user
        print(f"  per step              : {step_ms:.2f} ms for {users:,} users; the scoring dot alone takes "
              f"~{dot_ms:.2f} ms at the same-shape rate ({dot_ms / step_ms:.0%} of the step)")
        summary.append((
            f"large catalog ({n:,} items, {users:,} users)",
            f"{human(large['rate'], 'user-steps/s')} ({large['steps']:,} steps; compile {large['compile_s']:.1f} s)",
        ))
        summary.append(("scoring matmul achieved", human(achieved, "FLOP/s")))
        summary.append(("  / same-shape jnp.dot", f"{achieved / shape_rate:.1%} (dot: {human(shape_rate, 'FLOP/s')})"))
        square_note = f"{achieved / square_rate:.1%} (dot: {human(square_rate, 'FLOP/s')})"
        summary.append((f"  / square {args.square}^3 jnp.dot", square_note))
    else:
        header("3. large catalog: skipped (--no-large)")

    # 4. memory -----------------------------------------------------------------------------------------------
    header(f"4. memory: catalog shared by all users ({args.env}, {args.steps} steps)")
    memory = memory_report(env, params, args.memory_users, args.steps, args.seed, {args.users: jitted["compiled"]})
    print(f"  params pytree         : {human_bytes(memory['params_bytes'])} "
          f"(catalog arrays {human_bytes(memory['catalog_bytes'])}), passed as an argument, not baked in")
    print(f"  {'users':>7} {'params':>11} {'state':>11} {'XLA args':>11} {'XLA temp':>11} {'XLA out':>11}  "
          f"{'per-user catalog copies would be':>32}")
    for row in memory["rows"]:
        cells = [human_bytes(row[k]) if k in row else "n/a" for k in ("params_bytes", "state_bytes", "argument_bytes",
                                                                       "temp_bytes", "output_bytes")]
        print(f"  {row['users']:>7,} " + " ".join(f"{c:>11}" for c in cells)
              + f"  {human_bytes(row['per_user_catalog_copy_bytes']):>32}")
    first, last = memory["rows"][0], memory["rows"][-1]
    scale = last["users"] / first["users"]
    params_same = first["params_bytes"] == last["params_bytes"]
    state_ratio = last["state_bytes"] / first["state_bytes"]
    print(f"  users x{scale:g}: params bytes {'identical' if params_same else 'DIFFERENT'}, "
          f"state bytes x{state_ratio:.2f} (linear in users)")
    if "temp_bytes" in first and "temp_bytes" in last:
        temp_ratio = last["temp_bytes"] / max(first["temp_bytes"], 1)
        print(f"  XLA temp x{temp_ratio:.2f}: the per-step (users, N) utility/score buffers, not catalog copies "
              f"({human_bytes(last['temp_bytes'])} vs {human_bytes(last['per_user_catalog_copy_bytes'])} for copies)")
    summary.append(("params bytes vs users", f"identical ({human_bytes(first['params_bytes'])})" if params_same
                    else "DIFFERENT (catalog is being copied!)"))
    summary.append((f"state bytes, {last['users']:,} vs {first['users']:,} users",
                    f"x{state_ratio:.2f} ({human_bytes(last['state_bytes'])} vs {human_bytes(first['state_bytes'])})"))
    if "temp_bytes" in first and "temp_bytes" in last:
        summary.append((f"XLA temp, {last['users']:,} vs {first['users']:,} users",
                        f"x{last['temp_bytes'] / max(first['temp_bytes'], 1):.2f} ({human_bytes(last['temp_bytes'])}: "
                        "per-step (users, N) scores, no catalog copies)"))

    # 5. summary ----------------------------------------------------------------------------------------------
    header("summary")
    print(f"  device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {len(jax.devices())} device(s)")
    width = max(len(name) for name, _ in summary)
    for name, value in summary:
        print(f"  {name:<{width}} : {value}")
    print(f"  total wall time: {time.perf_counter() - run_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
