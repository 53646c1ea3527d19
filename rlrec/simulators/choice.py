"""How a user chooses from a slate: multinomial logit with a no-click option, or a cascade; the exact oracle.

All functions are pure and per-user (the caller vmaps). A slate of ``k`` items has per-slot logits
``v_s = w_{i_s} + b_s`` where ``w_i`` is the user's utility for item ``i`` and ``b_s`` the position bias of
slot ``s``; the no-click option has logit ``v_0``.

- **MNL** (McFadden, 1974): ``P(click slot s) = exp(v_s) / (exp(v_0) + sum_t exp(v_t))``.
- **Cascade** (Craswell et al., 2008): the user scans slots in order and clicks slot ``s`` with probability
  ``c_s = sigmoid(v_s - v_0)`` if no earlier slot was clicked: ``P(s) = c_s prod_{t<s} (1 - c_t)``.

**Oracle.** Under both models the probability of a click is increasing in every slot logit and, for
position biases, the best assignment pairs the largest utilities with the largest biases (MNL: the click
probability is increasing in ``sum_s exp(w_s + b_s)``, maximised by sorted pairing by the rearrangement
inequality; cascade: ``1 - P(click) = prod exp(-softplus(w_s + b_s - v_0))`` and ``softplus`` is convex, so
sorted pairing maximises ``sum softplus``). So the expected-click-maximising slate is the top-k items by
utility, placed in slots in decreasing order of position bias: exact, and one top-k (:func:`top_k`).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from rlrec.errors import InputError

MNL = "mnl"
CASCADE = "cascade"
CHOICE_MODELS = (MNL, CASCADE)


def mask_repeats(slate: jax.Array) -> jax.Array:
    """``(k,)`` bool: True for slots whose item already appeared in an earlier slot (shown once, not twice)."""
    chex.assert_rank(slate, 1)
    same = slate[:, None] == slate[None, :]
    earlier = jnp.tril(jnp.ones_like(same), k=-1)
    return jnp.any(same & earlier, axis=1)


def click_probabilities(
    slot_logits: jax.Array, no_click_logit: jax.Array, model: str = MNL, shown: jax.Array | None = None
) -> jax.Array:
    """Probability that each slot is clicked.

    Args:
        slot_logits: ``(k,)`` logits ``v_s`` (utility + position bias, temperature applied).
        no_click_logit: ``()`` logit ``v_0`` of not clicking.
        model: ``"mnl"`` or ``"cascade"``.
        shown: optional ``(k,)`` bool; slots that are False are not part of the choice.

    Returns:
        ``(k,)`` probabilities; ``1 - sum`` is the probability of no click.
    """
    chex.assert_rank(slot_logits, 1)
    if shown is None:
        shown = jnp.ones(slot_logits.shape, dtype=bool)
    if model == MNL:
        logits = jnp.concatenate([jnp.reshape(no_click_logit, (1,)), jnp.where(shown, slot_logits, -jnp.inf)])
        return jax.nn.softmax(logits)[1:]
    if model == CASCADE:
        examine_click = jnp.where(shown, jax.nn.sigmoid(slot_logits - no_click_logit), 0.0)
        reach = jnp.cumprod(jnp.concatenate([jnp.ones((1,)), 1.0 - examine_click[:-1]]))
        return examine_click * reach
    raise InputError(f"Unknown choice model {model!r}; use one of {CHOICE_MODELS}.")


def sample_click(key: chex.PRNGKey, probabilities: jax.Array) -> jax.Array:
    """Draws the clicked slot from ``(k,)`` click probabilities: an int32 slot, or -1 for no click."""
    no_click = jnp.clip(1.0 - jnp.sum(probabilities), 0.0, 1.0)
    outcome = jax.random.categorical(key, jnp.log(jnp.concatenate([jnp.reshape(no_click, (1,)), probabilities])))
    return (outcome - 1).astype(jnp.int32)


# Columns of top_k's two-level grid (at least 4 x 128 values take that path).
_TOP_K_COLUMNS = 128


def top_k(values: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """``(values, indices)`` of the ``k`` largest of ``(N,)`` ``values``, largest first: ``jax.lax.top_k``'s
    result, computed in two levels for large ``N``.

    ``lax.top_k`` on XLA's CPU backend is slow per item (and runs twice per simulated step: the agent's slate and
    the oracle's), while a plain ``max`` vectorises. So the items are laid out as a ``(N // C, C)`` grid
    (``C = 128``, the remainder kept aside), each column's maximum is taken (vectorised across rows), and the
    exact top ``k`` is chosen among the items of the ``k`` columns with the largest maxima plus the remainder: a
    column holding one of the top ``k`` items has a maximum no smaller than that item, and at most ``k - 1`` other
    columns can have a larger one. Among exactly equal values the one taken may differ from ``lax.top_k``'s
    (lowest index first); the values are the same.
    """
    count = values.shape[-1]
    columns = _TOP_K_COLUMNS
    if count < 4 * columns or k > columns // 4:
        return jax.lax.top_k(values, k)
    rows = count // columns
    grid = values[: rows * columns].reshape(rows, columns)
    _, best_columns = jax.lax.top_k(jnp.max(grid, axis=0), k)
    best_columns = jnp.sort(best_columns)  # candidates in increasing item order
    candidates = jnp.concatenate([grid[:, best_columns].reshape(-1), values[rows * columns :]])
    candidate_items = jnp.concatenate(
        [(jnp.arange(rows)[:, None] * columns + best_columns[None, :]).reshape(-1), jnp.arange(rows * columns, count)]
    )
    top, position = jax.lax.top_k(candidates, k)
    return top, candidate_items[position].astype(jnp.int32)


def oracle_slate(item_utilities: jax.Array, position_bias: jax.Array) -> jax.Array:
    """The expected-click-maximising slate: top-k items by utility, best item in the highest-bias slot.

    Args:
        item_utilities: ``(N,)`` utilities ``w_i`` of every item for this user.
        position_bias: ``(k,)`` per-slot bias ``b_s``.

    Returns:
        ``(k,)`` int32 item indices, slot by slot.
    """
    slate_size = position_bias.shape[0]
    _, best_items = top_k(item_utilities, slate_size)  # descending utility
    slot_rank = jnp.argsort(-position_bias, stable=True)  # slots from highest to lowest bias
    return jnp.zeros((slate_size,), jnp.int32).at[slot_rank].set(best_items.astype(jnp.int32))


def expected_clicks(
    slate_utilities: jax.Array,
    position_bias: jax.Array,
    no_click_logit: jax.Array,
    temperature: jax.Array,
    model: str = MNL,
    shown: jax.Array | None = None,
) -> jax.Array:
    """``P(click)`` of a slate whose items have utilities ``(k,)`` (slot order)."""
    probabilities = click_probabilities(
        (slate_utilities + position_bias) / temperature, no_click_logit / temperature, model, shown
    )
    return jnp.sum(probabilities)
