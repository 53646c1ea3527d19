"""Bandit throughput: vmapped LinUCB in rlrec vs a per-round NumPy LinUCB loop, in one run.

What it measures (all in the same process, so the printed ratios compare like with like on a noisy machine):

(a) **Small synthetic problem** (bring-your-own arrays): ``--arms`` arms (default 10) with ``--arm-dim``
    (default 5) features, ``Catalog.from_arrays`` + ``Population.from_arrays`` + ``rlrec.make(
    "MovieLens-Bandit-v0", catalog=..., population=...)`` (no ``dim``, so the catalog is used as given).
    Decisions per second of LinUCB (``rlrec.agents.make_agent("linucb", env)``) for ``--seeds`` independent
    users x ``--steps`` rounds, against the same LinUCB written as a per-round NumPy loop for one user.
(b) **MovieLens slates**: ``MovieLens-BanditSlate-v0`` (9,066 items, d=32, slates of 5), same comparison.

**What is timed on the rlrec side.** ``rlrec.bench.runner.run`` builds a new ``jax.jit`` closure on every
call, so calling it twice does *not* skip compilation (verified: ``jax_log_compiles`` shows the rollout
recompiled on the second call). The headline number therefore comes from the runner's personal-mode step
rebuilt here from the public API (``agent.init/act/update`` + ``env.step``, same key schedule, agent state
re-initialised when a user's episode ends): ``jax.vmap`` over seeds of a ``jax.lax.scan`` over steps,
compiled ahead of time once (compile time reported separately), then a separate call timed with
``block_until_ready``. It carries regret/click sums instead of per-step outputs (no host transfer).
For reference, ``runner.run`` itself is called once on (a) at the end (``--runner``): its wall time, the
compile time inside it (measured with ``jax.monitoring``) and the remainder are printed, with its mean regret,
which must equal the scan's (same keys, same computation). That call runs under a watchdog
(``--runner-timeout``): on a 2-core CPU it deadlocks in about one call in three to five (two concurrent
batched ``lapack_strsm_ffi`` calls each wait for sub-tasks on XLA's full 2-thread pool); the script then
says so and exits with 2. ``--watchdog`` bounds the whole run (dump all stacks, exit 1).

**The NumPy reference** is the same algorithm, written the way one would in NumPy: ridge statistics
``A = lambda I + sum x x^T``, ``b = sum r x`` over the same features as ``rlrec.agents.base.bandit_features``
(item embedding, quality, appeal); each round ``A^-1`` (``np.linalg.inv``), ``theta = A^-1 b``, scores
``x^T theta + alpha sqrt(x^T A^-1 x)`` for every item (vectorised over items, BLAS matmuls, float32 like
rlrec), the same ``1e-6`` random tie-break, top-k, and an update with the observed click (per-slot rewards
on a slate). Clicks come from a NumPy simulation of the same user model: the utility formula of
``RecEnv.item_utilities`` and the multinomial logit with a no-click option of
``choice.click_probabilities`` (checked against the env's own functions at start-up), users drawn around the
prototypes as in ``population.sample_user``, a fresh user (and learner) every ``max_steps`` rounds. The
Bandit setting has no dynamics, so the reference computes a user's utilities and oracle once per episode
(rlrec's env recomputes them every step): this favours the NumPy loop, so the ratio is conservative.
One decision = one item or slate chosen for one user in one round, clicked or not, learned from.

**Sanity checks** (printed before any timing is trusted): the NumPy model's utilities and click
probabilities equal the env's; NumPy's LinUCB picks the same slate as ``LinUCB.act`` from the same ``(A, b)``;
and on (a) the mean cumulative regret per episode of both is printed (they differ only by random streams).

**Where LinUCB's time goes** (``--breakdown``): the same scan with two cut-down agents defined in this file,
LinUCB without the ``sqrt(x^T A^-1 x)`` variance term (still Cholesky, ``theta`` and tie-break) and a fixed
slate (no scoring at all: ``env.step`` + ``update`` only); the differences attribute the time.

Run from the repository root (CPU or GPU, nothing is hard-coded)::

    python benchmarks/bandit_throughput.py                     # defaults (~3-4 minutes on a 2-core CPU)
    python benchmarks/bandit_throughput.py --seeds 512 --steps 200 --slate-seeds 64 --slate-steps 20 \\
        --numpy-rounds 2000 --slate-numpy-rounds 100 --no-breakdown    # a quick smoke run
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import platform
import sys
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

import rlrec
from rlrec.agents import make_agent
from rlrec.agents.bandits import LinearState, LinUCB
from rlrec.agents.base import Transition, as_slate, bandit_features, slot_rewards, top_k_slate
from rlrec.bench import runner
from rlrec.data import Catalog
from rlrec.envs.recsys import EnvParams, RecEnv
from rlrec.simulators import choice
from rlrec.simulators.population import Population

# Shared formatting with the sibling benchmark (run from the repo root: benchmarks/ is on sys.path).
from env_throughput import compile_and_time, header, human  # noqa: E402

# -- helpers --------------------------------------------------------------------------------------------------


class CompileClock:
    """Seconds JAX spends tracing, lowering and compiling (``jax.monitoring`` events), to subtract from a call."""

    def __init__(self) -> None:
        self.seconds = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._record)

    def _record(self, event: str, duration: float, **_: Any) -> None:
        if event.startswith("/jax/core/compile/"):
            self.seconds += duration


def mean_and_se(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(se)


# -- the problems ---------------------------------------------------------------------------------------------


def synthetic_problem(arms: int, dim: int, prototypes: int, seed: int) -> tuple[RecEnv, EnvParams]:
    """(a): a bring-your-own catalog of ``arms`` items with ``dim``-d features and a random population.

    Random quality and popularity make every LinUCB feature (embedding, quality, appeal) vary across arms.
    ``dim`` is not passed to ``make``: a Catalog object is used as given (no PCA projection).
    """
    rng = np.random.default_rng(seed)
    catalog = Catalog.from_arrays(
        rng.normal(size=(arms, dim)),
        quality=rng.normal(size=arms),
        popularity=rng.integers(1, 1000, size=arms),
        name=f"synthetic-{arms}x{dim}",
    )
    population = Population.from_arrays(
        rng.normal(size=(prototypes, dim)), name=f"synthetic-{prototypes}-users", request_noise=0.5, seed=seed
    )
    return rlrec.make("MovieLens-Bandit-v0", catalog=catalog, population=population)


# -- the rlrec side: runner.run's personal-mode step as one AOT-compiled scan ---------------------------------


class LinUCBNoVariance(LinUCB):
    """LinUCB minus the exploration bonus: ``x^T theta`` only (Cholesky, ``theta`` and the tie-break kept)."""

    def act(self, key, state, obs, env_params):
        features, theta, _, _ = self.posterior(state, env_params, obs["request"])
        scores = features @ theta
        return top_k_slate(scores + 1e-6 * jax.random.uniform(key, scores.shape), self.slate_size)


class FixedSlate(LinUCB):
    """No scoring at all: a slate that cycles over the first items; ``update`` is LinUCB's (env + update cost)."""

    def act(self, key, state, obs, env_params):
        slate = jnp.arange(self.slate_size, dtype=jnp.int32) + state.steps % 3
        return slate[0] if self.slate_size == 1 else slate


