"""Off-policy evaluation on the simulator (rlrec.ope, the estimators aside: test_ope_estimators.py, test_ope_io.py).

The policies' probabilities against an enumeration of every slate of a 5-item catalog; their draws; Monte Carlo
policies; logging; the exact truth against running the target; the estimators' unbiasedness end to end; policies
by name; the agents' item scores. Small synthetic worlds (tests/synthetic.py), fixed seeds; every statistical
check states its budget (SIGMA standard errors). Compilation dominates the time, so the worlds and the log
shapes are shared: every 1-item log has blocks of ROUNDS users (rlrec.ope.blocks.USERS set to it for longer
logs, which the log does not depend on).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic import synthetic_env

from rlrec import ope
from rlrec.agents.bandits import REQUEST_ITEM, LinTS, LinUCB, PopularityAgent, TextMatchAgent
from rlrec.agents.registry import make_agent
from rlrec.ope import blocks, collect, evaluate, make_policy, on_policy_value, policies, true_value
from rlrec.ope.specs import parse_policy
from rlrec.ope.truth import restore_states, slate_value

SIGMA = 4.0  # budget of every statistical check, in standard errors
ROUNDS = 2000  # rounds of each log of the unbiasedness checks (and users per compiled block of every 1-item log)
SEEDS = 100  # logs averaged over in the unbiasedness checks
LONG = 10 * ROUNDS  # rounds of the long logs (consistency, the truth against running the target)
FAMILIES = ("uniform", "greedy", "epsilon-greedy", "softmax")
TINY_ITEMS = 5
MARGINAL_SAMPLES = 4000  # Softmax draws behind a later slot's marginal in the enumeration checks


# -- worlds -------------------------------------------------------------------------------------------------------

@functools.cache
def tiny(slate_size: int):
    """5 items in 4-d, 3 users: small enough to enumerate every ordered slate (5, 20 or 60 of them)."""
    if slate_size == 1:
        return synthetic_env("MovieLens-Bandit-v0", items=TINY_ITEMS, dim=4, users=3)
    return synthetic_env("MovieLens-BanditSlate-v0", items=TINY_ITEMS, dim=4, users=3, slate_size=slate_size)


def tiny_policy(family: str, slate_size: int) -> policies.Policy:
    env, _ = tiny(slate_size)
    scored = {"agent": make_agent("text-match", env), "state": (), "slate_size": slate_size}
    return {
        "uniform": lambda: policies.Uniform(slate_size=slate_size),
        "greedy": lambda: policies.Greedy(**scored),
        "epsilon-greedy": lambda: policies.EpsilonGreedy(epsilon=0.3, **scored),
        "softmax": lambda: policies.Softmax(temperature=0.5, marginal_samples=MARGINAL_SAMPLES, **scored),
    }[family]()


@pytest.fixture(scope="module")
def items20():
    """Single items: 20 items in 8-d, 16 users."""
    return synthetic_env("MovieLens-Bandit-v0", items=20, dim=8, users=16)


@pytest.fixture(scope="module")
def slates10():
    """Slates of 2 from 10 items (90 ordered slates) in 8-d, 16 users."""
    return synthetic_env("MovieLens-BanditSlate-v0", items=10, dim=8, users=16, slate_size=2)


def collect_in_blocks(env, params, behaviour, num_rounds, *, seed):
    """``collect`` with blocks of ROUNDS users: longer logs reuse the compiled block of the ROUNDS-round ones."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(blocks, "USERS", ROUNDS)
        return collect(env, params, behaviour, num_rounds, seed=seed)


@pytest.fixture(scope="module")
def uniform_logs(items20):
    return [collect(*items20, policies.Uniform(slate_size=1), ROUNDS, seed=seed) for seed in range(SEEDS)]


@pytest.fixture(scope="module")
def long_log(items20):
    return collect_in_blocks(*items20, policies.Uniform(slate_size=1), LONG, seed=0)


def slate_behaviour(env, epsilon: float) -> policies.EpsilonGreedy:
    """Epsilon-greedy around text-match; ``epsilon = 1``: uniform logging (every slate log shares one program)."""
    return policies.EpsilonGreedy(agent=make_agent("text-match", env), state=(), slate_size=2, epsilon=epsilon)


@pytest.fixture(scope="module")
def slate_logs(slates10):
    """Uniformly logged slates (epsilon-greedy with epsilon 1)."""
    behaviour = slate_behaviour(slates10[0], 1.0)
    return [collect(*slates10, behaviour, ROUNDS, seed=seed) for seed in range(SEEDS)]


@pytest.fixture(scope="module")
def epsilon_log(slates10):
    """Slates logged epsilon-greedily (exact, non-uniform propensities; a greedy slate)."""
    behaviour = slate_behaviour(slates10[0], 0.5)
    return behaviour, collect(*slates10, behaviour, ROUNDS, seed=SEEDS)


