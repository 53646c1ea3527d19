"""Linear-bandit throughput: rlrec's jitted, vmapped bandits against per-round NumPy loops, in one run.

What it measures (all in one process, so the printed ratios compare like with like on a noisy machine):

(a) **Small synthetic problem** (bring-your-own arrays): ``--arms`` arms (default 10) with ``--arm-dim``
    (default 5) features (``Catalog.from_arrays`` + ``Population.from_arrays`` + ``rlrec.make(
    "MovieLens-Bandit-v0", catalog=..., population=...)``). Decisions per second of LinUCB for ``--seeds``
    independent users x ``--steps`` rounds, against the textbook LinUCB as a per-round NumPy loop.
(b) **MovieLens slates** (``MovieLens-BanditSlate-v0``: 9,066 items, d=32, f=34 LinUCB features, slates of 5):
    LinUCB, LinTS and epsilon-greedy, against two NumPy loops of LinUCB: the **textbook** one a user would write
    (``A^-1`` by ``np.linalg.inv`` every round, variances ``x^T A^-1 x`` of every item: ``O(N f^2)``), and the
    **same incremental algorithm** as rlrec's (a square root of ``A^-1`` and the estimate updated per shown slot,
    every item's variance kept: ``O(N f)`` per slot). The first ratio is what a user gains; the second separates
    the compiler's (and ``vmap``'s) gain from the algorithm's.
(c) **IMDB slates** (``--imdb``: ``IMDB-BanditSlate-v0``, 58,788 items): LinUCB's decisions per second.

**What is timed on the rlrec side**: ``rlrec.run`` itself (personal mode: one learner per user; the oracle and
regret computed every step, per-step outputs fetched to the host), called once to compile and then
``--repeats`` times; the best running time is used (compilation is reported apart: ``RunResult.compile_time``).

**The NumPy loops** run one user stream, float32 like rlrec, over the same features
(:func:`rlrec.envs.recsys.bandit_features`), with clicks from a NumPy copy of the user model (the utility
formula of ``RecEnv.item_utilities`` and the multinomial logit of ``choice.click_probabilities``, checked
against the env's own functions at start-up), a fresh user (and learner) every ``max_steps`` rounds. The Bandit
setting has no dynamics, so they compute a user's utilities and oracle once per episode where rlrec's env does
it every step: the ratios are conservative. One decision = one item or slate chosen for one user, clicked or
not, learned from.

**Where the time goes** (``--breakdown``): ``rlrec.run`` with LinUCB, with LinUCB that does not update (act and
env), and with a fixed slate that does not update (the env step, the auto-reset and the runner's per-step
metrics): the differences give the shares of ``act``, ``update`` and ``env.step``.

Run from the repository root (CPU or GPU, nothing is hard-coded)::

    python benchmarks/bandit_throughput.py                 # defaults, about 3 minutes on a 2-core CPU
    python benchmarks/bandit_throughput.py --imdb          # adds the 58,788-title catalog (encoded once)
    python benchmarks/bandit_throughput.py --seeds 256 --steps 100 --slate-seeds 32 --slate-steps 20 \\
        --numpy-rounds 2000 --slate-numpy-rounds 40 --no-breakdown     # a quick smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# Shared formatting with the sibling benchmark (run from the repo root: benchmarks/ is on sys.path).
from env_throughput import header, human

import rlrec
from rlrec.agents import LinUCB, make_agent
from rlrec.agents.bandits import LinearState
from rlrec.agents.base import Agent
from rlrec.data import Catalog
from rlrec.envs.recsys import EnvParams, RecEnv, bandit_features
from rlrec.simulators import choice
from rlrec.simulators.population import Population

# -- the rlrec side -------------------------------------------------------------------------------------------


def bench_rlrec(env: RecEnv, params: EnvParams, agents: dict[str, Agent], seeds: int, steps: int, seed: int,
                repeats: int) -> dict[str, dict[str, float]]:
    """``rlrec.run`` for each agent: compile once, then ``repeats`` rounds in turn; the best time of each."""
    results: dict[str, dict[str, float]] = {}
    for name, agent in agents.items():
        first = rlrec.run(env, params, agent, num_seeds=seeds, num_steps=steps, seed=seed, accuracy_k=0)
        results[name] = {"compile_s": first.compile_time, "seconds": np.inf,
                         "regret": float(first.regret.mean(dtype=np.float64))}
    for _ in range(repeats):  # interleaved, so that a noisy spell hits every agent alike
        for name, agent in agents.items():
            result = rlrec.run(env, params, agent, num_seeds=seeds, num_steps=steps, seed=seed, accuracy_k=0)
            results[name]["seconds"] = min(results[name]["seconds"], result.wall_time - result.compile_time)
    for values in results.values():
        values["rate"] = seeds * steps / values["seconds"]
    return results


class FrozenLinUCB(LinUCB):
    """LinUCB that never learns: ``act`` and the env step, no ``update`` (for the time breakdown)."""

    def update(self, key, state, transition, env_params):
        return state, {}


class FixedSlate(FrozenLinUCB):
    """A fixed slate, no learning: the env step, its auto-reset and the runner's per-step metrics only."""

    def act(self, key, state, obs, env_params):
        slate = jnp.arange(self.slate_size, dtype=jnp.int32)
        return slate[0] if self.slate_size == 1 else slate