def make_rollout(env: RecEnv, steps: int, horizon: int):
    """``rollout(params, agent, seed_keys) -> sums``: ``runner.run``'s personal mode without per-step outputs.

    Same key schedule as ``runner._init`` / ``runner._personal_step`` (so the same numbers as ``run`` for the
    same seed); per seed it returns the summed regret and clicks, the number of finished episodes, and the
    regret of the first ``horizon`` steps (the first episode: a cold-start learner).
    """

    def rollout(params: EnvParams, agent, seed_keys: jax.Array) -> dict[str, jax.Array]:
        def one_seed(seed_key):
            init_key, stream_key = jax.random.split(seed_key)
            env_key, agent_key = jax.random.split(init_key)
            obs, env_state = env.reset(env_key, params)
            agent_state = agent.init(agent_key, params)
            zero = jnp.zeros((), jnp.float32)
            sums0 = {"regret": zero, "reward": zero, "episodes": zero, "first_episode_regret": zero}

            def body(carry, t):
                env_state, obs, agent_state, sums = carry
                act_key, step_key, update_key, reinit_key = jax.random.split(jax.random.fold_in(stream_key, t), 4)
                action = agent.act(act_key, agent_state, obs, params)
                step = env.step(step_key, env_state, action, params)
                next_obs, next_state, reward, terminated, truncated, info = step
                done = jnp.logical_or(terminated, truncated)
                transition = Transition(
                    obs=obs,
                    action=action,
                    reward=reward,
                    slot_rewards=slot_rewards(info["clicked_slot"], as_slate(action).shape[0]),
                    next_obs=info["final_observation"],
                    done=done,
                )
                agent_state, _ = agent.update(update_key, agent_state, transition, params)
                fresh = agent.init(reinit_key, params)  # a new user gets a new learner
                agent_state = jax.tree.map(lambda new, old: jnp.where(done, new, old), fresh, agent_state)
                sums = {
                    "regret": sums["regret"] + info["regret"],
                    "reward": sums["reward"] + reward,
                    "episodes": sums["episodes"] + done.astype(jnp.float32),
                    "first_episode_regret": sums["first_episode_regret"] + jnp.where(t < horizon, info["regret"], 0.0),
                }
                return (next_state, next_obs, agent_state, sums), None

            (_, _, _, sums), _ = jax.lax.scan(body, (env_state, obs, agent_state, sums0), jnp.arange(steps))
            return sums

        return jax.vmap(one_seed)(seed_keys)

    return rollout