@pytest.fixture(scope="module")
def linucb_policy(items20):
    """``greedy:linucb``, trained on 16 users x 8 steps."""
    return make_policy("greedy:linucb", *items20, train_users=16, train_steps=8, seed=0)


# -- helpers ------------------------------------------------------------------------------------------------------

def all_slates(num_items: int, slate_size: int) -> np.ndarray:
    """``(S, k)`` every ordered slate of distinct items."""
    return np.array(list(itertools.permutations(range(num_items), slate_size)), np.int32)


@functools.partial(jax.jit, static_argnames="logged")
def _enumerated(policy, key, obs, slates, params, logged=False):
    log_prefix, slot = jax.vmap(lambda slate: policy.probabilities(key, obs, slate, params, logged=logged))(slates)
    item = jax.vmap(lambda slate: policy.item_probabilities(key, obs, slate, params))(slates)
    return log_prefix, slot, item, policy.marginals(key, obs, params)


def enumerate_policy(policy, obs, params, key=jax.random.key(7), logged=False):
    """Everything the policy says on every slate: ``(slates, log_prefix, slot, item, marginals)`` (float64);
    ``logged``: as the behaviour that logged each slate (a Monte Carlo policy counts its own draw)."""
    slates = all_slates(params.item_features.shape[0], policy.slate_size)
    out = _enumerated(policy, key, obs, jnp.asarray(slates), params, logged=logged)
    return (slates, *(np.asarray(value, np.float64) for value in out))


def slot_marginals(slates: np.ndarray, probability: np.ndarray, num_items: int) -> np.ndarray:
    """``(k, N)`` the sum of the slates' probabilities by the item in each slot."""
    marginals = np.zeros((slates.shape[1], num_items))
    for j in range(slates.shape[1]):
        np.add.at(marginals[j], slates[:, j], probability)
    return marginals


def binomial_bound(p: np.ndarray, draws: int) -> np.ndarray:
    """SIGMA standard errors of a share of ``draws`` Bernoulli(``p``) draws."""
    return SIGMA * np.sqrt(np.clip(p * (1.0 - p), 0.0, None) / draws)


def assert_logs_equal(log, other, rounds: int) -> None:
    """The first ``rounds`` rounds of ``log`` and ``other`` are the same rounds."""
    for name in log.ROUND_FIELDS:
        np.testing.assert_array_equal(getattr(log, name)[:rounds], getattr(other, name)[:rounds], err_msg=name)
    for name, value in log.states.items():
        np.testing.assert_array_equal(value[:rounds], other.states[name][:rounds], err_msg=name)


@functools.partial(jax.jit, static_argnames="env")
def _slate_values(states, slates, params, *, env):
    return jax.vmap(lambda state, slate: slate_value(env, state, slate, params))(states, slates)


@jax.jit
def _recomputed_probabilities(policy, obs, slates, params):
    return jax.vmap(lambda ob, slate: policy.probabilities(jax.random.key(0), ob, slate, params))(obs, slates)


@jax.jit
def _slates_each(policy, obs, params):
    return jax.vmap(lambda ob: policy.sample(jax.random.key(0), ob, params))(obs)


# -- 1. exact probabilities by enumeration ------------------------------------------------------------------------

@pytest.mark.parametrize("slate_size", [1, 2, 3])
@pytest.mark.parametrize("family", FAMILIES)
def test_probabilities_match_enumeration(family, slate_size):
    """Whole slates sum to 1; a prefix's probability is the sum of its extensions'; slot marginals,
    ``marginals()`` and ``item_probabilities`` are the sums of whole-slate probabilities (a Softmax slot after
    the first by Monte Carlo: SIGMA binomial errors of MARGINAL_SAMPLES draws, plus 1 / (M + 1) for the counted
    logged draw)."""
    env, params = tiny(slate_size)
    policy = tiny_policy(family, slate_size)
    monte_carlo = family == "softmax" and slate_size > 1
    for user in range(2):
        obs, _ = env.reset(jax.random.key(user), params)
        slates, log_prefix, slot, item, marginals = enumerate_policy(policy, obs, params)
        prefix = np.exp(log_prefix)
        probability = prefix[:, -1]
        np.testing.assert_allclose(probability.sum(), 1.0, atol=1e-5)
        assert np.all(prefix >= 0) and np.all(np.diff(prefix, axis=1) <= 1e-7), "a longer prefix is less likely"
        shorter = {(): 1.0}  # the first j items -> their probability
        for j in range(slate_size):
            by_prefix = {}  # the first j + 1 items -> their probability, which depends on nothing else
            for row, value in zip(slates, prefix[:, j], strict=True):
                by_prefix.setdefault(tuple(row[:j + 1]), []).append(value)
            extensions = dict.fromkeys(shorter, 0.0)
            for head, values in by_prefix.items():
                np.testing.assert_allclose(values, values[0], atol=1e-7)
                extensions[head[:-1]] += values[0]
            for parent, total in extensions.items():
                np.testing.assert_allclose(total, shorter[parent], atol=1e-5, err_msg=f"prefix {parent}, slot {j}")
            shorter = {head: values[0] for head, values in by_prefix.items()}
        exact = slot_marginals(slates, probability, TINY_ITEMS)
        np.testing.assert_allclose(marginals.sum(axis=1), 1.0, atol=1e-5)
        slot_exact = exact[np.arange(slate_size), slates]  # (S, k)
        anywhere = exact.sum(axis=0)[slates]  # (S, k): the item in any slot
        if not monte_carlo:
            np.testing.assert_allclose(slot, slot_exact, atol=1e-5)
            np.testing.assert_allclose(marginals, exact, atol=1e-5)
            np.testing.assert_allclose(item, anywhere, atol=1e-5)
            continue
        np.testing.assert_allclose(slot[:, 0], slot_exact[:, 0], atol=1e-5)
        np.testing.assert_allclose(marginals[0], exact[0], atol=1e-5)
        m = policy.marginal_samples
        assert np.all(np.abs(slot[:, 1:] - slot_exact[:, 1:]) <= binomial_bound(slot_exact[:, 1:], m) + 1 / (m + 1))
        assert np.all(np.abs(marginals[1:] - exact[1:]) <= binomial_bound(exact[1:], m) + 1e-6)
        later = exact[1:].sum(axis=0)[slates]  # an item's slots after the first are exclusive events
        assert np.all(np.abs(item - anywhere) <= binomial_bound(later, m) + 1e-6)


