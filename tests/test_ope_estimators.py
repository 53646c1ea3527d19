"""Off-policy estimators (rlrec.ope.estimators): hand-computed values, exact (un)biasedness by enumerating every
slate and click outcome of a 4-item, 2-slot problem, the pseudo-inverse weights against ``np.linalg.pinv``,
sampled checks with a stated sigma budget, and validation. NumPy only for the references."""

from __future__ import annotations

import collections
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlrec.ope import estimators as est
from rlrec.ope.estimators import ESTIMATORS, SLATE_ESTIMATORS, Estimate, EstimatorInputs, estimate_all
from rlrec.ope.pseudo_inverse import pi_weights

# -- 1. a hand-computed 3-item problem (k = 1) ----------------------------------------------------------------

# Behaviour b = (1/2, 1/4, 1/4), target pi = (1/4, 1/2, 1/4) over items 0, 1, 2; reward model qhat = (1/2, 1/4, 1/2).
# Three rounds: item 0 clicked, item 1 clicked, item 2 not clicked. Weights w = pi / b = (1/2, 2, 1).
# dm_target = sum_i pi_i qhat_i = 1/8 + 1/8 + 1/8 = 3/8 every round.
HAND = dict(
    reward=[1.0, 1.0, 0.0], clicks=[[1.0], [1.0], [0.0]],
    behaviour_prefix=[[0.5], [0.25], [0.25]], behaviour_slot=[[0.5], [0.25], [0.25]],
    target_prefix=[[0.25], [0.5], [0.25]], target_slot=[[0.25], [0.5], [0.25]],
    dm_logged=[[0.5], [0.25], [0.5]], dm_target=[0.375, 0.375, 0.375],
)
HAND_VALUES = {
    "dm": 0.375,                       # mean(3/8, 3/8, 3/8)
    "ips": 2.5 / 3,                    # (1/2 * 1 + 2 * 1 + 1 * 0) / 3 = 2.5 / 3 = 0.8333
    "snips": 2.5 / 3.5,                # 2.5 / (1/2 + 2 + 1) = 5/7 = 0.7143
    # residuals r - qhat = (1/2, 3/4, -1/2); w (r - qhat) = (1/4, 3/2, -1/2), sum 5/4
    "dr": 0.375 + 1.25 / 3,            # 3/8 + (5/4) / 3 = 0.7917
    "sndr": 0.375 + 1.25 / 3.5,        # 3/8 + (5/4) / (7/2) = 3/8 + 5/14 = 0.7321
    "switch-dr": 0.375 + (0.25 - 0.5) / 3,  # threshold 1 keeps rounds 1 and 3 (w = 1/2, 1): 3/8 - 1/12 = 0.2917
    "iips": 2.5 / 3, "rips": 2.5 / 3,  # k = 1: the same weights as IPS
    "pi": 2.5 / 3,                     # k = 1: Gamma = diag(b), pi_weight = pi / b = w
}
HAND_STDERRS = {
    # IPS terms (1/2, 2, 0), mean 5/6; deviations (-1/3, 7/6, -5/6); squares sum (4 + 49 + 25) / 36 = 13/6;
    # stderr = sqrt(13/6 / (3 * 2)) = sqrt(13/36) = 0.6009
    "ips": np.sqrt(13 / 36),
    # SNIPS influence w (r - 5/7) / mean(w), mean(w) = 7/6: (6/49, 24/49, -30/49); squares sum 1512/2401;
    # stderr = sqrt(1512/2401 / 6) = sqrt(252) / 49 = 0.3240
    "snips": np.sqrt(252) / 49,
    "dm": 0.0,  # a constant
}


def test_hand_computed_values():
    inputs = EstimatorInputs.build(**HAND, pi_weight=[0.5, 2.0, 1.0])
    results = estimate_all(inputs, switch_threshold=1.0)
    assert list(results) == list(ESTIMATORS)
    for name, value in HAND_VALUES.items():
        np.testing.assert_allclose(float(results[name].value), value, rtol=1e-6, err_msg=name)
    for name, stderr in HAND_STDERRS.items():
        np.testing.assert_allclose(float(results[name].stderr), stderr, rtol=1e-6, atol=1e-7, err_msg=name)