def seed_keys_for(num_seeds: int, seed: int) -> jax.Array:
    """``fold_in(key(seed), s)`` for each seed ``s`` (as ``runner.run``), sharded over the devices."""
    root = jax.random.key(seed)
    keys = jax.vmap(lambda s: jax.random.fold_in(root, s))(jnp.arange(num_seeds))
    return jax.device_put(keys, NamedSharding(runner.seed_mesh(num_seeds), PartitionSpec("seeds")))


def bench_scan(env: RecEnv, params: EnvParams, agent, seeds: int, steps: int, seed: int,
               repeats: int) -> dict[str, Any]:
    """Compiles the rollout once (AOT), then times ``repeats`` separate calls (best used)."""
    horizon = int(min(steps, int(params.max_steps)))
    keys = seed_keys_for(seeds, seed)
    _, compile_s, sums, times = compile_and_time(make_rollout(env, steps, horizon), (params, agent, keys), repeats)
    sums = {name: np.asarray(value, dtype=np.float64) for name, value in sums.items()}
    decisions = seeds * steps
    best = min(times)
    return {
        "seeds": seeds,
        "steps": steps,
        "horizon": horizon,
        "decisions": decisions,
        "compile_s": compile_s,
        "times": times,
        "seconds": best,
        "rate": decisions / best,
        "mean_regret": sums["regret"].sum() / decisions,
        "click_rate": sums["reward"].sum() / decisions,
        "episodes": sums["episodes"].sum(),
        "first_episode_regret": sums["first_episode_regret"],  # (seeds,)
    }


def print_scan(result: dict[str, Any]) -> None:
    times = ", ".join(f"{t:.3f}" for t in result["times"])
    print(f"  seeds x steps         : {result['seeds']:,} x {result['steps']:,} = {result['decisions']:,} decisions")
    print(f"  compile (AOT, once)   : {result['compile_s']:.2f} s (not included below)")
    print(f"  timed call(s)         : {times} s (best used)")
    print(f"  throughput            : {human(result['rate'], 'decisions/s')}")
    print(f"  checksums             : mean regret/step {result['mean_regret']:.4f}, click rate "
          f"{result['click_rate']:.4f}, episodes finished {result['episodes']:,.0f}")


def bench_runner(env: RecEnv, params: EnvParams, agent, seeds: int, steps: int, seed: int, clock: CompileClock,
                 timeout_s: float) -> dict[str, Any] | None:
    """One ``runner.run`` call: wall time, the compile time inside it, and what is left (``None``: it hung).

    The call runs in a daemon thread joined with a timeout, because on a 2-core CPU it deadlocks in about one
    call in three to five (seen with jaxlib 0.10.2): both threads of XLA's intra-op pool sit in jaxlib's
    LAPACK kernel ``lapack_strsm_ffi`` (the batched triangular solves of LinUCB's ``cho_solve``), each waiting
    in ``ParallelBatchMap`` for sub-tasks queued on that same, now full, pool. The scan above runs the same
    solves and could in principle stall the same way; ``--watchdog`` bounds the whole run.
    """
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["result"] = runner.run(env, params, agent, num_seeds=seeds, num_steps=steps, seed=seed,
                                           mode=runner.PERSONAL, accuracy_k=0)
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
            outcome["error"] = error

    compile_before = clock.seconds
    start = time.perf_counter()
    thread = threading.Thread(target=call, name="runner.run", daemon=True)
    thread.start()
    thread.join(timeout_s)
    wall = time.perf_counter() - start
    if thread.is_alive():
        return None
    if "error" in outcome:
        raise outcome["error"]
    compile_s = clock.seconds - compile_before
    return {
        "wall_s": wall,
        "compile_s": compile_s,
        "rest_s": wall - compile_s,
        "rate_rest": seeds * steps / max(wall - compile_s, 1e-9),
        "mean_regret": float(np.mean(outcome["result"].regret, dtype=np.float64)),
    }


# -- the NumPy reference --------------------------------------------------------------------------------------