def breakdown(env: RecEnv, params: EnvParams, seeds: int, steps: int, seed: int, repeats: int) -> dict[str, float]:
    """Seconds per decision of LinUCB's ``act``, ``update`` and the env step (the rest)."""
    k = env.slate_size
    variants = {"linucb": make_agent("linucb", env), "no update": FrozenLinUCB(slate_size=k),
                "fixed slate": FixedSlate(slate_size=k)}
    timed = bench_rlrec(env, params, variants, seeds, steps, seed, repeats)
    per = {name: values["seconds"] / (seeds * steps) for name, values in timed.items()}
    shares = {
        "act": max(per["no update"] - per["fixed slate"], 0.0),
        "update": max(per["linucb"] - per["no update"], 0.0),
        "env.step + runner": per["fixed slate"],
    }
    total = per["linucb"]
    print(f"  LinUCB, {seeds:,} seeds x {steps:,} steps: {1e6 * total:.2f} us per decision, of which")
    for name, seconds in shares.items():
        print(f"    {name:<18} {1e6 * seconds:8.2f} us  {seconds / total:5.0%}")
    return {name: seconds / total for name, seconds in shares.items()}


# -- the NumPy side -------------------------------------------------------------------------------------------


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
        return self.affinity * (self.embeddings @ interest) + self.quality_weight * self.quality + (
            self.appeal_weight * self.appeal
        )

    def click_probabilities(self, slate_utilities: np.ndarray) -> np.ndarray:
        """MNL with a no-click option (``choice.click_probabilities``, model ``"mnl"``)."""
        logits = (slate_utilities + self.position_bias) / self.temperature
        top = max(self.no_click, float(logits.max()))
        weights = np.exp(logits - top)
        return weights / (np.exp(self.no_click - top) + weights.sum())

    def oracle_probability(self, utilities: np.ndarray) -> float:
        """P(click) of the best slate: the top-k utilities, best item in the highest-bias slot."""
        k = self.slate_size
        best = top_k(utilities, k)
        slate = np.empty(k, np.int64)
        slate[self.slot_order] = best
        return float(self.click_probabilities(utilities[slate]).sum())


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best-scoring items, best first."""
    if k == 1:
        return np.array([int(np.argmax(scores))])
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.argsort(-scores[best], kind="stable")]


class TextbookLinUCB:
    """LinUCB as a user writes it: ``A^-1`` by inversion each round, every item's ``x^T A^-1 x``: ``O(N f^2)``."""

    def __init__(self, features: np.ndarray, alpha: float, regulariser: float) -> None:
        self.features, self.alpha, self.regulariser = features, alpha, regulariser

    def reset(self) -> None:
        size = self.features.shape[1]
        self.precision = (self.regulariser * np.eye(size)).astype(np.float32)
        self.response = np.zeros(size, np.float32)

    def scores(self) -> np.ndarray:
        covariance = np.linalg.inv(self.precision)
        variance = np.maximum(((self.features @ covariance) * self.features).sum(axis=1), 0.0)
        return self.features @ (covariance @ self.response) + self.alpha * np.sqrt(variance)

    def update(self, slate: np.ndarray, rewards: np.ndarray) -> None:
        shown = self.features[slate]
        self.precision += shown.T @ shown
        self.response += shown.T @ rewards


