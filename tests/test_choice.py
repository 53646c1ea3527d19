"""Choice model and oracle: hand-computed probabilities, brute-force optimality, sampling frequencies."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlrec.simulators import choice


def test_mnl_probabilities_by_hand():
    probabilities = choice.click_probabilities(jnp.array([1.0, 0.0]), jnp.array(0.0), choice.MNL)
    denominator = 1.0 + np.e + 1.0
    np.testing.assert_allclose(probabilities, [np.e / denominator, 1.0 / denominator], rtol=1e-6)


def test_cascade_probabilities_by_hand():
    probabilities = choice.click_probabilities(jnp.array([0.0, 0.0, np.log(3.0)]), jnp.array(0.0), choice.CASCADE)
    # slot 0: sigmoid(0) = 1/2; slot 1: 1/2 * 1/2; slot 2: sigmoid(log 3) = 3/4 after two misses (1/4)
    np.testing.assert_allclose(probabilities, [0.5, 0.25, 0.1875], rtol=1e-6)


@pytest.mark.parametrize("model", choice.CHOICE_MODELS)
def test_slots_not_shown_get_no_clicks(model):
    probabilities = choice.click_probabilities(
        jnp.array([1.0, 1.0, 1.0]), jnp.array(0.5), model, shown=jnp.array([True, False, True])
    )
    assert probabilities[1] == 0.0
    assert 0.0 < probabilities.sum() < 1.0


def test_mask_repeats_marks_later_copies():
    assert choice.mask_repeats(jnp.array([3, 1, 3, 2, 1])).tolist() == [False, False, True, False, True]


def test_unknown_choice_model():
    with pytest.raises(ValueError, match="Unknown choice model"):
        choice.click_probabilities(jnp.zeros(2), jnp.array(0.0), "probit")


@pytest.mark.parametrize("model", choice.CHOICE_MODELS)
@pytest.mark.parametrize("seed", range(4))
def test_oracle_slate_beats_every_other_slate(model, seed):
    rng = np.random.default_rng(seed)
    utilities = jnp.asarray(rng.normal(size=7) * 2, jnp.float32)
    position_bias = jnp.asarray(rng.normal(size=3), jnp.float32)  # deliberately not sorted
    no_click, temperature = jnp.array(0.7), jnp.array(1.3)

    def value(slate):
        slate = jnp.asarray(slate)
        return float(choice.expected_clicks(utilities[slate], position_bias, no_click, temperature, model))

    best = max(value(slate) for slate in itertools.permutations(range(7), 3))
    oracle = choice.oracle_slate(utilities, position_bias)
    assert len(set(oracle.tolist())) == 3
    assert value(oracle) == pytest.approx(best, abs=1e-6)


def test_single_item_oracle_is_argmax():
    utilities = jnp.array([0.1, 2.0, -1.0, 1.9])
    assert choice.oracle_slate(utilities, jnp.zeros(1)).tolist() == [1]


def test_sampled_clicks_match_probabilities_within_4_sigma():
    probabilities = jnp.array([0.3, 0.15, 0.05])
    draws = 20_000
    keys = jax.random.split(jax.random.key(0), draws)
    slots = np.asarray(jax.vmap(choice.sample_click, in_axes=(0, None))(keys, probabilities))
    expected = {-1: 0.5, 0: 0.3, 1: 0.15, 2: 0.05}
    for slot, p in expected.items():
        frequency = np.mean(slots == slot)
        sigma = np.sqrt(p * (1 - p) / draws)
        assert abs(frequency - p) < 4 * sigma, (slot, frequency, p)


@pytest.mark.parametrize("count", [10, 511, 512, 9066, 58788])
@pytest.mark.parametrize("k", [1, 5, 10, 32])
def test_two_level_top_k_equals_lax_top_k(count, k):
    # Distinct values (a permutation): the same items in the same order; with repeated values the same values.
    key = jax.random.key(count * 100 + k)
    values = jax.random.permutation(key, count).astype(jnp.float32) / count
    if k > count:
        return
    expected = jax.lax.top_k(values, k)
    got = jax.jit(lambda v: choice.top_k(v, k))(values)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[0], expected[0])
    rounded = jnp.round(values * 50) / 50  # many ties
    np.testing.assert_array_equal(choice.top_k(rounded, k)[0], jax.lax.top_k(rounded, k)[0])
    batch = jax.vmap(lambda v: choice.top_k(v, k))(jnp.stack([values, values[::-1]]))
    np.testing.assert_array_equal(batch[1][1], jax.lax.top_k(values[::-1], k)[1])