# -- 2. exact unbiasedness by enumeration: N = 4 items, slates of k = 2 (12 ordered slates) ---------------------

N_ITEMS, K = 4, 2
SLATES = list(itertools.permutations(range(N_ITEMS), K))
CLICK_VECTORS = np.array(list(itertools.product((0.0, 1.0), repeat=K)))  # every outcome, impossible ones with p = 0
_RNG = np.random.default_rng(20261202)
# Slot-item click probabilities c(j, i): item and position effects (slot 2 is looked at less).
SLOT_CLICK = _RNG.uniform(0.1, 0.6, (K, N_ITEMS)) * np.array([[1.0], [0.7]])
ADDITIVE = _RNG.uniform(0.05, 0.45, (K, N_ITEMS))  # f(j, i), sum over a slate <= 0.9
UTILITY = _RNG.normal(0.0, 1.0, N_ITEMS)  # MNL utilities (and the additive model's attribution)
NO_CLICK_UTILITY = 0.3
WRONG_MODEL = _RNG.uniform(0.0, 0.5, (K, N_ITEMS))  # qhat(j, i): unrelated to every click model


def independent_clicks(slate) -> np.ndarray:
    """Each slot clicked independently with probability c(j, s_j)."""
    c = SLOT_CLICK[np.arange(K), slate]
    return np.prod(np.where(CLICK_VECTORS == 1.0, c, 1.0 - c), axis=1)


def cascade_clicks(slate) -> np.ndarray:
    """Read top-down, stop at the first click: slot j examined only if no click above, clicked w.p. c(j, s_j)."""
    c = SLOT_CLICK[np.arange(K), slate]
    probs = np.zeros(len(CLICK_VECTORS))
    reach = 1.0  # the probability of reading slot j: no click above it
    for j in range(K):
        probs[_vector_index(np.eye(K)[j])] = reach * c[j]
        reach *= 1.0 - c[j]
    probs[_vector_index(np.zeros(K))] = reach
    return probs


def additive_clicks(slate) -> np.ndarray:
    """One click with probability sum_j f(j, s_j), credited to slot j with the MNL share of s_j in the slate.

    The slate's expected reward is additive; a slot's clicks depend on the other slot (the credit).
    """
    total = ADDITIVE[np.arange(K), slate].sum()
    share = np.exp(UTILITY[list(slate)]) / np.exp(UTILITY[list(slate)]).sum()
    probs = np.zeros(len(CLICK_VECTORS))
    probs[_vector_index(np.zeros(K))] = 1.0 - total
    for j in range(K):
        probs[_vector_index(np.eye(K)[j])] = total * share[j]
    return probs


def mnl_clicks(slate) -> np.ndarray:
    """Multinomial logit: slot j clicked w.p. exp(u_{s_j}) / (exp(u_0) + sum_l exp(u_{s_l})): clicks compete."""
    weights = np.exp(UTILITY[list(slate)])
    denominator = np.exp(NO_CLICK_UTILITY) + weights.sum()
    probs = np.zeros(len(CLICK_VECTORS))
    probs[_vector_index(np.zeros(K))] = np.exp(NO_CLICK_UTILITY) / denominator
    for j in range(K):
        probs[_vector_index(np.eye(K)[j])] = weights[j] / denominator
    return probs


def _vector_index(vector) -> int:
    return int(np.flatnonzero((CLICK_VECTORS == vector).all(axis=1))[0])


CLICK_MODELS = {"independent": independent_clicks, "cascade": cascade_clicks, "additive": additive_clicks,
                "mnl": mnl_clicks}
# Where each click model meets each estimator's assumption (DR: the propensities are right, the model wrong), and
# where it does not. PI under the cascade is in neither: its reward c1 + c2 - c1 c2 is additive but for the small
# c1 c2, and its bias here (1e-4 to 7e-3) is that of an approximation, not asserted either way.
UNBIASED = {
    "independent": {"ips", "iips", "rips", "pi", "dr"},
    "cascade": {"ips", "rips", "dr"},
    "additive": {"ips", "pi", "dr"},
    "mnl": {"ips", "dr"},
}
BIASED = {
    "independent": {"dm"},
    "cascade": {"dm", "iips"},
    "additive": {"dm", "iips", "rips"},
    "mnl": {"dm", "iips", "rips", "pi"},
}
CHECKED = ("dm", "ips", "dr", "iips", "rips", "pi")  # the estimators that are means of per-round terms
GREEDY = (2, 0)
EPSILON = 0.3