# -- 2. draws ---------------------------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames="draws")
def _draw(policy, key, obs, params, *, draws):
    return jax.vmap(lambda k: policy.sample(k, obs, params))(jax.random.split(key, draws))


@pytest.mark.parametrize("slate_size", [1, 2])
@pytest.mark.parametrize("family", FAMILIES)
def test_sample_frequencies_match_probabilities(family, slate_size):
    """20,000 draws: every slate of distinct items, each slate's frequency within SIGMA binomial errors of its
    exact probability (a deterministic policy: exactly its slate)."""
    env, params = tiny(slate_size)
    policy = tiny_policy(family, slate_size)
    obs, _ = env.reset(jax.random.key(0), params)
    slates, log_prefix, *_ = enumerate_policy(policy, obs, params)
    probability = np.exp(log_prefix[:, -1])
    draws = 20_000
    drawn = np.asarray(_draw(policy, jax.random.key(11), obs, params, draws=draws))
    assert drawn.shape == (draws, slate_size) and drawn.dtype == np.int32
    codes = drawn @ TINY_ITEMS ** np.arange(slate_size)
    index = {code: row for row, code in enumerate(slates @ TINY_ITEMS ** np.arange(slate_size))}
    assert set(np.unique(codes)) <= set(index), "a slate with a repeated or unknown item"
    frequency = np.bincount([index[code] for code in codes], minlength=len(slates)) / draws
    assert np.all(np.abs(frequency - probability) <= binomial_bound(probability, draws) + 1e-9)


# -- 3. Monte Carlo (sampled) policies --------------------------------------------------------------------------