class NumpyModel:
    """The Bandit-setting user model in NumPy: utilities, MNL click probabilities, the oracle, user sampling."""

    def __init__(self, params: EnvParams, slate_size: int) -> None:
        for name in ("drift_rate", "boredom_weight", "step_cost"):
            if float(getattr(params, name)) != 0.0:
                raise ValueError(f"the NumPy reference models the Bandit setting only ({name} must be 0)")
        self.embeddings = np.asarray(params.item_features, np.float32)
        self.quality = np.asarray(params.item_quality, np.float32)
        self.appeal = np.asarray(params.item_appeal, np.float32)
        self.interests = np.asarray(params.prototype_interests, np.float32)
        log_weights = np.asarray(params.prototype_log_weights, np.float64)
        weights = np.exp(log_weights - log_weights.max())
        self.cumulative = np.cumsum(weights / weights.sum())
        self.interest_noise = float(params.interest_noise)
        self.affinity = float(params.affinity_weight)
        self.quality_weight = float(params.quality_weight)
        self.appeal_weight = float(params.appeal_weight)
        self.temperature = float(params.temperature)
        self.no_click = float(params.no_click_logit) / self.temperature
        self.position_bias = np.broadcast_to(np.asarray(params.position_bias, np.float32), (slate_size,)).copy()
        self.slot_order = np.argsort(-self.position_bias, kind="stable")  # slots from highest bias down
        self.slate_size = slate_size
        self.max_steps = int(params.max_steps)

    def sample_interest(self, rng: np.random.Generator) -> np.ndarray:
        prototype = min(int(np.searchsorted(self.cumulative, rng.random(), side="right")), len(self.cumulative) - 1)
        dim = self.interests.shape[1]
        interest = self.interests[prototype] + self.interest_noise * rng.standard_normal(dim) / np.sqrt(dim)
        return (interest / max(np.linalg.norm(interest), 1e-12)).astype(np.float32)

    def utilities(self, interest: np.ndarray) -> np.ndarray:
        """``RecEnv.item_utilities`` with no boredom (the Bandit setting)."""
        # OpenBLAS's float32 kernels can leave a stale "invalid" FP flag that NumPy reports as a warning for a
        # finite product; check the result itself instead.
        with np.errstate(invalid="ignore"):
            match = self.embeddings @ interest
        if not np.isfinite(match).all():
            raise FloatingPointError("non-finite item/interest scores")
        return self.affinity * match + self.quality_weight * self.quality + self.appeal_weight * self.appeal

    def click_probabilities(self, slate_utilities: np.ndarray) -> np.ndarray:
        """MNL with a no-click option (``choice.click_probabilities``, model ``"mnl"``)."""
        logits = (slate_utilities + self.position_bias) / self.temperature
        top = max(self.no_click, float(logits.max()))
        weights = np.exp(logits - top)
        return weights / (np.exp(self.no_click - top) + weights.sum())

    def oracle_probability(self, utilities: np.ndarray) -> float:
        """P(click) of the best slate: the top-k utilities, best item in the highest-bias slot."""
        k = self.slate_size
        best = np.argpartition(-utilities, k - 1)[:k] if k < len(utilities) else np.arange(len(utilities))
        best = best[np.argsort(-utilities[best], kind="stable")]
        slate = np.empty(k, np.int64)
        slate[self.slot_order] = best
        return float(self.click_probabilities(utilities[slate]).sum())