def behaviour_policy(kind: str) -> np.ndarray:
    """Probabilities of the 12 slates under a logging policy."""
    if kind == "uniform":
        return np.full(len(SLATES), 1.0 / len(SLATES))
    if kind == "epsilon-greedy":
        return EPSILON / len(SLATES) + (1.0 - EPSILON) * np.array([slate == GREEDY for slate in SLATES], float)
    return np.random.default_rng(7).dirichlet(np.ones(len(SLATES)))  # "random": full support


def target_policy(kind: str) -> np.ndarray:
    if kind == "deterministic":
        return np.array([slate == (2, 1) for slate in SLATES], float)
    probs = np.random.default_rng(11).dirichlet(np.full(len(SLATES), 0.3))  # far from uniform
    probs[[0, 5, 9]] = 0.0  # some slates the target never shows (their weights must be exactly 0)
    return probs / probs.sum()


def indicator_matrix(slates, num_items: int) -> np.ndarray:
    """``(S, k N)`` the (slot, item) indicators 1_s of each slate."""
    k = len(slates[0])
    matrix = np.zeros((len(slates), k * num_items))
    for row, slate in enumerate(slates):
        matrix[row, np.arange(k) * num_items + np.asarray(slate)] = 1.0
    return matrix


def marginals(probs: np.ndarray, slates, num_items: int) -> dict[str, np.ndarray]:
    """A slate policy's probabilities at each slate's items: ``prefix`` ``(S, k)`` of its first j + 1 slots, ``slot``
    ``(S, k)`` of item s_j in slot j, ``item`` ``(S, k)`` of item s_j anywhere; and the tables ``slot_table``
    ``(k, N)`` and ``item_table`` ``(N,)``."""
    k = len(slates[0])
    indicators = indicator_matrix(slates, num_items).reshape(len(slates), k, num_items)
    slot_table = np.einsum("s,sjn->jn", probs, indicators)
    item_table = np.einsum("s,sjn->n", probs, indicators)  # distinct items: at most one slot each
    prefix_mass: dict[tuple[int, ...], float] = collections.defaultdict(float)
    for p, slate in zip(probs, slates):
        for j in range(k):
            prefix_mass[slate[: j + 1]] += p
    prefix = np.array([[prefix_mass[slate[: j + 1]] for j in range(k)] for slate in slates])
    return {"prefix": prefix, "slot": np.array([slot_table[np.arange(k), list(slate)] for slate in slates]),
            "item": np.array([item_table[list(slate)] for slate in slates]), "slot_table": slot_table,
            "item_table": item_table}


def pinv_weights(behaviour: np.ndarray, target: np.ndarray, slates, num_items: int) -> np.ndarray:
    """``theta^T pinv(Gamma) 1_s`` of every slate, with ``Gamma = sum_s b(s) 1_s 1_s^T`` enumerated."""
    indicators = indicator_matrix(slates, num_items)
    gamma = indicators.T @ (behaviour[:, None] * indicators)
    return indicators @ np.linalg.pinv(gamma, rcond=1e-10) @ (target @ indicators)


def closed_form_weights(kind: str, target: np.ndarray, slates, num_items: int, epsilon: float = 1.0,
                        greedy: tuple[int, ...] = ()) -> np.ndarray:
    """:func:`pi_weights` of every slate under uniform or epsilon-greedy logging."""
    k, count = len(slates[0]), len(slates)
    policy = marginals(target, slates, num_items)
    if kind == "uniform":
        return np.asarray(pi_weights("uniform", num_items, k, policy["slot"], policy["item"]))
    return np.asarray(pi_weights(
        "epsilon-greedy", num_items, k, policy["slot"], policy["item"], epsilon=epsilon,
        target_greedy_slot=np.tile(policy["slot_table"][np.arange(k), list(greedy)], (count, 1)),
        target_greedy_item=np.tile(policy["item_table"][list(greedy)], (count, 1)),
        matches=np.array([sum(a == g for a, g in zip(slate, greedy)) for slate in slates], float),
        shared=np.array([len(set(slate) & set(greedy)) for slate in slates], float)))


