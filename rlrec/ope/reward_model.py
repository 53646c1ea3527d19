"""The direct method's reward model: ridge regression of each slot's click on the request, the item and the slot.

Features of item ``a`` in slot ``j`` for a user with request ``r``: the slot's one-hot (an intercept per slot,
which learns the position bias), the item embedding times the request elementwise (a diagonal bilinear match),
the item embedding, its quality and its appeal: ``k + 2 d + 2`` numbers. The slate's predicted reward is the sum
of its slots' predictions: additive, so under the multinomial-logit choice model (clicks compete within a slate)
the model is misspecified on slates by design; the doubly robust estimators correct what it gets wrong.
The model is fitted on the log it evaluates (as Open Bandit Pipeline's default), in one pass of sufficient
statistics ``X^T X``, ``X^T y`` (block by block) and one ``(f, f)`` solve.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rlrec.errors import InputError
from rlrec.ope import blocks


def item_features(params, request: jax.Array) -> jax.Array:
    """``(N, 2 d + 2)`` the slot-free features of every item for one request."""
    items = params.item_features
    return jnp.concatenate([items * request, items, params.item_quality[:, None], params.item_appeal[:, None]],
                           axis=1)


def slot_features(params, request: jax.Array, slate: jax.Array) -> jax.Array:
    """``(k, k + 2 d + 2)`` the features of each slot of ``slate`` for one request."""
    items = params.item_features[slate]
    slate_size = slate.shape[0]
    return jnp.concatenate([jnp.eye(slate_size, dtype=items.dtype), items * request, items,
                            params.item_quality[slate][:, None], params.item_appeal[slate][:, None]], axis=1)


@jax.jit
def _statistics(params, requests, slates, clicks):
    features = jax.vmap(lambda r, s: slot_features(params, r, s))(requests, slates)
    flat = features.reshape(-1, features.shape[-1])
    return flat.T @ flat, flat.T @ clicks.reshape(-1)


def fit(params, requests: np.ndarray, slates: np.ndarray, clicks: np.ndarray, regulariser: float = 1.0) -> jax.Array:
    """``(f,)`` ridge weights predicting each slot's click (``requests (n, d)``, ``slates (n, k)``, ``clicks (n,
    k)``); ``regulariser`` is the ridge strength on the sum of squared errors over slots."""
    if regulariser <= 0:
        raise InputError(f"regulariser must be > 0 (the ridge strength), got {regulariser}.")
    slate_size = np.shape(slates)[1]
    # Each round's (k, f) features, f = k + 2 d + 2, in float32.
    rows = blocks.rows_per_block(4 * slate_size * (slate_size + 2 * params.item_features.shape[1] + 2),
                                 blocks.STATISTICS_ROUNDS)
    gram, moment = None, None
    for start in range(0, len(requests), rows):
        cut = slice(start, start + rows)
        block_gram, block_moment = _statistics(params, jnp.asarray(requests[cut]), jnp.asarray(slates[cut]),
                                               jnp.asarray(clicks[cut], jnp.float32))
        gram = block_gram if gram is None else gram + block_gram
        moment = block_moment if moment is None else moment + block_moment
    size = gram.shape[0]
    # float64 for the solve: a (f, f) system, negligible next to the pass over the log.
    weights = np.linalg.solve(np.asarray(gram, np.float64) + regulariser * np.eye(size), np.asarray(moment, np.float64))
    return jnp.asarray(weights, jnp.float32)


def predict_slate(weights: jax.Array, params, request: jax.Array, slate: jax.Array) -> jax.Array:
    """``(k,)`` predicted click of each slot of ``slate``."""
    return slot_features(params, request, slate) @ weights


def predict_items(weights: jax.Array, params, request: jax.Array, slate_size: int) -> jax.Array:
    """``(k, N)`` predicted click of every item in every slot: slot intercept plus the item's part."""
    return weights[:slate_size, None] + (item_features(params, request) @ weights[slate_size:])[None, :]