def test_sampled_policy_estimates_probabilities():
    """``Sampled`` over the random agent (exactly uniform): as the logging behaviour every probability is
    ``(hits + 1) / (M + 1)`` of M = 2,000 draws, within SIGMA binomial errors plus 1 / (M + 1) of the uniform one;
    as a target ``hits / M`` of the same draws; the whole-slate hits over every slate add up to M; ``marginals()``
    rows sum to 1. Over an agent that always shows one slate: 1 for it; for the others 1 / (M + 1) as the
    behaviour, 0 as a target (a target never shows them)."""
    env, params = tiny(2)
    draws = 2000
    policy = policies.Sampled(agent=make_agent("random", env), state=(), slate_size=2, draws=draws)
    assert policy.samples == draws and policy.settings() == {"samples": draws}
    obs, _ = env.reset(jax.random.key(0), params)
    _, target_prefix, target_slot, _, _ = enumerate_policy(policy, obs, params)
    slates, log_prefix, slot, _, marginals = enumerate_policy(policy, obs, params, logged=True)
    # The same draws (the same key): as a target hits / M, as the behaviour (hits + 1) / (M + 1).
    np.testing.assert_allclose(np.exp(target_prefix) * draws + 1, np.exp(log_prefix) * (draws + 1), rtol=1e-4)
    np.testing.assert_allclose(target_slot * draws + 1, slot * (draws + 1), rtol=1e-4)
    uniform_prefix = np.cumprod(1.0 / (TINY_ITEMS - np.arange(2)))  # 1/5, 1/20
    prefix = np.exp(log_prefix)
    hits = prefix * (draws + 1) - 1
    np.testing.assert_allclose(hits, np.round(hits), atol=1e-2)  # (hits + 1) / (M + 1) with whole hits
    np.testing.assert_allclose(np.round(hits[:, -1]).sum(), draws)  # every draw is one slate
    slot_hits = slot * (draws + 1) - 1
    np.testing.assert_allclose(slot_hits, np.round(slot_hits), atol=1e-2)
    for j in range(2):  # every draw puts one item in slot j
        np.testing.assert_allclose(sum(dict(zip(slates[:, j], np.round(slot_hits[:, j]), strict=True)).values()), draws)
    bound = binomial_bound(uniform_prefix, draws) + 1 / (draws + 1)
    assert np.all(np.abs(prefix - uniform_prefix) <= bound)
    assert np.all(np.abs(slot - 1 / TINY_ITEMS) <= binomial_bound(np.array(1 / TINY_ITEMS), draws) + 1 / (draws + 1))
    np.testing.assert_allclose(marginals.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(np.abs(marginals - 1 / TINY_ITEMS) <= binomial_bound(np.array(1 / TINY_ITEMS), draws))

    fixed = policies.Sampled(agent=make_agent("text-match", env), state=(), slate_size=2, draws=draws)
    slates, log_prefix, slot, _, _ = enumerate_policy(fixed, obs, params, logged=True)
    top = np.asarray(tiny_policy("greedy", 2).sample(jax.random.key(0), obs, params))
    shown = np.all(slates == top, axis=1)
    np.testing.assert_allclose(np.exp(log_prefix[shown, -1]), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.exp(log_prefix[~shown, -1]), 1 / (draws + 1), rtol=1e-4)
    _, target_prefix, _, _, _ = enumerate_policy(fixed, obs, params)
    np.testing.assert_allclose(np.exp(target_prefix[shown, -1]), 1.0, rtol=1e-6)
    assert np.all(np.exp(target_prefix[~shown, -1]) == 0.0)


# -- 4. logging -------------------------------------------------------------------------------------------------

def check_log_fields(log, env, params, rounds: int, slate_size: int) -> None:
    dim = params.item_features.shape[1]
    history = env.history_length
    expected = {
        "request": ((rounds, dim), np.float32), "history_items": ((rounds, history, slate_size), np.int32),
        "history_clicks": ((rounds, history), np.int32), "history_feedback": ((rounds, history), np.float32),
        "progress": ((rounds, 1), np.float32), "user": ((rounds,), np.int32), "step": ((rounds,), np.int32),
        "slate": ((rounds, slate_size), np.int32), "clicks": ((rounds, slate_size), np.float32),
        "reward": ((rounds,), np.float32), "propensity": ((rounds,), np.float64),
        "prefix_propensity": ((rounds, slate_size), np.float64), "slot_propensity": ((rounds, slate_size), np.float64),
        "expected_reward": ((rounds,), np.float32),
    }
    for name, (shape, dtype) in expected.items():
        value = getattr(log, name)
        assert value.shape == shape and value.dtype == dtype, (name, value.shape, value.dtype)
    assert log.num_rounds == len(log) == rounds and log.slate_size == slate_size
    assert log.num_items == params.item_features.shape[0] and log.state_class == "rlrec.envs.recsys.EnvState"
    assert all(value.shape[0] == rounds for value in log.states.values()) and "interest" in log.states
    assert np.all((log.slate >= 0) & (log.slate < log.num_items))
    assert all(len(set(row)) == slate_size for row in log.slate.tolist())
    np.testing.assert_array_equal(log.propensity, log.prefix_propensity[:, -1])
    assert set(np.unique(log.clicks)) <= {0.0, 1.0} and np.all(log.clicks.sum(axis=1) <= 1)
    np.testing.assert_array_equal(log.reward, log.clicks.sum(axis=1))
    values = _slate_values(restore_states(env, params, log), jnp.asarray(log.slate), params, env=env)
    np.testing.assert_allclose(log.expected_reward, np.asarray(values), rtol=1e-5, atol=1e-6)


def test_collect_single_items(items20, uniform_logs):
    """Every field's shape and dtype; the logged expected reward is the env's slate value recomputed from the
    logged states; uniform propensities 1/20; clicks drawn with the expected reward's probability (200,000
    rounds: their mean within SIGMA standard errors)."""
    env, params = items20
    log = uniform_logs[0]
    check_log_fields(log, env, params, ROUNDS, 1)
    assert (log.behaviour, log.behaviour_kind, log.behaviour_settings) == ("uniform", "uniform", {})
    assert log.behaviour_greedy is None and log.propensity_samples == 0 and log.seed == 0
    np.testing.assert_allclose(log.prefix_propensity, 1 / 20, rtol=1e-6)
    np.testing.assert_allclose(log.slot_propensity, 1 / 20, rtol=1e-6)
    np.testing.assert_array_equal(log.user, np.arange(ROUNDS))
    np.testing.assert_array_equal(log.step, 0)
    surprise = np.concatenate([each.reward - each.expected_reward for each in uniform_logs])
    assert abs(surprise.mean()) <= SIGMA * surprise.std(ddof=1) / np.sqrt(surprise.size)
    assert not np.array_equal(uniform_logs[0].slate, uniform_logs[1].slate), "seeds give different logs"


def test_collect_slates_epsilon_greedy(slates10, epsilon_log):
    """Slates of 2: the fields; the logged propensities equal the behaviour's probabilities recomputed; the greedy
    slate is text-match's top 2."""
    env, params = slates10
    behaviour, log = epsilon_log
    check_log_fields(log, env, params, ROUNDS, 2)
    assert log.behaviour_kind == "epsilon-greedy" and log.behaviour_settings == {"epsilon": 0.5}
    log_prefix, slot = _recomputed_probabilities(behaviour, log.observations(), jnp.asarray(log.slate), params)
    np.testing.assert_allclose(log.prefix_propensity, np.exp(np.asarray(log_prefix, np.float64)), rtol=1e-6)
    np.testing.assert_allclose(log.slot_propensity, np.asarray(slot), rtol=1e-6)
    greedy = policies.Greedy(agent=behaviour.agent, state=(), slate_size=2)
    np.testing.assert_array_equal(log.behaviour_greedy, policies.deterministic_slates(greedy, log.observations(),
                                                                                       params))
    exploit = np.mean(np.all(log.slate == log.behaviour_greedy, axis=1))  # (1 - eps) + eps / 90 = 0.5056
    expected = 0.5 + 0.5 / 90
    assert abs(exploit - expected) <= SIGMA * np.sqrt(expected * (1 - expected) / ROUNDS)


def test_collect_is_a_prefix_of_longer_logs(items20, uniform_logs, long_log):
    """A log of n rounds is the start of any longer log of the same seed, whatever the blocks of users
    (ROUNDS rounds in one block; 20,000 in ten; 3,000 cut from two)."""
    env, params = items20
    assert_logs_equal(long_log, uniform_logs[0], ROUNDS)
    assert_logs_equal(long_log, collect_in_blocks(env, params, policies.Uniform(slate_size=1), 3000, seed=0), 3000)
    np.testing.assert_array_equal(long_log.user, np.arange(LONG))


def test_collect_streams(items20, uniform_logs):
    """``steps_per_user=3``: rounds user by user; a stream's first round is the one-step log's round of that user;
    the history then shows the earlier slates, most recent last."""
    env, params = items20
    log = collect(env, params, policies.Uniform(slate_size=1), 12, steps_per_user=3, seed=0)
    np.testing.assert_array_equal(log.user, np.repeat(np.arange(4), 3))
    np.testing.assert_array_equal(log.step, np.tile(np.arange(3), 4))
    first = log.step == 0
    for name in ("request", "slate", "clicks", "propensity"):
        np.testing.assert_array_equal(getattr(log, name)[first], getattr(uniform_logs[0], name)[:4], err_msg=name)
    np.testing.assert_allclose(log.expected_reward[first], uniform_logs[0].expected_reward[:4], rtol=1e-6)
    # Other block sizes compile other programs, which may round the last bit of a float differently.
    np.testing.assert_allclose(log.states["interest"][first], uniform_logs[0].states["interest"][:4], atol=1e-6)
    later = ~first
    np.testing.assert_array_equal(log.history_items[later, -1, 0], log.slate[np.flatnonzero(later) - 1, 0])
    np.testing.assert_array_equal(log.history_items[first], -1)
    np.testing.assert_array_equal(log.request[later], log.request[np.flatnonzero(later) - 1])  # same user


def test_a_log_names_no_code_to_run(items20, uniform_logs):
    """The states' class comes from the env: a log file naming another class (or other fields) is refused, never
    imported (a shared file naming ``subprocess.run`` must not run anything)."""
    env, params = items20
    target = policies.Greedy(agent=make_agent("text-match", env), state=(), slate_size=1)
    forged = dataclasses.replace(uniform_logs[0], state_class="subprocess.run",
                                 states={"args": np.array([["true"]] * uniform_logs[0].num_rounds)})
    with pytest.raises(ValueError, match="holds states of subprocess.run"):
        true_value(env, params, target, forged)
    renamed = dataclasses.replace(uniform_logs[0], states={**uniform_logs[0].states, "extra": uniform_logs[0].reward})
    with pytest.raises(ValueError, match="pass the env the log was collected on"):
        true_value(env, params, target, renamed)


def test_collect_errors(items20):
    env, params = items20
    uniform = policies.Uniform(slate_size=1)
    with pytest.raises(ValueError, match="multiple of steps_per_user"):
        collect(env, params, uniform, 2001, steps_per_user=2)
    with pytest.raises(ValueError, match="positive multiple"):
        collect(env, params, uniform, 0)
    with pytest.raises(ValueError, match=r"slates of 2 .* shows 1.*slate_size=env.slate_size"):
        collect(env, params, policies.Uniform(slate_size=2), 10)
    with pytest.raises(TypeError, match=r"rlrec.ope policy .*TextMatchAgent.*make_policy"):
        collect(env, params, make_agent("text-match", env), 10)
    from rlrec.envs.probes import make_probe

    probe, probe_params = make_probe("one-step")
    with pytest.raises(ValueError, match="is a probe"):
        collect(probe, probe_params, policies.Uniform(slate_size=probe.slate_size), 10)


# -- 5. the truth -----------------------------------------------------------------------------------------------

def assert_matches_on_policy(truth, on_policy) -> None:
    """The exact value on the log's users and the Monte Carlo value on fresh users (the same population, as no
    bandit target reads the history) within SIGMA combined standard errors: of the user draw (and of the
    target's own draws, in ``per_round``) and of the run's."""
    users = truth.per_round.std(ddof=1) / np.sqrt(truth.per_round.size)
    for value, stderr in ((on_policy.expected_per_round, on_policy.expected_per_round_stderr),
                          (on_policy.per_round, on_policy.per_round_stderr)):
        assert abs(truth.value - value) <= SIGMA * np.hypot(users, stderr), (truth.value, value, stderr)


def test_true_value_of_single_item_targets(items20, uniform_logs, long_log):
    """A deterministic target (text-match) and a stochastic one (softmax, exact by summing over the items):
    no Monte Carlo in the truth, which agrees with running the target on 20,000 fresh users. The run's standard
    errors: of 0/1 clicks, sqrt(p (1 - p) / (n - 1)); of a deterministic target's expected clicks, the spread of
    the truth's per-round values over as many users (within 10 %: a sample standard deviation's error)."""
    env, params = items20
    agent = make_agent("text-match", env)
    for target in (policies.Greedy(agent=agent, state=(), slate_size=1),
                   policies.Softmax(agent=agent, state=(), slate_size=1, temperature=0.2)):
        truth = true_value(env, params, target, long_log)
        assert truth.samples == 0 and truth.stderr == 0.0 and truth.per_round.shape == (LONG,)
        np.testing.assert_allclose(truth.value, truth.per_round.mean())
        run = on_policy_value(env, params, target, num_users=LONG, seed=5)
        assert run.rounds == LONG and run.episodes == 0
        assert_matches_on_policy(truth, run)
        clicks = run.per_round
        np.testing.assert_allclose(run.per_round_stderr, np.sqrt(clicks * (1 - clicks) / (LONG - 1)), rtol=1e-3)
        if target.deterministic:
            users = truth.per_round.std(ddof=1) / np.sqrt(LONG)
            assert abs(run.expected_per_round_stderr / users - 1) < 0.1
    greedy = policies.Greedy(agent=agent, state=(), slate_size=1)
    log = uniform_logs[0]
    slates = policies.deterministic_slates(greedy, log.observations(), params)
    values = _slate_values(restore_states(env, params, log), jnp.asarray(slates), params, env=env)
    np.testing.assert_allclose(true_value(env, params, greedy, log).per_round, np.asarray(values), rtol=1e-6)


def test_true_value_of_a_stochastic_slate_target(slates10):
    """Softmax slates: the truth from 256 draws per round says its Monte Carlo standard error, two seeds agree
    within SIGMA of it, and it agrees with running the target on fresh users."""
    env, params = slates10
    target = policies.Softmax(agent=make_agent("text-match", env), state=(), slate_size=2, temperature=0.2)
    log = collect_in_blocks(env, params, slate_behaviour(env, 1.0), 2 * ROUNDS, seed=0)
    truth = true_value(env, params, target, log, samples=256, seed=0)
    again = true_value(env, params, target, log, samples=256, seed=1)
    assert truth.samples == 256 and 0 < truth.stderr < 0.01
    assert truth.value != again.value
    assert abs(truth.value - again.value) <= SIGMA * np.hypot(truth.stderr, again.stderr)
    assert_matches_on_policy(truth, on_policy_value(env, params, target, num_users=2 * ROUNDS, seed=5))


def test_truth_and_evaluation_refuse_another_env(items20, long_log):
    env, params = tiny(1)
    target = tiny_policy("greedy", 1)
    for call in (lambda: true_value(env, params, target, long_log), lambda: evaluate(env, params, long_log, target)):
        with pytest.raises(ValueError, match=r"20 items.*not collected on this env.*5 items"):
            call()


# -- 6. unbiasedness on the simulator ----------------------------------------------------------------------------

def estimates_over_seeds(env, params, logs, target, names):
    """``(truths (S,), {estimator: (S,) estimates}, {estimator: (S,) reported stderrs})``, one per log."""
    truths = np.array([true_value(env, params, target, log).value for log in logs])
    evaluations = [evaluate(env, params, log, target, estimators=names).estimates for log in logs]
    values = {name: np.array([each[name][0] for each in evaluations]) for name in names}
    stderrs = {name: np.array([each[name][1] for each in evaluations]) for name in names}
    return truths, values, stderrs


def assert_unbiased(errors: np.ndarray, name: str) -> None:
    """The mean error over the seeds within SIGMA of its standard error (the spread over seeds / sqrt(seeds))."""
    assert abs(errors.mean()) <= SIGMA * errors.std(ddof=1) / np.sqrt(errors.size), (name, errors.mean())


def test_single_item_estimators_are_unbiased(items20, uniform_logs, long_log):
    """Uniform logging over 20 items, a softmax target: IPS, DR and SNIPS over 100 logs of 2,000 rounds, each
    error against the exact truth of its own log; IPS's reported standard error matches the spread of its
    estimates over the seeds (within SIGMA of the sample standard deviation's relative error sqrt(1 / (2 (S - 1)))).
    SNIPS is consistent: at 20,000 rounds within SIGMA of its standard error, which shrinks as 1 / sqrt(n).
    Power: the mean error's standard error is about 0.0025 (truth 0.30), so a bias above 0.01 (3 %) fails."""
    env, params = items20
    target = policies.Softmax(agent=make_agent("text-match", env), state=(), slate_size=1, temperature=0.2)
    names = ["ips", "snips", "dr"]
    truths, estimates, stderrs = estimates_over_seeds(env, params, uniform_logs, target, names)
    for name in names:
        assert_unbiased(estimates[name] - truths, name)
    spread = estimates["ips"].std(ddof=1) / stderrs["ips"].mean()
    assert abs(spread - 1) <= SIGMA * np.sqrt(1 / (2 * (SEEDS - 1))), spread
    truth = true_value(env, params, target, long_log).value
    value, stderr = evaluate(env, params, long_log, target, estimators=["snips"]).estimates["snips"]
    assert abs(value - truth) <= SIGMA * stderr
    ratio = stderrs["snips"].mean() / stderr  # sqrt(10) = 3.16 expected
    assert 2.5 < ratio < 4.0, ratio


def test_slate_ips_is_unbiased(slates10, slate_logs):
    """Uniform logging of slates of 2 from 10 items (90 slates), the text-match slate as the target: IPS over
    100 logs of 2,000 rounds is unbiased within SIGMA; the propensities are uniform, 1/10 and 1/90. Power: the
    mean error's standard error is about 0.016 (truth 0.42; weights of 90). The same check sees IIPS's bias
    (about 14 standard errors): the multinomial-logit choice makes the slots' clicks interact."""
    env, params = slates10
    target = policies.Greedy(agent=make_agent("text-match", env), state=(), slate_size=2)
    np.testing.assert_allclose(slate_logs[0].prefix_propensity, np.broadcast_to([1 / 10, 1 / 90], (ROUNDS, 2)),
                               rtol=1e-5)
    truths, estimates, _ = estimates_over_seeds(env, params, slate_logs, target, ["ips", "iips"])
    assert_unbiased(estimates["ips"] - truths, "ips")
    errors = estimates["iips"] - truths
    assert abs(errors.mean()) > SIGMA * errors.std(ddof=1) / np.sqrt(SEEDS), "IIPS is biased here"


# -- 7. policies by name ----------------------------------------------------------------------------------------

def test_make_policy_names(items20, linucb_policy):
    env, params = items20
    uniform = make_policy("uniform", env, params)
    assert type(uniform) is policies.Uniform and uniform.name == "uniform" and uniform.slate_size == 1
    greedy = make_policy("text-match", env, params)
    assert type(greedy) is policies.Greedy and isinstance(greedy.agent, TextMatchAgent)
    assert greedy.name == "text-match" and greedy.deterministic
    epsilon = make_policy("epsilon-greedy:popularity:0.2", env, params)
    assert type(epsilon) is policies.EpsilonGreedy and isinstance(epsilon.agent, PopularityAgent)
    assert epsilon.epsilon == 0.2 and epsilon.settings() == {"epsilon": 0.2}
    assert epsilon.name == "epsilon-greedy(popularity, 0.2)"
    assert make_policy("epsilon-greedy:popularity", env, params).epsilon == 0.1
    softmax = make_policy("softmax:text-match:0.1", env, params, samples=300)
    assert type(softmax) is policies.Softmax and isinstance(softmax.agent, TextMatchAgent)
    assert softmax.temperature == 0.1 and softmax.marginal_samples == 300 and softmax.name == "softmax(text-match, 0.1)"
    assert make_policy(parse_policy("softmax:text-match"), env, params).temperature == 0.05

    assert type(linucb_policy) is policies.Greedy and isinstance(linucb_policy.agent, LinUCB)
    assert linucb_policy.agent.context == REQUEST_ITEM and linucb_policy.name == "linucb"
    initial = linucb_policy.agent.init(jax.random.key(0), params)
    assert int(linucb_policy.state.steps) == 16 * 8 and int(initial.steps) == 0
    assert not np.allclose(linucb_policy.state.estimate, initial.estimate)
    sampled = make_policy("sampled:lints", env, params, samples=50, train_users=16, train_steps=8)
    assert type(sampled) is policies.Sampled and isinstance(sampled.agent, LinTS)
    assert sampled.draws == sampled.samples == 50 and sampled.agent.context == REQUEST_ITEM
    assert int(sampled.state.steps) == 16 * 8 and sampled.name == "sampled(lints)"


@pytest.mark.parametrize("name, words", [
    ("foo", r"greedy policies take one of .*text-match.*not 'foo'.*uniform, AGENT \(greedy\)"),
    ("softmax:text-match:-1", r"temperature must be > 0, got -1"),
    ("softmax:text-match:hot", r"temperature must be a number, got 'hot'"),
    ("epsilon-greedy:popularity:2", r"epsilon must be in \(0, 1\], got 2"),
    ("epsilon-greedy:popularity:0", r"epsilon 0 is greedy:popularity"),
    ("sampled:text-match", r"sampled policies take one of random, epsilon-greedy, lints, lm-lints, not 'text-match'"),
    ("greedy:text-match:3", r"greedy policies take no number; write greedy:text-match"),
    ("boltzmann:text-match", r"Unknown policy 'boltzmann:text-match'; a policy is uniform, AGENT"),
])
def test_parse_policy_errors(name, words):
    with pytest.raises(ValueError, match=words):
        parse_policy(name)


# -- 8. deterministic slates ------------------------------------------------------------------------------------

def test_deterministic_slates_dedup_equals_each_round(items20, slates10, uniform_logs, epsilon_log, linucb_policy):
    """Scoring each distinct request once (in blocks of 16, with the rounds shuffled and repeated) gives every
    round the slate it gets alone: a trained LinUCB on single items, text-match on slates."""
    rng = np.random.default_rng(0)
    text_match = policies.Greedy(agent=make_agent("text-match", slates10[0]), state=(), slate_size=2)
    for policy, (env, params), log in ((linucb_policy, items20, uniform_logs[0]), (text_match, slates10,
                                                                                   epsilon_log[1])):
        assert policy.agent.scores_from_request
        rows = rng.integers(0, 40, 200)
        obs = {name: value[rows] for name, value in log.observations().items()}
        each = np.asarray(_slates_each(policy, obs, params))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(blocks, "ROUNDS", 16)
            np.testing.assert_array_equal(policies.deterministic_slates(policy, obs, params), each)
        assert len(np.unique(each, axis=0)) > 1
    with pytest.raises(ValueError, match="not deterministic"):
        policies.deterministic_slates(tiny_policy("softmax", 1), {}, tiny(1)[1])


# -- 9. the agents' item scores ---------------------------------------------------------------------------------

def test_item_scores(items20, slates10, uniform_logs, epsilon_log, linucb_policy):
    """Text-match acts by the top 2 of its scores; a linear bandit's scores are ``features(request) @ mean``
    (its fast form within 1e-5 of the direct one), with or without a prior, with either context; an agent
    without scores says to use a sampled policy."""
    env, params = slates10
    text_match = make_agent("text-match", env)
    obs = {name: value[:100] for name, value in epsilon_log[1].observations().items()}
    acted = jax.vmap(lambda ob: text_match.act(jax.random.key(0), (), ob, params))(obs)
    scores = jax.vmap(lambda ob: text_match.item_scores((), ob, params))(obs)
    np.testing.assert_array_equal(acted, jax.lax.top_k(scores, 2)[1])

    env, params = items20
    requests = jnp.asarray(uniform_logs[0].request[:50])
    state = linucb_policy.state
    for agent in (linucb_policy.agent, linucb_policy.agent.replace(prior_scale=0.5),
                  linucb_policy.agent.replace(context="item", prior_scale=0.5)):
        fast = jax.vmap(lambda r: agent.item_scores(state, {"request": r}, params))(requests)
        direct = jax.vmap(lambda r: agent.features(params, r) @ agent.mean(state, params, r))(requests)
        np.testing.assert_allclose(fast, direct, atol=1e-5 * float(jnp.abs(direct).max()))
        assert float(jnp.abs(direct).max()) > 1e-3

    ucb1 = make_agent("ucb1", env)
    ucb1_state = ucb1.init(jax.random.key(0), params)
    words = r"ucb1 does not score items.*rlrec\.ope\.Sampled\(agent=\.\.\., state=\.\.\., slate_size=\.\.\., draws="
    with pytest.raises(NotImplementedError, match=words):
        ucb1.item_scores(ucb1_state, {"request": requests[0]}, params)
    sampled = ope.Sampled(agent=ucb1, state=ucb1_state, slate_size=1, draws=8)  # what the message says
    obs = {name: value[0] for name, value in uniform_logs[0].observations().items()}
    assert np.asarray(sampled.marginals(jax.random.key(0), obs, params)).shape == (1, 20)
