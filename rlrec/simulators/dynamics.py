"""How a user changes after consuming an item: interest drift, boredom, satisfaction and session budget.

Pure per-user functions (the caller vmaps). With ``e_j`` the consumed item's unit embedding:

- **drift** toward what was consumed: ``u <- normalise(u + eta (e_j - u))``;
- **boredom**: a decaying memory ``m <- decay * m + e_j`` of recent consumption; the utility of item ``i``
  drops by ``boredom_weight * relu(<m, e_i>)``, so a user tires of more of the same;
- **satisfaction** of a consumed item: ``sigmoid(scale * (<u, e_j> - threshold) + quality_weight * q_j
  - boredom_j)``: how good the item really was for the user (popularity does not enter: a popular item can
  be clicked and still disappoint);
- **budget**: each step costs ``step_cost``; a click gives back ``refund * satisfaction``; the user leaves
  when the budget runs out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def drift(interest: jax.Array, consumed: jax.Array, eta: jax.Array, clicked: jax.Array) -> jax.Array:
    """Interest after consuming ``consumed (d,)`` (unchanged when ``clicked`` is False)."""
    moved = interest + eta * (consumed - interest)
    moved = moved / jnp.maximum(jnp.linalg.norm(moved), 1e-12)
    return jnp.where(clicked, moved, interest)


def update_memory(memory: jax.Array, consumed: jax.Array, decay: jax.Array, clicked: jax.Array) -> jax.Array:
    """Boredom memory: decays every step, adds the consumed item's embedding on a click."""
    return decay * memory + jnp.where(clicked, consumed, jnp.zeros_like(consumed))


def boredom_penalty(memory: jax.Array, item_features: jax.Array, boredom_weight: jax.Array) -> jax.Array:
    """``(N,)`` utility penalty ``boredom_weight * relu(<m, e_i>)`` for items ``(N, d)``."""
    return boredom_weight * jax.nn.relu(item_features @ memory)


def satisfaction(
    match: jax.Array,
    quality: jax.Array,
    boredom: jax.Array,
    scale: jax.Array,
    threshold: jax.Array,
    quality_weight: jax.Array,
) -> jax.Array:
    """How satisfying a consumed item is, in ``[0, 1]``, from its cosine match with the user's interest."""
    return jax.nn.sigmoid(scale * (match - threshold) + quality_weight * quality - boredom)


def update_budget(
    budget: jax.Array, satisfied: jax.Array, clicked: jax.Array, step_cost: jax.Array, refund: jax.Array
) -> jax.Array:
    """Session budget after one step: pay ``step_cost``, regain ``refund * satisfaction`` on a click."""
    return budget - step_cost + jnp.where(clicked, refund * satisfied, 0.0)