@jax.jit
def per_round_terms(inputs: EstimatorInputs) -> dict[str, jax.Array]:
    """Each checked estimator's term of every round: the estimator on that round alone (vmapped)."""
    one_round = jax.tree.map(lambda leaf: leaf[:, None], inputs)
    return {name: jax.vmap(lambda rounds, f=ESTIMATORS[name].function: f(rounds).value)(one_round)
            for name in CHECKED}


@pytest.mark.parametrize("target_kind", ["deterministic", "stochastic"])
@pytest.mark.parametrize("behaviour_kind", ["uniform", "epsilon-greedy", "random"])
@pytest.mark.parametrize("click_model", list(CLICK_MODELS))
def test_exact_expectations_by_enumeration(click_model, behaviour_kind, target_kind):
    """Every slate and click outcome, weighted by its probability under the behaviour: each estimator's exact
    expectation equals the target's exact value (to 1e-5) where its assumption holds, and is clearly off (more
    than 1e-3; the smallest such bias here is 3.5e-3) where it does not. DM uses a wrong reward model: biased
    throughout; DR with the same model is unbiased throughout (the propensities are right)."""
    behaviour, target = behaviour_policy(behaviour_kind), target_policy(target_kind)
    outcomes = np.stack([CLICK_MODELS[click_model](slate) for slate in SLATES])  # (12, 4) P(clicks | slate)
    rewards = CLICK_VECTORS.sum(axis=1)
    truth = float(target @ outcomes @ rewards)

    logged, targeted = marginals(behaviour, SLATES, N_ITEMS), marginals(target, SLATES, N_ITEMS)
    if behaviour_kind == "random":  # no closed form: the pseudo-inverse itself
        weights = pinv_weights(behaviour, target, SLATES, N_ITEMS)
    else:
        weights = closed_form_weights(behaviour_kind, target, SLATES, N_ITEMS, EPSILON, GREEDY)
    dm_logged = np.array([WRONG_MODEL[np.arange(K), list(slate)] for slate in SLATES])
    dm_target = float(target @ dm_logged.sum(axis=1))

    rows = [(s, o) for s in range(len(SLATES)) for o in range(len(CLICK_VECTORS))]  # every (slate, clicks) pair
    slate_rows, outcome_rows = np.array(rows).T
    inputs = EstimatorInputs.build(
        reward=rewards[outcome_rows], clicks=CLICK_VECTORS[outcome_rows],
        behaviour_prefix=logged["prefix"][slate_rows], behaviour_slot=logged["slot"][slate_rows],
        target_prefix=targeted["prefix"][slate_rows], target_slot=targeted["slot"][slate_rows],
        dm_logged=dm_logged[slate_rows], dm_target=np.full(len(rows), dm_target), pi_weight=weights[slate_rows])
    probability = behaviour[slate_rows] * outcomes[slate_rows, outcome_rows]
    np.testing.assert_allclose(probability.sum(), 1.0, rtol=1e-12)

    terms = per_round_terms(inputs)
    for name in CHECKED:
        expectation = float(probability @ np.asarray(terms[name], np.float64))
        if name in UNBIASED[click_model]:
            assert expectation == pytest.approx(truth, abs=1e-5), (name, expectation, truth)
        if name in BIASED[click_model]:
            assert abs(expectation - truth) > 1e-3, (name, expectation, truth)


# -- 3. pi_weights against np.linalg.pinv of the enumerated Gamma -----------------------------------------------