def numpy_scores(features: np.ndarray, precision: np.ndarray, response: np.ndarray, alpha: float) -> np.ndarray:
    """LinUCB scores ``x^T theta + alpha sqrt(x^T A^-1 x)`` of every item (no tie-break)."""
    covariance = np.linalg.inv(precision)
    theta = covariance @ response
    variance = np.maximum(((features @ covariance) * features).sum(axis=1), 0.0)
    return features @ theta + alpha * np.sqrt(variance)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best-scoring items, best first."""
    if k == 1:
        return np.array([int(np.argmax(scores))])
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.argsort(-scores[best], kind="stable")]


def numpy_linucb(model: NumpyModel, features: np.ndarray, rounds: int, alpha: float, regulariser: float,
                 seed: int) -> dict[str, Any]:
    """A per-round NumPy LinUCB loop for one user stream (a fresh user and learner every ``max_steps`` rounds).

    Timed end to end: user draws, scoring, top-k, click simulation, update. Regret is summed per episode.
    """
    rng = np.random.default_rng(seed)
    features = np.ascontiguousarray(features, dtype=np.float32)
    num_items, size = features.shape
    k, max_steps = model.slate_size, model.max_steps
    identity = (regulariser * np.eye(size)).astype(np.float32)
    episode_regrets: list[float] = []
    clicks = 0
    precision = response = utilities = None
    oracle = episode_regret = 0.0
    start = time.perf_counter()
    for t in range(rounds):
        if t % max_steps == 0:  # a new user and a new learner (the runner's personal mode)
            if t:
                episode_regrets.append(episode_regret)
            utilities = model.utilities(model.sample_interest(rng))
            oracle = model.oracle_probability(utilities)
            precision, response, episode_regret = identity.copy(), np.zeros(size, np.float32), 0.0
        # act
        covariance = np.linalg.inv(precision)
        theta = covariance @ response
        variance = np.maximum(((features @ covariance) * features).sum(axis=1), 0.0)
        scores = features @ theta + alpha * np.sqrt(variance) + 1e-6 * rng.random(num_items, dtype=np.float32)
        slate = top_k(scores, k)
        # the user
        probabilities = model.click_probabilities(utilities[slate])
        episode_regret += max(oracle - float(probabilities.sum()), 0.0)
        slot = int(np.searchsorted(np.cumsum(probabilities), rng.random(), side="right"))  # == k: no click
        # update
        shown = features[slate]
        precision += shown.T @ shown
        if slot < k:
            response += shown[slot]
            clicks += 1
    seconds = time.perf_counter() - start
    if rounds % max_steps == 0 and rounds:
        episode_regrets.append(episode_regret)
    return {
        "rounds": rounds,
        "seconds": seconds,
        "rate": rounds / seconds,
        "click_rate": clicks / rounds,
        "episode_regrets": np.asarray(episode_regrets),
        "precision": precision,
        "response": response,
    }


def check_numpy_model(env: RecEnv, params: EnvParams, model: NumpyModel, seed: int, users: int = 8) -> dict[str, float]:
    """Max |difference| between the NumPy model and the env's own functions on users drawn by ``env.reset``."""
    keys = jax.random.split(jax.random.key(seed), users)
    _, states = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    utilities = np.asarray(jax.jit(jax.vmap(lambda s: env.item_utilities(s, params)[0]))(states))
    rng = np.random.default_rng(seed)
    utility_error = probability_error = 0.0
    position_bias = jnp.asarray(model.position_bias)
    for user in range(users):
        mine = model.utilities(np.asarray(states.interest[user]))
        utility_error = max(utility_error, float(np.max(np.abs(mine - utilities[user]))))
        slate = rng.choice(len(mine), size=model.slate_size, replace=False)
        theirs = choice.click_probabilities(
            (jnp.asarray(utilities[user][slate]) + position_bias) / params.temperature,
            params.no_click_logit / params.temperature,
            env.choice_model,
        )
        probability_error = max(probability_error, float(np.max(np.abs(model.click_probabilities(mine[slate])
                                                                            - np.asarray(theirs)))))
    return {"utility": utility_error, "probability": probability_error}


def same_decision(env: RecEnv, params: EnvParams, agent: LinUCB, precision: np.ndarray, response: np.ndarray,
                  alpha: float) -> tuple[bool, np.ndarray, np.ndarray]:
    """Does ``agent.act`` pick the NumPy reference's slate from the same ``(A, b)``? (tie-break noise aside)"""
    features = np.asarray(bandit_features(params), np.float32)
    mine = top_k(numpy_scores(features, precision, response, alpha), env.slate_size)
    state = LinearState(precision=jnp.asarray(precision), response=jnp.asarray(response),
                        steps=jnp.ones((), jnp.int32))
    _, reset_state = env.reset(jax.random.key(0), params)
    obs = env.get_obs(reset_state)
    theirs = np.atleast_1d(np.asarray(jax.jit(agent.act)(jax.random.key(1), state, obs, params)))
    return bool(np.array_equal(mine, theirs)), mine, theirs


# -- one problem end to end -----------------------------------------------------------------------------------


