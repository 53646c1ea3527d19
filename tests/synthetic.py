"""Small synthetic worlds for unit tests that do not need the language model (no MovieLens, no encoding).

A catalog of random unit vectors with random popularity and quality, and a population whose requests are a
noisy view of its hidden interests: the same shapes and code paths as the real envs, built in milliseconds.
"""

from __future__ import annotations

import numpy as np

import rlrec
from rlrec.data import Catalog
from rlrec.simulators.population import Population


def synthetic_catalog(items: int = 40, dim: int = 8, seed: int = 0) -> Catalog:
    rng = np.random.default_rng(seed)
    return Catalog.from_arrays(
        rng.normal(size=(items, dim)),
        popularity=rng.integers(0, 500, size=items),
        quality=rng.normal(size=items),
        name=f"synthetic-{items}x{dim}",
    )


def synthetic_population(users: int = 6, dim: int = 8, seed: int = 0) -> Population:
    rng = np.random.default_rng(seed + 1)
    return Population.from_arrays(rng.normal(size=(users, dim)), request_noise=0.7, seed=seed, name="synthetic-users")


def synthetic_env(env_id: str = "MovieLens-Bandit-v0", *, items: int = 40, dim: int = 8, users: int = 6,
                  seed: int = 0, **overrides):
    """``rlrec.make(env_id)`` with a synthetic catalog and population in place of MovieLens."""
    return rlrec.make(
        env_id,
        catalog=synthetic_catalog(items, dim, seed),
        population=synthetic_population(users, dim, seed),
        **overrides,
    )