def _target(kind: str, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "deterministic":
        return np.eye(count)[rng.integers(count)]
    return rng.dirichlet(np.full(count, 0.5))  # arbitrary per-slot marginals


@pytest.mark.parametrize("target_kind", ["deterministic", "stochastic"])
@pytest.mark.parametrize("num_items,slate_size", [(4, 2), (5, 3), (6, 4), (5, 1), (3, 3), (4, 4)])
def test_pi_weights_match_pinv(num_items, slate_size, target_kind):
    """Uniform and epsilon-greedy (several epsilons, several greedy slates) against ``pinv`` of the enumerated
    ``Gamma``, every slate of the catalog; ``k = N`` (every slate a permutation) included."""
    slates = list(itertools.permutations(range(num_items), slate_size))
    count = len(slates)
    target = _target(target_kind, count, seed=num_items * 10 + slate_size)
    uniform = np.full(count, 1.0 / count)
    np.testing.assert_allclose(closed_form_weights("uniform", target, slates, num_items),
                               pinv_weights(uniform, target, slates, num_items), rtol=2e-5, atol=2e-5)
    rng = np.random.default_rng(num_items + slate_size)
    for epsilon in (1.0, 0.5, 0.1, 0.01):
        greedy = slates[rng.integers(count)]
        behaviour = epsilon * uniform + (1.0 - epsilon) * np.array([slate == greedy for slate in slates], float)
        reference = pinv_weights(behaviour, target, slates, num_items)
        np.testing.assert_allclose(closed_form_weights("epsilon-greedy", target, slates, num_items, epsilon, greedy),
                                   reference, rtol=2e-5, atol=2e-5 * np.abs(reference).max(),
                                   err_msg=f"epsilon={epsilon}")


def test_pi_weights_slot_only_form_is_uniform_with_repetition():
    """``N sum_j P_e(s_j in j) - (k - 1)`` is the weight of uniform slates *with* repetition (independent slots):
    without repetition (rlrec's random slates) the items shared in other slots count too, and it is wrong."""
    num_items, slate_size = 4, 2
    with_repetition = list(itertools.product(range(num_items), repeat=slate_size))
    target = _target("stochastic", len(with_repetition), seed=3)
    indicators = indicator_matrix(with_repetition, num_items)
    theta = target @ indicators
    slot_only = num_items * (indicators @ theta) - (slate_size - 1)
    uniform = np.full(len(with_repetition), 1.0 / len(with_repetition))
    np.testing.assert_allclose(slot_only, pinv_weights(uniform, target, with_repetition, num_items), atol=1e-9)

    distinct = list(itertools.permutations(range(num_items), slate_size))
    target = _target("stochastic", len(distinct), seed=4)
    slot_only = num_items * marginals(target, distinct, num_items)["slot"].sum(axis=1) - (slate_size - 1)
    reference = pinv_weights(np.full(len(distinct), 1.0 / len(distinct)), target, distinct, num_items)
    assert np.abs(slot_only - reference).max() > 0.1


def test_pi_weights_per_round_epsilon_under_jit():
    """A decaying epsilon, one per round, under ``jit``: the same weights as one scalar epsilon at a time."""
    rng = np.random.default_rng(9)
    slot, item, greedy_slot, greedy_item = rng.uniform(0.0, 0.5, (4, 3, 2))
    matches, shared = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 2.0])
    epsilons = np.array([0.5, 0.2, 0.05])
    weigh = jax.jit(lambda epsilon: pi_weights("epsilon-greedy", 6, 2, slot, item, epsilon=epsilon,
                                               target_greedy_slot=greedy_slot, target_greedy_item=greedy_item,
                                               matches=matches, shared=shared))
    per_round = np.asarray(weigh(epsilons))
    for row, epsilon in enumerate(epsilons):
        np.testing.assert_allclose(per_round[row], np.asarray(weigh(epsilon))[row], rtol=1e-6)