def bench_problem(env: RecEnv, params: EnvParams, seeds: int, steps: int, numpy_rounds: int,
                  args: argparse.Namespace) -> dict[str, Any]:
    agent = make_agent("linucb", env)
    num_items, dim = int(params.item_features.shape[0]), int(params.item_features.shape[1])
    size = int(bandit_features(params).shape[1])
    print(f"  catalog               : {num_items:,} items, d={dim}; LinUCB features f={size} "
          f"(embedding, quality, appeal); slate size {env.slate_size}; episode {int(params.max_steps)} steps")
    print(f"  agent                 : make_agent('linucb', env): alpha={agent.alpha}, "
          f"regulariser={agent.regulariser}, context={agent.context!r}")

    model = NumpyModel(params, env.slate_size)
    # The checks compare formulas, so they run with full float32 matmuls (a GPU's default may use TF32).
    with jax.default_matmul_precision("float32"):
        errors = check_numpy_model(env, params, model, args.seed)
    model_ok = errors["utility"] < 1e-4 and errors["probability"] < 1e-5
    print(f"  NumPy model vs env    : max |utility diff| {errors['utility']:.1e}, max |P(click) diff| "
          f"{errors['probability']:.1e} ({'same model' if model_ok else 'MISMATCH'})")

    print("  rlrec scan            : compiling and running ...", flush=True)
    scan = bench_scan(env, params, agent, seeds, steps, args.seed, args.repeats)
    print_scan(scan)
    result: dict[str, Any] = {"scan": scan, "model_ok": model_ok}

    features = np.asarray(bandit_features(params), np.float32)
    rounds = max(numpy_rounds, 1)
    print(f"  NumPy loop            : {rounds:,} rounds, one user stream ...", flush=True)
    reference = numpy_linucb(model, features, rounds, float(agent.alpha), float(agent.regulariser), args.seed)
    print(f"  NumPy throughput      : {human(reference['rate'], 'decisions/s')} ({rounds:,} rounds in "
          f"{reference['seconds']:.2f} s, {1e6 / reference['rate']:.1f} us/decision), click rate "
          f"{reference['click_rate']:.4f}")
    with jax.default_matmul_precision("float32"):
        agree, mine, theirs = same_decision(env, params, agent, reference["precision"], reference["response"],
                                            float(agent.alpha))
    print(f"  same decision         : NumPy {mine.tolist()} vs LinUCB.act {theirs.tolist()} from the NumPy "
          f"loop's final (A, b): {'identical' if agree else 'DIFFERENT'}")
    result.update(numpy=reference, same_decision=agree)

    horizon = scan["horizon"]
    rlrec_regret, rlrec_se = mean_and_se(scan["first_episode_regret"])
    episodes = reference["episode_regrets"]
    if horizon == model.max_steps and len(episodes):
        numpy_regret, numpy_se = mean_and_se(episodes)
        gap = abs(rlrec_regret - numpy_regret) / np.hypot(rlrec_se, numpy_se if np.isfinite(numpy_se) else 0.0)
        print(f"  cumulative regret     : per {horizon}-step episode (cold-start learner), rlrec "
              f"{rlrec_regret:.3f} +- {rlrec_se:.3f} ({seeds:,} users) vs NumPy {numpy_regret:.3f} +- "
              f"{numpy_se:.3f} ({len(episodes)} users): {gap:.1f} standard errors apart")
        result["regret"] = (rlrec_regret, rlrec_se, numpy_regret, numpy_se, len(episodes), gap)
    else:
        print(f"  cumulative regret     : rlrec {rlrec_regret:.3f} +- {rlrec_se:.3f} over the first {horizon} steps; "
              f"NumPy: needs >= {model.max_steps} rounds and --steps >= {model.max_steps} to compare whole episodes")

    ratio = scan["rate"] / reference["rate"]
    result["ratio"] = ratio
    print(f"  ratio rlrec / NumPy   : {ratio:,.1f}x")
    return result


def breakdown(env: RecEnv, params: EnvParams, seeds: int, steps: int, seed: int,
              repeats: int) -> list[tuple[str, dict[str, Any]]]:
    """The scan with LinUCB, LinUCB without the variance term, and a fixed slate: time per decision of each."""
    variants = [
        ("LinUCB", make_agent("linucb", env)),
        ("LinUCB without variance term", LinUCBNoVariance(slate_size=env.slate_size, label="linucb-no-variance")),
        ("fixed slate (env.step + update)", FixedSlate(slate_size=env.slate_size, label="fixed-slate")),
    ]
    rows = []
    for name, agent in variants:
        result = bench_scan(env, params, agent, seeds, steps, seed, repeats)
        rows.append((name, result))
    full, no_variance, fixed = (row[1]["seconds"] for row in rows)
    num_items = int(params.item_features.shape[0])
    size = int(bandit_features(params).shape[1])
    decisions = seeds * steps
    print(f"  {seeds:,} seeds x {steps:,} steps = {decisions:,} decisions, best of {repeats} call(s) each "
          "(compile excluded)")
    print(f"  {'variant':<34} {'seconds':>8} {'decisions/s':>16} {'us/decision':>12}")
    for name, result in rows:
        print(f"  {name:<34} {result['seconds']:>8.3f} {human(result['rate'], 'dec/s'):>16} "
              f"{1e6 / result['rate']:>12.2f}")
    variance_flops = 2 * num_items * size * size + 2 * num_items * size  # (N, f) @ (f, f), then x * . summed
    variance_s = max(full - no_variance, 0.0)
    print(f"  shares of LinUCB time : variance term {variance_s / full:.0%}, rest of scoring (Cholesky, theta, "
          f"N x f matvec, tie-break, top-k) {max(no_variance - fixed, 0.0) / full:.0%}, env.step + update + "
          f"re-init {min(fixed / full, 1.0):.0%}")
    if variance_s > 0:
        print(f"  variance term         : 2 N f^2 = {human(variance_flops, 'FLOP')} per decision "
              f"(N={num_items:,}, f={size}); achieved {human(variance_flops * decisions / variance_s, 'FLOP/s')}")
    return rows