class IncrementalLinUCB(TextbookLinUCB):
    """rlrec's algorithm in NumPy (:class:`rlrec.agents.bandits.LinearBandit`): a root ``S`` of ``A^-1``, the
    estimate ``A^-1 b`` and every item's variance, updated per shown slot in ``O(N f)``."""

    def reset(self) -> None:
        size = self.features.shape[1]
        self.root = (np.eye(size) / np.sqrt(self.regulariser)).astype(np.float32)
        self.estimate = np.zeros(size, np.float32)
        self.variances = (self.features * self.features).sum(axis=1) / np.float32(self.regulariser)

    def scores(self) -> np.ndarray:
        return self.features @ self.estimate + self.alpha * np.sqrt(np.maximum(self.variances, 0.0))

    def update(self, slate: np.ndarray, rewards: np.ndarray) -> None:
        for item, reward in zip(slate, rewards):
            x = self.features[item]
            w = self.root.T @ x
            u = self.root @ w
            d = np.float32(1.0) + w @ w
            self.root -= np.outer(u, w) / (d + np.sqrt(d))
            self.estimate += u * ((reward - x @ self.estimate) / d)
            projection = self.features @ u
            self.variances -= projection * projection / d


def numpy_loop(model: NumpyModel, learner: TextbookLinUCB, rounds: int, seed: int) -> dict[str, Any]:
    """One user stream, a fresh user and learner every ``max_steps`` rounds; timed end to end."""
    rng = np.random.default_rng(seed)
    num_items, k = learner.features.shape[0], model.slate_size
    regret, clicks, oracle, utilities = 0.0, 0, 0.0, None
    start = time.perf_counter()
    for t in range(rounds):
        if t % model.max_steps == 0:  # a new user and a new learner (the runner's personal mode)
            utilities = model.utilities(model.sample_interest(rng))
            oracle = model.oracle_probability(utilities)
            learner.reset()
        slate = top_k(learner.scores() + 1e-6 * rng.random(num_items, dtype=np.float32), k)
        probabilities = model.click_probabilities(utilities[slate])
        regret += max(oracle - float(probabilities.sum()), 0.0)
        slot = int(np.searchsorted(np.cumsum(probabilities), rng.random(), side="right"))  # == k: no click
        rewards = np.zeros(k, np.float32)
        if slot < k:
            rewards[slot] = 1.0
            clicks += 1
        learner.update(slate, rewards)
    seconds = time.perf_counter() - start
    return {"rounds": rounds, "seconds": seconds, "rate": rounds / seconds, "regret": regret / rounds,
            "click_rate": clicks / rounds}


# -- checks ---------------------------------------------------------------------------------------------------


def check_model(env: RecEnv, params: EnvParams, model: NumpyModel, seed: int, users: int = 8) -> bool:
    """The NumPy model's utilities and click probabilities equal the env's on users drawn by ``env.reset``."""
    _, states = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(jax.random.key(seed), users), params)
    utilities = np.asarray(jax.jit(jax.vmap(lambda s: env.item_utilities(s, params)[0]))(states))
    rng = np.random.default_rng(seed)
    worst_utility = worst_probability = 0.0
    for user in range(users):
        mine = model.utilities(np.asarray(states.interest[user]))
        worst_utility = max(worst_utility, float(np.max(np.abs(mine - utilities[user]))))
        slate = rng.choice(len(mine), size=model.slate_size, replace=False)
        theirs = choice.click_probabilities(
            (jnp.asarray(utilities[user][slate]) + jnp.asarray(model.position_bias)) / params.temperature,
            params.no_click_logit / params.temperature, env.choice_model,
        )
        worst_probability = max(worst_probability,
                                float(np.max(np.abs(model.click_probabilities(mine[slate]) - np.asarray(theirs)))))
    ok = worst_utility < 1e-4 and worst_probability < 1e-5
    print(f"  NumPy model vs env    : max |utility diff| {worst_utility:.1e}, |P(click) diff| "
          f"{worst_probability:.1e} ({'same' if ok else 'MISMATCH'})")
    return ok