def test_pi_weights_errors():
    slot = np.full((3, 2), 0.25)
    with pytest.raises(ValueError, match="'uniform' or 'epsilon-greedy'.*closed form"):
        pi_weights("softmax", 4, 2, slot, slot)
    with pytest.raises(ValueError, match="target_item"):
        pi_weights("uniform", 4, 2, slot)
    with pytest.raises(ValueError, match=r"target_slot must have shape \(n, 2\), got \(3, 3\)"):
        pi_weights("uniform", 4, 2, np.zeros((3, 3)), slot)
    with pytest.raises(ValueError, match="slate_size must be in 1..num_items"):
        pi_weights("uniform", 2, 3, slot, slot)
    with pytest.raises(ValueError, match="needs epsilon"):
        pi_weights("epsilon-greedy", 4, 2, slot, slot)
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, 1\]"):
        pi_weights("epsilon-greedy", 4, 2, slot, slot, epsilon=0.0, target_greedy_slot=slot,
                   target_greedy_item=slot, matches=np.zeros(3), shared=np.zeros(3))
    with pytest.raises(ValueError, match=r"matches must have shape \(3,\)"):
        pi_weights("epsilon-greedy", 4, 2, slot, slot, epsilon=0.1, target_greedy_slot=slot,
                   target_greedy_item=slot, matches=np.zeros(2), shared=np.zeros(3))
    # k = 1 needs no item marginals, and is IPS under uniform logging: N P_e(s)
    np.testing.assert_allclose(pi_weights("uniform", 5, 1, np.array([[0.2], [0.0], [1.0]])), [1.0, 0.0, 5.0])


# -- 4. sampled checks ------------------------------------------------------------------------------------------

SAMPLED_ITEMS = 10
_SAMPLED = np.random.default_rng(5)
SAMPLED_CLICK = _SAMPLED.uniform(0.05, 0.5, SAMPLED_ITEMS)
SAMPLED_BEHAVIOUR = _SAMPLED.dirichlet(np.full(SAMPLED_ITEMS, 2.0))
SAMPLED_TARGET = _SAMPLED.dirichlet(np.full(SAMPLED_ITEMS, 0.7))
SAMPLED_TRUTH = float(SAMPLED_TARGET @ SAMPLED_CLICK)
SAMPLED_MODEL = SAMPLED_CLICK * 0.5 + 0.2  # deliberately wrong: shrunk and shifted


def sampled_inputs(key: jax.Array, rounds: int) -> EstimatorInputs:
    """``rounds`` single-item rounds logged under the behaviour, Bernoulli clicks (k = 1)."""
    item_key, click_key = jax.random.split(key)
    items = jax.random.choice(item_key, SAMPLED_ITEMS, (rounds,), p=jnp.asarray(SAMPLED_BEHAVIOUR))
    clicks = (jax.random.uniform(click_key, (rounds,)) < jnp.asarray(SAMPLED_CLICK, jnp.float32)[items]).astype(
        jnp.float32)
    behaviour = jnp.asarray(SAMPLED_BEHAVIOUR, jnp.float32)[items][:, None]
    target = jnp.asarray(SAMPLED_TARGET, jnp.float32)[items][:, None]
    model = jnp.asarray(SAMPLED_MODEL, jnp.float32)
    return EstimatorInputs(reward=clicks, clicks=clicks[:, None], behaviour_prefix=behaviour, behaviour_slot=behaviour,
                           target_prefix=target, target_slot=target, dm_logged=model[items][:, None],
                           dm_target=jnp.full((rounds,), jnp.float32(SAMPLED_TARGET @ SAMPLED_MODEL)),
                           pi_weight=jnp.full((rounds,), jnp.nan, jnp.float32))


def test_dr_unbiased_with_a_wrong_model():
    """200 seeds of 1,000 rounds: DR's mean within 4 sigma of the truth (sigma: the spread of the 200 estimates
    / sqrt(200)); DM with the same model is far off; the reported standard error matches the spread (+-25%: the
    sample std of 200 values is within 4 x 5% of the true one)."""
    keys = jax.random.split(jax.random.key(0), 200)
    results = jax.jit(jax.vmap(lambda key: estimate_all(sampled_inputs(key, 1000), names=("dr", "dm", "ips"))))(keys)
    for name in ("dr", "ips"):
        values = np.asarray(results[name].value, np.float64)
        sigma = values.std(ddof=1) / np.sqrt(len(values))
        assert abs(values.mean() - SAMPLED_TRUTH) < 4 * sigma, (name, values.mean(), SAMPLED_TRUTH, sigma)
        assert np.mean(np.asarray(results[name].stderr)) == pytest.approx(values.std(ddof=1), rel=0.25)
    dm_bias = float(np.mean(results["dm"].value)) - SAMPLED_TRUTH
    assert abs(dm_bias) > 0.02 and abs(dm_bias) > 20 * sigma


