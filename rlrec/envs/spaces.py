"""Functional action/observation spaces with pure ``sample(key)`` and ``contains(x)``, and their Gymnasium twins."""

from __future__ import annotations

import dataclasses
from typing import Any

import chex
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector.utils import batch_space

from rlrec.errors import InputError


@dataclasses.dataclass(frozen=True)
class Discrete:
    """Integers ``start .. start + n - 1`` (one item index; a question, ``-1`` for none, starts at -1)."""

    n: int
    dtype: Any = jnp.int32
    start: int = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    def sample(self, key: chex.PRNGKey) -> jax.Array:
        return jax.random.randint(key, (), self.start, self.start + self.n, dtype=self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        return jnp.logical_and(x >= self.start, x < self.start + self.n) & (x.shape == ())

    def to_gymnasium(self) -> gymnasium.spaces.Space:
        return gymnasium.spaces.Discrete(self.n, start=self.start)


@dataclasses.dataclass(frozen=True)
class Slate:
    """``k`` distinct integers in ``0 .. n-1`` (a slate of item indices, slot by slot)."""

    n: int
    k: int
    dtype: Any = jnp.int32

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.k,)

    def sample(self, key: chex.PRNGKey) -> jax.Array:
        return jax.random.choice(key, self.n, (self.k,), replace=False).astype(self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.shape != (self.k,):
            return jnp.asarray(False)
        in_range = jnp.all((x >= 0) & (x < self.n))
        distinct = ~jnp.any(jnp.triu(x[:, None] == x[None, :], k=1))
        return in_range & distinct

    def to_gymnasium(self) -> gymnasium.spaces.Space:
        return GymSlate(self.n, self.k)


@dataclasses.dataclass(frozen=True)
class Box:
    """Arrays of a fixed shape with elementwise bounds."""

    low: float
    high: float
    shape: tuple[int, ...]
    dtype: Any = jnp.float32

    def sample(self, key: chex.PRNGKey) -> jax.Array:
        if jnp.issubdtype(self.dtype, jnp.integer):
            return jax.random.randint(key, self.shape, int(self.low), int(self.high) + 1, dtype=self.dtype)
        return jax.random.uniform(key, self.shape, self.dtype, self.low, self.high)

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.shape != tuple(self.shape):
            return jnp.asarray(False)
        return jnp.all((x >= self.low) & (x <= self.high))

    def to_gymnasium(self) -> gymnasium.spaces.Space:
        dtype = np.dtype(self.dtype)
        return gymnasium.spaces.Box(low=self.low, high=self.high, shape=self.shape, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class Dict:
    """A dictionary of named spaces."""

    spaces: dict[str, Any]

    def sample(self, key: chex.PRNGKey) -> dict[str, jax.Array]:
        keys = jax.random.split(key, len(self.spaces))
        return {name: space.sample(k) for (name, space), k in zip(self.spaces.items(), keys)}

    def contains(self, x: dict[str, jax.Array]) -> jax.Array:
        if set(x) != set(self.spaces):
            return jnp.asarray(False)
        return jnp.all(jnp.stack([jnp.asarray(space.contains(x[name])) for name, space in self.spaces.items()]))

    def to_gymnasium(self) -> gymnasium.spaces.Space:
        return gymnasium.spaces.Dict({name: space.to_gymnasium() for name, space in self.spaces.items()})


def sample_distinct_slates(rng: np.random.Generator, num_items: int, slate_size: int, rows: int) -> np.ndarray:
    """``(rows, slate_size)`` slates, each of distinct items drawn uniformly (a ``MultiDiscrete`` would repeat)."""
    return np.stack([rng.choice(num_items, slate_size, replace=False) for _ in range(rows)])


def slates_are_distinct(slates: np.ndarray) -> bool:
    """Whether every slate (the rows of ``slates``, shape ``(..., k)``) shows ``k`` distinct items."""
    rows = np.sort(slates.reshape(-1, slates.shape[-1]), axis=1)
    return bool(np.all(rows[:, 1:] != rows[:, :-1]))


class GymSlate(gymnasium.spaces.MultiDiscrete):
    """A Gymnasium ``MultiDiscrete`` of ``k`` slots over ``n`` items whose samples are distinct items (a plain
    ``MultiDiscrete`` would sample slates with repeats).

    ``contains`` requires distinct items when ``distinct`` (the default), and accepts any ``k`` in-range items
    otherwise: the Gymnasium adapters use ``distinct=False`` unless ``strict_slates``, since they show a
    repeated item once (see :mod:`rlrec.envs.gym`). Batched (``shape (B, k)``) by
    :func:`gymnasium.vector.utils.batch_space`: each row is its own slate.
    """

    def __init__(self, n: int, k: int, batch: int | None = None, seed: int | None = None, distinct: bool = True):
        shape = (k,) if batch is None else (batch, k)
        super().__init__(np.full(shape, n, dtype=np.int64), seed=seed)
        self.num_items, self.slate_size, self.batch, self.distinct = n, k, batch, bool(distinct)

    def sample(self, mask=None, probability=None):
        if mask is not None or probability is not None:
            raise NotImplementedError("GymSlate.sample does not take a mask or probabilities.")
        rows = 1 if self.batch is None else self.batch
        slates = sample_distinct_slates(self.np_random, self.num_items, self.slate_size, rows).astype(self.dtype)
        return slates[0] if self.batch is None else slates

    def contains(self, x) -> bool:
        if not super().contains(x):
            return False
        return not self.distinct or slates_are_distinct(np.asarray(x).reshape(-1, self.slate_size))

    def __repr__(self) -> str:
        batch = "" if self.batch is None else f", batch={self.batch}"
        repeats = "" if self.distinct else ", distinct=False"
        return f"GymSlate(n={self.num_items}, k={self.slate_size}{batch}{repeats})"

    def __eq__(self, other) -> bool:
        fields = ("num_items", "slate_size", "batch", "distinct")
        return isinstance(other, GymSlate) and all(getattr(self, f) == getattr(other, f) for f in fields)


@batch_space.register(GymSlate)
def _batch_slate(space: GymSlate, n: int = 1) -> GymSlate:
    if space.batch is not None:
        raise InputError("A batched slate space cannot be batched again.")
    return GymSlate(space.num_items, space.slate_size, batch=n, seed=int(space.np_random.integers(2**31)),
                    distinct=space.distinct)