def check_same_learner(env: RecEnv, params: EnvParams, learner: IncrementalLinUCB, seed: int, rounds: int = 50) -> bool:
    """rlrec's LinUCB and the NumPy incremental loop, fed the same slates and clicks, end with the same scores."""
    agent = make_agent("linucb", env)
    rng = np.random.default_rng(seed)
    learner.reset()
    state = agent.init(jax.random.key(0), params)
    obs, _ = env.reset(jax.random.key(0), params)
    update = jax.jit(lambda state, slate, rewards: agent.update(
        None, state, rlrec.agents.Transition(obs=obs, action=slate, reward=rewards.sum(), slot_rewards=rewards,
                                             next_obs=obs, done=jnp.asarray(False)), params)[0])
    num_items, k = learner.features.shape[0], env.slate_size
    for _ in range(rounds):
        slate = rng.choice(num_items, size=k, replace=False)
        rewards = (rng.random(k) < 0.2).astype(np.float32)
        learner.update(slate, rewards)
        state = update(state, jnp.asarray(slate if k > 1 else slate[0], jnp.int32), jnp.asarray(rewards))
    assert isinstance(state, LinearState)
    mine, theirs = learner.scores(), np.asarray(agent.scores(state, params, obs["request"]))
    difference = float(np.max(np.abs(mine - theirs)))
    print(f"  same learner          : max |score diff| {difference:.1e} after {rounds} identical rounds "
          f"({'same' if difference < 1e-4 else 'DIFFERENT'})")
    return difference < 1e-4


# -- the problems ---------------------------------------------------------------------------------------------


def synthetic_problem(arms: int, dim: int, prototypes: int, seed: int) -> tuple[RecEnv, EnvParams]:
    """(a): a bring-your-own catalog of ``arms`` items with ``dim``-d features and a random population.

    Random quality and popularity make every LinUCB feature (embedding, quality, appeal) vary across arms.
    ``dim`` is not passed to ``make``: a Catalog object is used as given (no PCA projection).
    """
    rng = np.random.default_rng(seed)
    catalog = Catalog.from_arrays(rng.normal(size=(arms, dim)), quality=rng.normal(size=arms),
                                  popularity=rng.integers(1, 1000, size=arms), name=f"synthetic-{arms}x{dim}")
    population = Population.from_arrays(rng.normal(size=(prototypes, dim)), name=f"synthetic-{prototypes}-users",
                                        request_noise=0.5, seed=seed)
    return rlrec.make("MovieLens-Bandit-v0", catalog=catalog, population=population)


def describe(env: RecEnv, params: EnvParams) -> None:
    num_items, dim = int(params.item_features.shape[0]), int(params.item_features.shape[1])
    print(f"  catalog               : {num_items:,} items, d={dim}, f={dim + 2} LinUCB features; slates of "
          f"{env.slate_size}")


def print_rlrec(results: dict[str, dict[str, float]], seeds: int, steps: int) -> None:
    for name, values in results.items():
        print(f"  rlrec {name:<16}: {human(values['rate'], 'decisions/s'):>18}, regret/step {values['regret']:.4f}")
        print(f"  {'':<22}  ({seeds:,} seeds x {steps:,} steps in {values['seconds']:.2f} s; compiling "
              f"{values['compile_s']:.1f} s apart)")


def print_numpy(name: str, result: dict[str, Any]) -> None:
    print(f"  NumPy {name:<16}: {human(result['rate'], 'decisions/s'):>18}, regret/step {result['regret']:.4f}")
    print(f"  {'':<22}  ({result['rounds']:,} rounds in {result['seconds']:.2f} s)")