def test_snips_consistent():
    """SNIPS's error shrinks like 1/sqrt(n): within 4 of its (delta-method) standard errors of the truth after the
    first 1k, 10k and 100k rounds of one log, the standard error at 100k a tenth of that at 1k (+-20%)."""
    sizes = (1_000, 10_000, 100_000)

    @jax.jit
    def first_rounds(key):
        log = sampled_inputs(key, sizes[-1])
        return [est.snips(jax.tree.map(lambda leaf, n=n: leaf[:n], log)) for n in sizes]

    results = dict(zip(sizes, first_rounds(jax.random.key(1))))
    for rounds, result in results.items():
        assert abs(float(result.value) - SAMPLED_TRUTH) < 4 * float(result.stderr), (rounds, float(result.value))
    assert float(results[100_000].stderr) == pytest.approx(float(results[1_000].stderr) / 10, rel=0.2)


# -- 5. shapes, validation, jit == eager, NaN handling ---------------------------------------------------------


@pytest.mark.parametrize("field,shape,expected", [
    ("clicks", (3, 1, 1), None), ("behaviour_prefix", (3, 2), "(3, 1)"), ("target_slot", (2, 1), "(3, 1)"),
    ("dm_logged", (3,), "(3, 1)"), ("dm_target", (3, 1), "(3,)"), ("pi_weight", (4,), "(3,)"),
])
def test_build_names_the_misshapen_field(field, shape, expected):
    fields = dict(HAND, **{field: np.full(shape, 0.5)})
    message = rf"{field} must have shape" + (rf" {expected.replace('(', '[(]').replace(')', '[)]')}" if expected
                                               else "")
    with pytest.raises(ValueError, match=message + rf".*got {str(shape).replace('(', '[(]').replace(')', '[)]')}"):
        EstimatorInputs.build(**fields)


def test_build_checks_probabilities():
    with pytest.raises(ValueError, match="reward must have shape"):
        EstimatorInputs.build(**dict(HAND, reward=np.zeros((3, 1))))
    with pytest.raises(ValueError, match=r"target_slot must hold probabilities in \[0, 1\]"):
        EstimatorInputs.build(**dict(HAND, target_slot=[[0.5], [1.5], [0.2]]))
    with pytest.raises(ValueError, match="behaviour_prefix is 0 at"):
        EstimatorInputs.build(**dict(HAND, behaviour_prefix=[[0.5], [0.0], [0.2]]))
    with pytest.raises(ValueError, match="exceeds float32's largest number"):
        EstimatorInputs.build(**dict(HAND, behaviour_prefix=[[1e-40], [0.5], [0.5]], target_prefix=[[1.0], [0.5],
                                                                                                  [0.5]]))


def test_tiny_float64_propensities_keep_their_ratios():
    """Whole-slate probabilities below float32's range (1e-45, 1e-60) keep their ratio; 1e-20 ones (a uniform slate
    of 5 of 9,066 items) are float32-normal already, and their weights' squares (1e39) do not overflow the
    standard error."""
    inputs = EstimatorInputs.build(
        reward=[1.0, 0.0, 1.0], clicks=[[1.0], [0.0], [1.0]],
        behaviour_prefix=np.array([[1e-45], [1e-60], [1.6e-20]]), behaviour_slot=np.full((3, 1), 0.1),
        target_prefix=np.array([[3e-45], [2.5e-61], [1.0]]), target_slot=np.full((3, 1), 0.1))
    np.testing.assert_allclose(np.asarray(est.slate_weight(inputs)), [3.0, 0.25, 1 / 1.6e-20], rtol=1e-6)
    results = estimate_all(inputs, names=("ips", "snips"))
    # IPS terms ~(0, 0, x = 6.25e19): deviations (-x/3, -x/3, 2x/3), squares 2x^2/3, stderr sqrt(2x^2/3 / 6) = x/3
    assert float(results["ips"].stderr) == pytest.approx(6.25e19 / 3, rel=1e-4)
    # SNIPS = (3 + 6.25e19) / (3.25 + 6.25e19) = 1 - 4e-21; its influence terms are O(1)
    assert float(results["snips"].value) == pytest.approx(1.0, rel=1e-6)
    assert np.isfinite(float(results["snips"].stderr))


