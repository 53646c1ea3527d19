"""Metrics: regret, reward, diversity, accuracy@k, confidence intervals.

Pure functions, batched over leading axes (per-slate metrics take ``(..., k)`` slates; catalog-level metrics
take ``(..., N)`` exposure counts). Hand-checked in ``tests/test_metrics.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rlrec.errors import InputError

# -- reward and regret --------------------------------------------------------------------------------------


class NonFiniteResultError(InputError):
    """A run produced NaN or inf where a number was due: its results cannot be trusted."""


def check_finite(outputs: dict[str, np.ndarray], names, what: str, axes: tuple[str, ...] = ("seed", "step"),
                 offsets: tuple[int, ...] | None = None) -> None:
    """Raises :class:`NonFiniteResultError` naming the first non-finite entry of ``outputs[name]``.

    A cheap check on a run's outputs (NumPy, after the run), never inside the jitted step.

    Args:
        outputs: arrays whose leading axes are named by ``axes``.
        names: the keys to check, in order of importance (the first one with a bad entry is reported).
        what: what produced them, for the message (e.g. ``"linucb on MovieLens-Bandit-v0"``).
        axes: names of the leading axes, for the message.
        offsets: added to each index before printing (e.g. the first step of a chunk); zeros by default.
    """
    offsets = offsets or (0,) * len(axes)
    for name in names:
        values = np.asarray(outputs[name])
        bad = ~np.isfinite(values)
        if bad.any():
            # The earliest bad step (the last named axis) first, then the first seed at that step.
            named = bad.reshape(bad.shape[: len(axes)] + (-1,)).any(axis=-1)
            positions = np.argwhere(named)
            index = min(map(tuple, positions), key=lambda p: (p[-1],) + p[:-1])
            where = ", ".join(f"{axis} {int(i) + offset}" for axis, i, offset in zip(axes, index, offsets))
            value = values[index].ravel()[~np.isfinite(values[index].ravel())][0]
            raise NonFiniteResultError(
                f"{what} produced a non-finite {name} ({value}) at {where} ({int(bad.sum())} non-finite "
                f"values in all). These results cannot be trusted: check the environment's numeric settings and "
                "the agent's hyperparameters (rlrec.make and make_agent name the valid ranges)."
            )



def cumulative_regret(regret: jax.Array) -> jax.Array:
    """Running sum of per-step regret over the last (time) axis."""
    return jnp.cumsum(regret, axis=-1)


def click_through_rate(reward: jax.Array) -> jax.Array:
    """Mean click over the last (time) axis."""
    return jnp.mean(reward, axis=-1)


def episode_returns(reward: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Returns of the episodes that finished in a ``(T,)`` stream (unfinished tail excluded)."""
    reward, done = np.asarray(reward), np.asarray(done, bool)
    ends = np.flatnonzero(done)
    if len(ends) == 0:
        return np.zeros((0,))
    totals = np.cumsum(reward)[ends]
    return np.diff(np.concatenate([[0.0], totals]))


# -- diversity ----------------------------------------------------------------------------------------------


def intra_list_diversity(slate_features: jax.Array) -> jax.Array:
    """Mean pairwise cosine distance ``1 - <e_i, e_j>`` within each slate (Ziegler et al., 2005).

    Args:
        slate_features: ``(..., k, d)`` unit-norm embeddings of the slate's items, ``k >= 2``.

    Returns:
        ``(...)`` diversity in ``[0, 2]``.
    """
    k = slate_features.shape[-2]
    if k < 2:
        raise InputError("intra-list diversity needs slates of at least 2 items.")
    similarity = jnp.einsum("...id,...jd->...ij", slate_features, slate_features)
    off_diagonal = jnp.sum(similarity, axis=(-1, -2)) - jnp.trace(similarity, axis1=-2, axis2=-1)
    return 1.0 - off_diagonal / (k * (k - 1))


def exposure_counts(slates: jax.Array, num_items: int) -> jax.Array:
    """``(N,)`` how often each item was shown across all slates (any shape of item ids; -1 ignored)."""
    flat = jnp.ravel(slates)
    return jnp.zeros(num_items).at[jnp.where(flat >= 0, flat, num_items)].add(1.0, mode="drop")


def coverage(exposure: jax.Array) -> jax.Array:
    """Fraction of the catalog shown at least once: ``(..., N) -> (...)``."""
    return jnp.mean(exposure > 0, axis=-1)