# -- main -----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--arms", type=int, default=10, help="(a) number of arms (items)")
    parser.add_argument("--arm-dim", type=int, default=5, help="(a) arm feature dimension")
    parser.add_argument("--prototypes", type=int, default=100, help="(a) prototype users of the synthetic population")
    parser.add_argument("--seeds", type=int, default=4096, help="(a) seeds (independent user streams, vmapped)")
    parser.add_argument("--steps", type=int, default=1000, help="(a) rounds per seed")
    parser.add_argument("--numpy-rounds", type=int, default=20000, help="(a) rounds of the NumPy loop")
    parser.add_argument("--slate-seeds", type=int, default=256, help="(b) seeds")
    parser.add_argument("--slate-steps", type=int, default=200, help="(b) rounds per seed")
    parser.add_argument("--slate-numpy-rounds", type=int, default=400, help="(b) rounds of each NumPy loop")
    parser.add_argument("--imdb", action=argparse.BooleanOptionalAction, default=False,
                        help="(c) LinUCB on IMDB-BanditSlate-v0 (58,788 items; encoded once, minutes)")
    parser.add_argument("--imdb-seeds", type=int, default=64, help="(c) seeds")
    parser.add_argument("--imdb-steps", type=int, default=100, help="(c) rounds per seed")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls of each program (the best is used)")
    parser.add_argument("--breakdown", action=argparse.BooleanOptionalAction, default=True,
                        help="time act, update and env.step apart, on (a) and (b)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("arms", "arm_dim", "prototypes", "seeds", "steps", "numpy_rounds", "slate_seeds", "slate_steps",
                 "slate_numpy_rounds", "imdb_seeds", "imdb_steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_start = time.perf_counter()
    summary: list[tuple[str, str]] = []
    header("machine")
    print(f"  jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    print(f"  numpy {np.__version__}, python {platform.python_version()}, {os.cpu_count()} CPU cores visible, "
          f"{platform.platform()}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")

    # (a) ---------------------------------------------------------------------------------------------------------
    header(f"(a) synthetic: {args.arms} arms x {args.arm_dim}-d features (bring-your-own arrays)")
    env_a, params_a = synthetic_problem(args.arms, args.arm_dim, args.prototypes, args.seed)
    describe(env_a, params_a)
    model_a = NumpyModel(params_a, env_a.slate_size)
    checks = [check_model(env_a, params_a, model_a, args.seed)]
    agent = make_agent("linucb", env_a)
    features_a = np.asarray(bandit_features(params_a), np.float32)
    rlrec_a = bench_rlrec(env_a, params_a, {"LinUCB": agent}, args.seeds, args.steps, args.seed, args.repeats)
    print_rlrec(rlrec_a, args.seeds, args.steps)
    numpy_a = numpy_loop(model_a, TextbookLinUCB(features_a, float(agent.alpha), float(agent.regulariser)),
                         args.numpy_rounds, args.seed)
    print_numpy("textbook LinUCB", numpy_a)
    ratio_a = rlrec_a["LinUCB"]["rate"] / numpy_a["rate"]
    print(f"  LinUCB / textbook     : {ratio_a:,.1f}x (target >= 100x: {'met' if ratio_a >= 100 else 'NOT met'})")
    summary.append(("(a) LinUCB / NumPy textbook", f"{ratio_a:,.1f}x ({human(rlrec_a['LinUCB']['rate'], 'dec/s')} "
                    f"vs {human(numpy_a['rate'], 'dec/s')})"))
    shares_a = None
    if args.breakdown:
        shares_a = breakdown(env_a, params_a, args.seeds, args.steps, args.seed, args.repeats)

    # (b) ---------------------------------------------------------------------------------------------------------
    header("(b) MovieLens-BanditSlate-v0")
    env_b, params_b = rlrec.make("MovieLens-BanditSlate-v0")
    describe(env_b, params_b)
    model_b = NumpyModel(params_b, env_b.slate_size)
    checks.append(check_model(env_b, params_b, model_b, args.seed))
    features_b = np.asarray(bandit_features(params_b), np.float32)
    linucb_b = make_agent("linucb", env_b)
    alpha, regulariser = float(linucb_b.alpha), float(linucb_b.regulariser)
    checks.append(check_same_learner(env_b, params_b, IncrementalLinUCB(features_b, alpha, regulariser), args.seed))
    agents_b = {"LinUCB": linucb_b, "LinTS": make_agent("lints", env_b),
                "epsilon-greedy": make_agent("epsilon-greedy", env_b)}
    rlrec_b = bench_rlrec(env_b, params_b, agents_b, args.slate_seeds, args.slate_steps, args.seed, args.repeats)
    print_rlrec(rlrec_b, args.slate_seeds, args.slate_steps)
    textbook_b = numpy_loop(model_b, TextbookLinUCB(features_b, alpha, regulariser), args.slate_numpy_rounds, args.seed)
    print_numpy("textbook LinUCB", textbook_b)
    incremental_b = numpy_loop(model_b, IncrementalLinUCB(features_b, alpha, regulariser), args.slate_numpy_rounds,
                               args.seed)
    print_numpy("incremental", incremental_b)
    rate = rlrec_b["LinUCB"]["rate"]
    ratio_b = rate / textbook_b["rate"]
    print(f"  LinUCB / textbook     : {ratio_b:,.1f}x (target >= 20x: {'met' if ratio_b >= 20 else 'NOT met'})")
    print(f"  LinUCB / incremental  : {rate / incremental_b['rate']:,.1f}x (the compiler's and vmap's share)")
    print(f"  incremental/textbook  : {incremental_b['rate'] / textbook_b['rate']:,.1f}x, both NumPy (the "
          "algorithm's share)")
    lints_ratio = rlrec_b["LinTS"]["rate"] / rate
    print(f"  LinTS / LinUCB        : {lints_ratio:,.2f}x ({'as fast or faster' if lints_ratio >= 1 else 'slower'})")
    summary.append(("(b) LinUCB / NumPy textbook", f"{ratio_b:,.1f}x ({human(rate, 'dec/s')} vs "
                    f"{human(textbook_b['rate'], 'dec/s')})"))
    summary.append(("(b) LinUCB / NumPy incremental", f"{rate / incremental_b['rate']:,.1f}x "
                    f"(NumPy incremental / textbook: {incremental_b['rate'] / textbook_b['rate']:,.1f}x)"))
    summary.append(("(b) LinTS, epsilon-greedy", f"{human(rlrec_b['LinTS']['rate'], 'dec/s')}, "
                    f"{human(rlrec_b['epsilon-greedy']['rate'], 'dec/s')} (LinTS / LinUCB {lints_ratio:,.2f}x)"))
    shares_b = None
    if args.breakdown:
        shares_b = breakdown(env_b, params_b, args.slate_seeds, max(args.slate_steps // 2, 1), args.seed, args.repeats)

    # (c) ---------------------------------------------------------------------------------------------------------
    if args.imdb:
        header("(c) IMDB-BanditSlate-v0")
        env_c, params_c = rlrec.make("IMDB-BanditSlate-v0")
        describe(env_c, params_c)
        rlrec_c = bench_rlrec(env_c, params_c, {"LinUCB": make_agent("linucb", env_c)}, args.imdb_seeds,
                              args.imdb_steps, args.seed, args.repeats)
        print_rlrec(rlrec_c, args.imdb_seeds, args.imdb_steps)
        summary.append(("(c) IMDB LinUCB", human(rlrec_c["LinUCB"]["rate"], "decisions/s")))

    header("summary")
    print(f"  device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {len(jax.devices())} device(s)")
    for tag, shares in (("(a)", shares_a), ("(b)", shares_b)):
        if shares:
            shown = ", ".join(f"{name} {share:.0%}" for name, share in shares.items())
            summary.append((f"{tag} LinUCB time shares", shown))
    summary.append(("checks", "all pass" if all(checks) else "SOME FAILED (see above)"))
    width = max(len(name) for name, _ in summary)
    for name, value in summary:
        print(f"  {name:<{width}} : {value}")
    print(f"  total wall time: {time.perf_counter() - run_start:.1f} s", flush=True)
    return 0 if all(checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