# -- main -----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--arms", type=int, default=10, help="(a) number of arms (items)")
    parser.add_argument("--arm-dim", type=int, default=5, help="(a) arm feature dimension")
    parser.add_argument("--prototypes", type=int, default=100, help="(a) prototype users of the synthetic population")
    parser.add_argument("--seeds", type=int, default=4096, help="(a) seeds (independent user streams, vmapped)")
    parser.add_argument("--steps", type=int, default=1000, help="(a) rounds per seed (lax.scan)")
    parser.add_argument("--numpy-rounds", type=int, default=20000, help="(a) rounds of the NumPy loop")
    parser.add_argument("--slate-env", default="MovieLens-BanditSlate-v0", help="(b) registered Bandit env id")
    parser.add_argument("--slate-seeds", type=int, default=256, help="(b) seeds")
    parser.add_argument("--slate-steps", type=int, default=200, help="(b) rounds per seed")
    parser.add_argument("--slate-numpy-rounds", type=int, default=400, help="(b) rounds of the NumPy loop")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls of each compiled scan (best is used)")
    parser.add_argument("--runner", action=argparse.BooleanOptionalAction, default=True,
                        help="(a) also call rlrec.bench.runner.run once, last (wall, compile inside, regret check)")
    parser.add_argument("--runner-timeout", type=float, default=120.0,
                        help="seconds to wait for the runner.run call (~15 s on a quiet 2-core CPU) before giving up")
    parser.add_argument("--watchdog", type=float, default=1800.0,
                        help="seconds after which the whole run dumps all stacks and exits (a stuck XLA call)")
    parser.add_argument("--breakdown", action=argparse.BooleanOptionalAction, default=True,
                        help="time LinUCB without its variance term and a fixed slate, on (a) and (b)")
    parser.add_argument("--breakdown-steps", type=int, default=200, help="(a) rounds per seed in the breakdown")
    parser.add_argument("--slate-breakdown-steps", type=int, default=20, help="(b) rounds per seed in the breakdown")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("arms", "arm_dim", "prototypes", "seeds", "steps", "numpy_rounds", "slate_seeds", "slate_steps",
                 "slate_numpy_rounds", "repeats", "breakdown_steps", "slate_breakdown_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("runner_timeout", "watchdog"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_start = time.perf_counter()
    # Last resort against a deadlock inside XLA (see bench_runner): print every thread's stack and exit.
    faulthandler.dump_traceback_later(args.watchdog, exit=True)
    clock = CompileClock()
    summary: list[tuple[str, str]] = []

    header("machine")
    print(f"  jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    print(f"  numpy {np.__version__}, python {platform.python_version()}, {os.cpu_count()} CPU cores visible, "
          f"{platform.platform()}")
    print(f"  embedding cache: {os.environ.get('RLREC_CACHE_DIR', '(default location)')}")

    # (a) --------------------------------------------------------------------------------------------------------
    header(f"(a) synthetic: {args.arms} arms x {args.arm_dim}-d features (bring-your-own arrays)")
    env_a, params_a = synthetic_problem(args.arms, args.arm_dim, args.prototypes, args.seed)
    a = bench_problem(env_a, params_a, args.seeds, args.steps, args.numpy_rounds, args)
    verdict = "meets" if a["ratio"] >= 100 else "BELOW"
    print(f"  target                : >= 100x over the NumPy loop: {verdict}")

    # (b) --------------------------------------------------------------------------------------------------------
    header(f"(b) {args.slate_env}")
    start = time.perf_counter()
    env_b, params_b = rlrec.make(args.slate_env)
    print(f"  rlrec.make            : {time.perf_counter() - start:.2f} s (catalog + population, cached embeddings)")
    b = bench_problem(env_b, params_b, args.slate_seeds, args.slate_steps, args.slate_numpy_rounds, args)

    # breakdown --------------------------------------------------------------------------------------------------
    rows_a = rows_b = None
    if args.breakdown:
        header(f"where LinUCB's time goes: (a) {args.arms} arms")
        rows_a = breakdown(env_a, params_a, args.seeds, args.breakdown_steps, args.seed, args.repeats)
        header(f"where LinUCB's time goes: (b) {args.slate_env}")
        rows_b = breakdown(env_b, params_b, args.slate_seeds, args.slate_breakdown_steps, args.seed, args.repeats)
    else:
        header("where LinUCB's time goes: skipped (--no-breakdown)")

    # runner.run reference -----------------------------------------------------------------------------------
    runner_hung = False
    if args.runner:
        header(f"(a) through rlrec.bench.runner.run, one call ({args.seeds:,} seeds x {args.steps:,} steps)")
        ran = bench_runner(env_a, params_a, make_agent("linucb", env_a), args.seeds, args.steps, args.seed, clock,
                           args.runner_timeout)
        if ran is None:
            runner_hung = True
            print(f"  runner.run            : did NOT return within {args.runner_timeout:.0f} s (the lapack_strsm_ffi "
                  "deadlock described in bench_runner, or a very busy machine); the numbers above are unaffected")
        else:
            scan_regret = a["scan"]["mean_regret"]
            agree = abs(ran["mean_regret"] - scan_regret) <= 1e-4 * max(1.0, abs(scan_regret))
            print(f"  wall time             : {ran['wall_s']:.2f} s, of which {ran['compile_s']:.2f} s tracing + "
                  "compiling (run() jits a new closure on every call, so a second call compiles again)")
            print(f"  the rest              : {ran['rest_s']:.2f} s = {human(ran['rate_rest'], 'decisions/s')} "
                  f"(per-step metrics and their host transfer included) vs the scan's "
                  f"{human(a['scan']['rate'], 'decisions/s')}")
            print(f"  mean regret/step      : {ran['mean_regret']:.4f} vs the scan's {scan_regret:.4f} "
                  f"({'identical computation' if agree else 'DIFFERENT'})")
            a["runner"] = dict(ran, agree=agree)
    else:
        header("(a) through rlrec.bench.runner.run: skipped (--no-runner)")

    # summary ----------------------------------------------------------------------------------------------------
    for tag, result, seeds, steps in (("a", a, args.seeds, args.steps), ("b", b, args.slate_seeds, args.slate_steps)):
        scan, reference = result["scan"], result["numpy"]
        summary.append((f"({tag}) rlrec LinUCB (vmap+scan)",
                        f"{human(scan['rate'], 'decisions/s')} ({seeds:,} seeds x {steps:,} steps, "
                        f"{scan['seconds']:.1f} s; compile {scan['compile_s']:.1f} s, not included)"))
        summary.append((f"({tag}) NumPy LinUCB loop", f"{human(reference['rate'], 'decisions/s')} "
                        f"({reference['rounds']:,} rounds, {reference['seconds']:.2f} s)"))
        target = f" (target >= 100x: {'meets' if result['ratio'] >= 100 else 'BELOW'})" if tag == "a" else ""
        summary.append((f"({tag}) ratio rlrec / NumPy", f"{result['ratio']:,.1f}x{target}"))
        checks = [
            "model = env" if result["model_ok"] else "MODEL MISMATCH",
            "same decision" if result["same_decision"] else "DIFFERENT DECISION",
        ]
        if "regret" in result:
            r_rlrec, _, r_numpy, _, _, gap = result["regret"]
            checks.append(f"episode regret {r_rlrec:.2f} vs {r_numpy:.2f} ({gap:.1f} SE)")
        summary.append((f"({tag}) checks", ", ".join(checks)))
        if tag == "a" and runner_hung:
            summary.append(("(a) runner.run, one call", f"HUNG (no return within {args.runner_timeout:.0f} s; "
                            "exit status 2)"))
        if tag == "a" and "runner" in result:
            ran = result["runner"]
            summary.append(("(a) runner.run, one call", f"{ran['wall_s']:.1f} s wall = {ran['compile_s']:.1f} s "
                            f"compile "
                            f"+ {ran['rest_s']:.1f} s ({human(ran['rate_rest'], 'decisions/s')}); regret "
                            f"{'identical' if ran['agree'] else 'DIFFERENT'}"))
    for tag, rows in (("a", rows_a), ("b", rows_b)):
        if rows:
            full, no_variance, fixed = (row[1]["seconds"] for row in rows)
            summary.append((f"({tag}) LinUCB time shares", f"variance term {max(full - no_variance, 0) / full:.0%}, "
                            f"other scoring {max(no_variance - fixed, 0) / full:.0%}, env+update "
                            f"{min(fixed / full, 1):.0%}"))

    header("summary")
    print(f"  device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {len(jax.devices())} device(s)")
    width = max(len(name) for name, _ in summary)
    for name, value in summary:
        print(f"  {name:<{width}} : {value}")
    print(f"  total wall time: {time.perf_counter() - run_start:.1f} s", flush=True)
    if runner_hung:  # a thread is stuck inside XLA: skip interpreter teardown, which could wait on it
        sys.stderr.flush()
        os._exit(2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
