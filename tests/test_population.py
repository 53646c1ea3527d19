"""Users from real ratings in LM space; sampling around prototypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlrec.data import CatalogError
from rlrec.simulators.population import (
    Population,
    interests_from_ratings,
    movielens_population,
    request_texts_for_user,
    sample_user,
)


def test_interest_from_ratings_by_hand():
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0]])
    # user 0 rates item 0 with 5 and item 1 with 1 (mean 3): u ~ 2 e0 - 2 e1
    # user 1 rates both 4: no contrast, falls back to the mean of what they rated
    interests = interests_from_ratings(
        embeddings, np.array([0, 1, 0, 1]), np.array([5.0, 1.0, 4.0, 4.0]), np.array([0, 0, 1, 1]), 2
    )
    np.testing.assert_allclose(interests[0], [np.sqrt(0.5), -np.sqrt(0.5)], rtol=1e-6)
    np.testing.assert_allclose(interests[1], [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)


def test_request_texts_read_naturally():
    texts = request_texts_for_user(["Animation", "Comedy", "Drama"], "Toy Story")
    assert texts == (
        "I love animated and comedy movies.",
        "Something like Toy Story, please.",
        "Recommend me some animated and comedy films like Toy Story.",
    )
    assert request_texts_for_user([], None)[2] == "Recommend me some good films."


def test_movielens_population_has_every_real_user(movielens):
    population = movielens_population(movielens)
    assert len(population) == 671
    assert population.requests.shape == (671, 3, 384)
    np.testing.assert_allclose(np.linalg.norm(population.interests, axis=1), 1.0, atol=1e-5)
    assert all(len(texts) == 3 for texts in population.request_texts)
    # The stated request is a partial view of the hidden taste: closer to one's own interest than to others'.
    request = population.requests.mean(axis=1)
    own = np.sum(request * population.interests, axis=1)
    others = request @ population.interests.T
    assert own.mean() > others.mean() + 0.05
    # And more often than not the own interest is among the closest prototypes.
    rank = (others > own[:, None]).sum(axis=1)
    assert np.median(rank) < 671 * 0.25


def test_population_from_arrays_and_errors():
    requests = np.eye(3)[:, None, :] + 0.5
    population = Population.from_arrays(np.eye(3) * 2, requests)
    np.testing.assert_allclose(population.interests, np.eye(3))
    np.testing.assert_allclose(population.requests[:, 0], (np.eye(3) + 0.5) / np.sqrt(1.5**2 + 0.5), rtol=1e-6)
    with pytest.raises(CatalogError, match="non-empty"):
        Population.from_arrays(np.zeros((0, 3)), requests)
    with pytest.raises(CatalogError, match="all zeros"):
        Population.from_arrays(np.zeros((2, 3)), requests[:2])
    with pytest.raises(CatalogError, match="requests must have shape"):
        Population.from_arrays(np.eye(3), requests=np.ones((2, 1, 3)))
    with pytest.raises(CatalogError, match="weights"):
        Population.from_arrays(np.eye(3), requests, weights=[1.0, -1.0, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # NaN or inf weights made sampling collapse silently onto one prototype.
        ({"weights": [1.0, np.nan, 1.0], "requests": np.ones((3, 1, 3))}, "weights must be"),
        ({"weights": [1.0, np.inf, 1.0], "requests": np.ones((3, 1, 3))}, "weights must be"),
        ({"requests": np.full((3, 2, 3), np.nan)}, "requests: 6 request vectors hold NaN or inf"),
        ({"requests": np.zeros((3, 1, 3))}, "requests: 3 request vectors are all zeros"),
        ({"request_noise": 0.5}, "pass seed="),
        ({"request_noise": -1.0, "seed": 0}, "request_noise must be"),
        ({"request_noise": 0.5, "seed": 0, "requests": np.ones((3, 1, 3))}, "not both"),
    ],
)
def test_population_from_arrays_rejects(kwargs, message):
    with pytest.raises(CatalogError, match=message):
        Population.from_arrays(np.eye(3), **kwargs)


def test_population_needs_requests_and_never_defaults_them_to_the_hidden_taste():
    interests = np.random.default_rng(0).normal(size=(5, 8))
    with pytest.raises(CatalogError, match="needs the users' requests"):
        Population.from_arrays(interests)
    derived = Population.from_arrays(interests, request_noise=0.5, seed=3, requests_per_user=2)
    assert derived.requests.shape == (5, 2, 8)
    cosine = np.einsum("prd,pd->pr", derived.requests, derived.interests)
    assert np.all(cosine < 0.999) and np.all(cosine > 0.5)  # a noisy, informative view; not the answer
    again = Population.from_arrays(interests, request_noise=0.5, seed=3, requests_per_user=2)
    np.testing.assert_array_equal(derived.requests, again.requests)
    with pytest.warns(UserWarning, match="handed the answer"):
        Population.from_arrays(interests, requests=interests * 3)
    with pytest.warns(UserWarning, match="handed the answer"):
        Population.from_arrays(interests, request_noise=0.0, seed=0)


def test_sample_user_without_noise_reproduces_prototypes():
    interests = jnp.eye(4)
    requests = jnp.stack([jnp.eye(4), -jnp.eye(4)], axis=1)  # (4, 2, 4)
    keys = jax.random.split(jax.random.key(1), 64)
    interest, request, prototype = jax.vmap(sample_user, in_axes=(0, None, None, None, None))(
        keys, interests, requests, jnp.log(jnp.full(4, 0.25)), 0.0
    )
    np.testing.assert_allclose(interest, np.eye(4)[prototype])
    matches = np.abs(np.sum(np.asarray(request) * np.eye(4)[prototype], axis=1))
    np.testing.assert_allclose(matches, 1.0)
    assert set(np.asarray(request @ jnp.ones(4)).round(3).tolist()) == {1.0, -1.0}  # both requests used


def test_sample_user_follows_weights_within_4_sigma():
    weights = np.array([0.7, 0.2, 0.1])
    draws = 10_000
    keys = jax.random.split(jax.random.key(2), draws)
    _, _, prototype = jax.vmap(sample_user, in_axes=(0, None, None, None, None))(
        keys, jnp.eye(3), jnp.eye(3)[:, None], jnp.log(weights), 0.3
    )
    for index, p in enumerate(weights):
        frequency = np.mean(np.asarray(prototype) == index)
        assert abs(frequency - p) < 4 * np.sqrt(p * (1 - p) / draws)


def test_interest_noise_spreads_users_around_prototype():
    keys = jax.random.split(jax.random.key(3), 2000)
    interest, _, _ = jax.vmap(sample_user, in_axes=(0, None, None, None, None))(
        keys, jnp.eye(32)[:1], jnp.eye(32)[:1, None], jnp.zeros(1), 0.5
    )
    cosine = np.asarray(interest[:, 0])
    np.testing.assert_allclose(np.linalg.norm(interest, axis=1), 1.0, atol=1e-5)
    assert 0.8 < cosine.mean() < 0.95  # 1/sqrt(1 + 0.25) ~ 0.89 for isotropic noise of norm ~0.5
