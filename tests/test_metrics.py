"""Every metric against hand-computed small cases; vmapped == looped."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlrec import metrics


def test_intra_list_diversity_by_hand():
    orthogonal = jnp.eye(3)
    assert float(metrics.intra_list_diversity(orthogonal)) == pytest.approx(1.0)
    same = jnp.ones((3, 2)) / np.sqrt(2)
    assert float(metrics.intra_list_diversity(same)) == pytest.approx(0.0, abs=1e-6)
    # items at 0, 90 and 180 degrees: distances 1, 2, 1 -> mean 4/3
    circle = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert float(metrics.intra_list_diversity(circle)) == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.intra_list_diversity(jnp.ones((1, 2)))


def test_diversity_vmapped_equals_loop():
    slates = jax.random.normal(jax.random.key(0), (6, 4, 3))
    slates = slates / jnp.linalg.norm(slates, axis=-1, keepdims=True)
    batched = metrics.intra_list_diversity(slates)
    looped = jnp.stack([metrics.intra_list_diversity(s) for s in slates])
    np.testing.assert_allclose(batched, looped, rtol=1e-6)


def test_exposure_and_coverage():
    exposure = metrics.exposure_counts(jnp.array([[0, 1], [1, 2], [-1, -1]]), 5)
    assert exposure.tolist() == [1, 2, 1, 0, 0]
    assert float(metrics.coverage(exposure)) == pytest.approx(0.6)


def test_gini_by_hand():
    assert float(metrics.exposure_gini(jnp.ones(4))) == pytest.approx(0.0)
    assert float(metrics.exposure_gini(jnp.array([0.0, 0.0, 0.0, 5.0]))) == pytest.approx(0.75)
    # sorted [0, 0, 1, 3]: sum (2i - 5) x_i = 1*1 + 3*3 = 10, / (4 * 4) = 0.625
    assert float(metrics.exposure_gini(jnp.array([3.0, 0.0, 1.0, 0.0]))) == pytest.approx(0.625)
    assert float(metrics.exposure_gini(jnp.zeros(3))) == 0.0
    batched = metrics.exposure_gini(jnp.array([[1.0, 1.0], [0.0, 2.0]]))
    np.testing.assert_allclose(batched, [0.0, 0.5])


def test_genre_entropy_by_hand():
    genres = jnp.array([[1, 0], [0, 1], [1, 1]])
    assert float(metrics.genre_entropy(jnp.array([1.0, 1.0, 0.0]), genres)) == pytest.approx(1.0)
    assert float(metrics.genre_entropy(jnp.array([2.0, 0.0, 0.0]), genres)) == pytest.approx(0.0)
    # item 2 has both genres: mass (1 + 1, 1) -> shares 2/3, 1/3
    expected = -(2 / 3 * np.log2(2 / 3) + 1 / 3 * np.log2(1 / 3))
    assert float(metrics.genre_entropy(jnp.array([1.0, 0.0, 1.0]), genres)) == pytest.approx(expected, rel=1e-5)


def test_novelty_by_hand():
    popularity = jnp.array([1.0, 1.0, 2.0])  # smoothed: 2, 2, 3 of 7
    value = float(metrics.novelty(jnp.array([0, 2]), popularity))
    assert value == pytest.approx((-np.log2(2 / 7) - np.log2(3 / 7)) / 2, rel=1e-6)


def test_accuracy_at_k_by_hand():
    slate = jnp.array([4, 1, 7])
    relevant = jnp.array([1, 2, 4, 9])
    assert float(metrics.precision_at_k(slate, relevant)) == pytest.approx(2 / 3)
    assert float(metrics.recall_at_k(slate, relevant)) == pytest.approx(2 / 4)
    assert float(metrics.f1_at_k(slate, relevant)) == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    dcg = 1 / np.log2(2) + 1 / np.log2(3)
    ideal = 1 / np.log2(2) + 1 / np.log2(3) + 1 / np.log2(4)
    assert float(metrics.ndcg_at_k(slate, relevant)) == pytest.approx(dcg / ideal, rel=1e-6)
    assert float(metrics.f1_at_k(jnp.array([0]), jnp.array([1]))) == 0.0
    assert float(metrics.ndcg_at_k(jnp.array([3, 5]), jnp.array([5, 3]))) == pytest.approx(1.0)


def test_regret_and_ctr():
    regret = jnp.array([[0.5, 0.25, 0.0]])
    np.testing.assert_allclose(metrics.cumulative_regret(regret), [[0.5, 0.75, 0.75]])
    assert float(metrics.click_through_rate(jnp.array([1.0, 0.0, 0.0, 1.0]))) == 0.5


def test_episode_returns():
    reward = np.array([1, 0, 1, 1, 1, 0])
    done = np.array([0, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(metrics.episode_returns(reward, done), [2, 2])  # steps 0-2 and 3-4
    assert metrics.episode_returns(reward, np.zeros(6)).size == 0


def test_confidence_interval_by_hand():
    mean, half = metrics.mean_confidence_interval(np.array([1.0, 3.0]))
    # t(0.975, df=1) = 12.7062; standard error = sqrt(2) / sqrt(2) = 1
    assert mean == 2.0 and half == pytest.approx(12.7062, rel=1e-4)
    mean, half = metrics.mean_confidence_interval(np.array([[1.0, 2.0], [3.0, 2.0]]))
    np.testing.assert_allclose(mean, [2.0, 2.0])
    np.testing.assert_allclose(half, [12.7062, 0.0], rtol=1e-4)
    assert np.isnan(metrics.mean_confidence_interval(np.array([1.0]))[1])


def test_check_finite_names_the_earliest_bad_step_then_seed():
    from rlrec.metrics import NonFiniteResultError, check_finite

    regret = np.zeros((3, 10))
    regret[0, 7], regret[2, 2], regret[1, 2] = np.nan, np.inf, np.nan
    with pytest.raises(NonFiniteResultError, match=r"non-finite regret \(nan\) at seed 1, step 2 \(3 non-finite"):
        check_finite({"regret": regret, "reward": np.zeros((3, 10))}, ["reward", "regret"], "x")
    slates = np.zeros((2, 5, 4))
    slates[1, 3, 2] = np.inf
    with pytest.raises(NonFiniteResultError, match=r"at seed 1, iteration 13"):
        check_finite({"s": slates}, ["s"], "x", axes=("seed", "iteration"), offsets=(0, 10))
    check_finite({"regret": np.ones((2, 3))}, ["regret"], "x")  # finite: no error