def _random_inputs(seed: int, rounds: int, slate_size: int) -> EstimatorInputs:
    rng = np.random.default_rng(seed)
    behaviour_prefix = np.cumprod(rng.uniform(0.05, 0.5, (rounds, slate_size)), axis=1)
    target_prefix = np.cumprod(rng.uniform(0.0, 0.5, (rounds, slate_size)), axis=1)
    clicked = rng.integers(0, slate_size + 1, rounds)  # slate_size: no click
    clicks = np.eye(slate_size + 1)[clicked][:, :slate_size]
    if slate_size == 1:  # one slot: its marginal is the whole slate's probability
        behaviour_slot, target_slot = behaviour_prefix, target_prefix
    else:
        behaviour_slot, target_slot = rng.uniform(0.05, 0.5, (2, rounds, slate_size))
    return EstimatorInputs.build(reward=clicks.sum(1), clicks=clicks, behaviour_prefix=behaviour_prefix,
                                 behaviour_slot=behaviour_slot, target_prefix=target_prefix, target_slot=target_slot,
                                 dm_logged=rng.uniform(0, 0.3, (rounds, slate_size)),
                                 dm_target=rng.uniform(0, 1, rounds), pi_weight=rng.normal(1.0, 3.0, rounds))


@pytest.mark.parametrize("slate_size", [1, 3])
def test_jit_equals_eager(slate_size):
    inputs = _random_inputs(1, 50, slate_size)
    jitted = estimate_all(inputs, switch_threshold=30.0)
    for name, spec in ESTIMATORS.items():  # the functions themselves run op by op
        eager = spec.function(inputs, 30.0) if name == "switch-dr" else spec.function(inputs)
        for field in ("value", "stderr"):
            np.testing.assert_allclose(float(getattr(jitted[name], field)), float(getattr(eager, field)),
                                       rtol=1e-5, err_msg=f"{name}.{field}")


def test_single_item_slate_estimators_are_ips():
    inputs = _random_inputs(2, 40, 1)
    inputs = inputs.replace(pi_weight=est.slate_weight(inputs))
    results = estimate_all(inputs)
    for name in SLATE_ESTIMATORS:
        np.testing.assert_allclose(float(results[name].value), float(results["ips"].value), rtol=1e-6)


def test_switch_thresholds():
    """``inf`` is DR, ``0`` is DM (rounds with weight 0 add nothing), the default is ``sqrt(n)``."""
    inputs = _random_inputs(3, 60, 2)
    assert float(est.switch_dr(inputs, jnp.inf).value) == pytest.approx(float(est.dr(inputs).value), rel=1e-6)
    assert float(est.switch_dr(inputs, 0.0).value) == pytest.approx(float(est.dm(inputs).value), rel=1e-6)
    assert float(est.switch_dr(inputs).value) == pytest.approx(float(est.switch_dr(inputs, np.sqrt(60)).value))
    assert est.default_switch_threshold(1_000_000) == 1000.0


def test_missing_pi_weight_and_model_give_nan():
    """pi_weight left out: PI is NaN (not an error); no reward model: DM, DR, SNDR, SWITCH-DR are NaN; the rest
    are finite."""
    inputs = EstimatorInputs.build(**{name: value for name, value in HAND.items() if not name.startswith("dm")})
    results = estimate_all(inputs)
    nan = {"pi", "dm", "dr", "sndr", "switch-dr"}
    for name, result in results.items():
        assert np.isnan(float(result.value)) == (name in nan), name
    assert isinstance(results["ips"], Estimate)


def test_estimate_all_names():
    inputs = EstimatorInputs.build(**HAND)
    results = estimate_all(inputs, names=["snips", "ips"])
    assert list(results) == ["snips", "ips"]
    with pytest.raises(ValueError, match="Unknown estimators \\['ipw'\\]; known: dm, ips"):
        estimate_all(inputs, names=("ipw",))
    assert set(SLATE_ESTIMATORS) <= set(ESTIMATORS)
    assert all(spec.assumption for spec in ESTIMATORS.values())
    assert "rounds=3" in repr(inputs) and "value=" in repr(results["ips"])