def exposure_gini(exposure: jax.Array) -> jax.Array:
    """Gini coefficient of item exposure: 0 when every item is shown equally, -> 1 when one item takes all.

    ``G = sum_i (2 i - N - 1) x_(i) / (N sum x)`` over exposures sorted ascending (i = 1..N).
    """
    sorted_exposure = jnp.sort(exposure, axis=-1)
    count = exposure.shape[-1]
    rank = jnp.arange(1, count + 1)
    total = jnp.sum(sorted_exposure, axis=-1)
    gini = jnp.sum((2 * rank - count - 1) * sorted_exposure, axis=-1) / (count * jnp.maximum(total, 1e-12))
    return jnp.where(total > 0, gini, 0.0)


def genre_entropy(exposure: jax.Array, genres: jax.Array) -> jax.Array:
    """Shannon entropy (bits) of the genre distribution of shown items.

    Args:
        exposure: ``(..., N)`` exposure counts.
        genres: ``(N, G)`` multi-hot genre matrix (an item with several genres counts for each).
    """
    mass = exposure @ jnp.asarray(genres, jnp.float32)
    share = mass / jnp.maximum(jnp.sum(mass, axis=-1, keepdims=True), 1e-12)
    return -jnp.sum(jnp.where(share > 0, share * jnp.log2(jnp.where(share > 0, share, 1.0)), 0.0), axis=-1)


def novelty(slates: jax.Array, popularity: jax.Array) -> jax.Array:
    """Mean self-information ``-log2(p_i)`` of shown items, ``p_i`` = the item's share of all interactions.

    Args:
        slates: ``(..., k)`` item ids.
        popularity: ``(N,)`` interaction counts (zeros are smoothed by one pseudo-count).
    """
    popularity = jnp.asarray(popularity, jnp.float32) + 1.0
    information = -jnp.log2(popularity / jnp.sum(popularity))
    return jnp.mean(information[slates], axis=-1)


# -- accuracy against the user's true top-k -------------------------------------------------------------------


def hits(slate: jax.Array, relevant: jax.Array) -> jax.Array:
    """``(..., k)`` bool: whether each recommended item is among the relevant items ``(..., m)``."""
    return jnp.any(slate[..., :, None] == relevant[..., None, :], axis=-1)


def precision_at_k(slate: jax.Array, relevant: jax.Array) -> jax.Array:
    """Share of recommended items that are relevant."""
    return jnp.mean(hits(slate, relevant), axis=-1)


def recall_at_k(slate: jax.Array, relevant: jax.Array) -> jax.Array:
    """Share of relevant items that were recommended."""
    return jnp.sum(hits(slate, relevant), axis=-1) / relevant.shape[-1]


def f1_at_k(slate: jax.Array, relevant: jax.Array) -> jax.Array:
    """Harmonic mean of precision@k and recall@k (0 when both are 0)."""
    precision, recall = precision_at_k(slate, relevant), recall_at_k(slate, relevant)
    return jnp.where(precision + recall > 0, 2 * precision * recall / jnp.maximum(precision + recall, 1e-12), 0.0)


def ndcg_at_k(slate: jax.Array, relevant: jax.Array) -> jax.Array:
    """Binary-relevance NDCG: ``DCG = sum_s rel_s / log2(s + 2)`` over slots, divided by the ideal DCG
    (all ``min(k, m)`` first slots relevant) (Jarvelin & Kekalainen, 2002)."""
    k = slate.shape[-1]
    discount = 1.0 / jnp.log2(jnp.arange(k) + 2.0)
    dcg = jnp.sum(hits(slate, relevant) * discount, axis=-1)
    ideal = jnp.sum(discount[: min(k, relevant.shape[-1])])
    return dcg / ideal


# -- confidence intervals ---------------------------------------------------------------------------------------


def mean_confidence_interval(values: np.ndarray, confidence: float = 0.95, axis: int = 0):
    """Mean and half-width of a Student-t confidence interval over ``axis`` (e.g. over seeds).

    Returns ``(mean, half_width)``; the half-width is NaN with fewer than two values.
    """
    # The t quantile from scipy.special (what scipy.stats.t.ppf calls), without importing scipy.stats (a slow import).
    from scipy.special import stdtrit

    values = np.asarray(values, dtype=np.float64)
    count = values.shape[axis]
    mean = values.mean(axis=axis)
    if count < 2:
        return mean, np.full_like(mean, np.nan)
    standard_error = values.std(axis=axis, ddof=1) / np.sqrt(count)
    return mean, stdtrit(count - 1, 0.5 + confidence / 2) * standard_error
