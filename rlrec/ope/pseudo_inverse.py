"""The pseudo-inverse slate estimator's weights in closed form (:func:`pi_weights`), for uniform and epsilon-greedy
logging: what :attr:`rlrec.ope.estimators.EstimatorInputs.pi_weight` holds (Swaminathan et al. 2017).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlrec.errors import InputError

PI_KINDS = ("uniform", "epsilon-greedy")  # the logging policies whose Gamma^+ is known in closed form


def _uniform_form(agreements: jax.Array, shared: jax.Array, num_items: int, slate_size: int) -> jax.Array:
    """``x^T U^+ y`` for ``x``, ``y`` mixtures of slate indicators, from their expected slot agreements and
    expected shared items (see :func:`pi_weights`)."""
    n, k = num_items, slate_size
    if k == n:  # every slate holds every item: one more null direction, no shared-item term
        return 1.0 + (n - 1) * (agreements - 1.0)
    return 1.0 + (n - 1) * (agreements + (shared - k) / (n - k))


def pi_weights(kind: str, num_items: int, slate_size: int, target_slot: jax.Array, target_item: jax.Array | None = None,
               *, epsilon: float | jax.Array | None = None, target_greedy_slot: jax.Array | None = None,
               target_greedy_item: jax.Array | None = None, matches: jax.Array | None = None,
               shared: jax.Array | None = None) -> jax.Array:
    """``(n,)`` pseudo-inverse weights ``theta_pi^T Gamma^+ 1_s`` for logging policies with a closed-form ``Gamma^+``.

    ``Gamma = E_b[1_s 1_s^T]`` over the ``k N`` (slot, item) indicators ``1_s`` of a slate, ``theta_pi = E_pi[1_s]``
    the target's marginals (Swaminathan et al. 2017). Jittable with ``kind``, ``num_items``, ``slate_size`` static.

    1. **uniform** (uniformly random ordered slates of ``k`` distinct items; ``rlrec.agents.RandomAgent``).
       ``U = E[1_s 1_s^T] = I_k (x) I_N / N + (J_k - I_k) (x) (J_N - I_N) / (N (N - 1))`` (``J`` all ones) has
       the eigenvalues ``k/N`` on ``1_k (x) 1_N``, ``(N-k)/(N(N-1))`` on ``1_k (x) 1_N-perp``, ``1/(N-1)`` on
       ``1_k-perp (x) 1_N-perp`` and 0 on ``1_k-perp (x) 1_N``. For two slates ``a``, ``b`` with ``m`` slots in
       agreement (same item in the same slot) and ``c`` items in common (in any slot)::

           1_a^T U^+ 1_b = 1 + (N - 1) (m + (c - k) / (N - k))      (k < N)
           1_a^T U^+ 1_b = 1 + (N - 1) (m - 1)                      (k = N: every slate holds every item)

       Linear in ``m`` and ``c``, so for a target mixture the weight of a logged slate ``s`` is the same with
       ``m = sum_j P_e(s_j in slot j)`` (``target_slot``) and ``c = sum_j P_e(s_j anywhere in the slate)``
       (``target_item``). ``k = 1`` gives ``N P_e(s)``: IPS. NOT ``N m - (k - 1)``, which is the weight of
       uniform slates *with* repetition (independent slots); without repetition the items a slate shares with
       the target in other slots count too. Both forms checked against ``np.linalg.pinv`` of the enumerated
       ``Gamma`` (``tests/test_ope_estimators.py``).
    2. **epsilon-greedy** (``rlrec.agents.EpsilonGreedy`` at a fixed epsilon: a uniform slate with probability
       ``epsilon``, else the greedy slate ``g``): ``Gamma = eps U + (1 - eps) g g^T``. ``g`` lies in ``U``'s range
       (it is orthogonal to both null directions), so the rank-one pseudo-inverse update (Sherman-Morrison on
       that range) holds: with ``A = U^+ / eps`` and ``c = 1 - eps``,
       ``Gamma^+ = A - c A g g^T A / (1 + c g^T A g)``, i.e.::

           weight = (q(theta, s) - c q(theta, g) q(g, s) / (eps + c q(g, g))) / eps

       with ``q`` the uniform form above: ``q(theta, s)`` from ``target_slot``/``target_item``, ``q(theta, g)``
       from ``target_greedy_slot``/``target_greedy_item`` (the target's marginals at the greedy items),
       ``q(g, s)`` from ``matches``/``shared`` and ``q(g, g)`` (``1 + (N - 1) k``; ``k = N``: ``1 + (N - 1)^2``).

    Other behaviours (softmax, Thompson sampling, ...) have no known closed-form ``Gamma^+``: build
    :attr:`EstimatorInputs.pi_weight` yourself (e.g. ``np.linalg.pinv`` on a small catalog) or leave it NaN.

    Args:
        kind: ``"uniform"`` or ``"epsilon-greedy"``.
        num_items: ``N``, the catalog size.
        slate_size: ``k``.
        target_slot: ``(n, k)`` the target's ``P_e(s_j in slot j)`` at the logged items ``s_j``.
        target_item: ``(n, k)`` the target's ``P_e(s_j anywhere in its slate)``; needed when ``1 < k < N``
            (``k = 1``: ``target_slot``; ``k = N``: unused).
        epsilon: the exploration probability, in ``(0, 1]`` (epsilon-greedy only): a scalar, or ``(n,)`` per round
            (a decaying epsilon; the greedy slate may change from round to round too).
        target_greedy_slot: ``(n, k)`` the target's ``P_e(g_j in slot j)`` at the behaviour's greedy items.
        target_greedy_item: ``(n, k)`` the target's ``P_e(g_j anywhere in its slate)`` (as ``target_item``).
        matches: ``(n,)`` slots where the logged slate equals the greedy slate.
        shared: ``(n,)`` logged items that are in the greedy slate, in any slot (``>= matches``; needed as
            ``target_item`` is).

    Returns:
        ``(n,)`` float32 weights (negative ones are normal: the pseudo-inverse subtracts).

    Raises:
        ValueError: an unknown ``kind``; ``slate_size`` not in ``1..num_items``; a missing or misshapen argument.
    """
    if kind not in PI_KINDS:
        raise InputError(f"pi_weights supports kind {' or '.join(map(repr, PI_KINDS))}, got {kind!r}: only for these "
                         "loggings is the pseudo-inverse of Gamma = E_b[1_s 1_s^T] known in closed form. For another "
                         "behaviour compute theta^T pinv(Gamma) 1_s yourself, or leave pi_weight NaN.")
    n_items, k = int(num_items), int(slate_size)
    if not 1 <= k <= n_items:
        raise InputError(f"slate_size must be in 1..num_items = 1..{n_items}, got {k}.")
    target_slot = _checked("target_slot", target_slot, k)
    rounds = target_slot.shape[0]
    target_item = _item_marginals("target_item", target_item, target_slot, n_items, k)
    uniform = _uniform_form(jnp.sum(target_slot, -1), jnp.sum(target_item, -1), n_items, k)
    if kind == "uniform":
        return uniform
    if epsilon is None:
        raise InputError("pi_weights(kind='epsilon-greedy') needs epsilon, the exploration probability in (0, 1].")
    if isinstance(epsilon, (int, float, np.number)) and not 0.0 < float(epsilon) <= 1.0:
        raise InputError(f"epsilon must be in (0, 1] (with 0 the behaviour only ever shows its greedy slate and "
                         f"Gamma's range holds no other target), got {epsilon}.")
    target_greedy_slot = _checked("target_greedy_slot", target_greedy_slot, k, rounds)
    target_greedy_item = _item_marginals("target_greedy_item", target_greedy_item, target_greedy_slot, n_items, k)
    matches = _checked("matches", matches, None, rounds)
    shared = matches if k == 1 or k == n_items else _checked("shared", shared, None, rounds)
    eps = jnp.asarray(epsilon, jnp.float32)
    greed = 1.0 - eps
    target_greedy = _uniform_form(jnp.sum(target_greedy_slot, -1), jnp.sum(target_greedy_item, -1), n_items, k)
    greedy_logged = _uniform_form(matches, shared, n_items, k)
    greedy_greedy = _uniform_form(float(k), float(k), n_items, k)
    return (uniform - greed * target_greedy * greedy_logged / (eps + greed * greedy_greedy)) / eps


def _checked(name: str, value: Any, slate_size: int | None, rounds: int | None = None) -> jax.Array:
    """``value`` as float32 of shape ``(rounds, slate_size)`` (``(rounds,)`` when ``slate_size`` is None)."""
    if value is None:
        raise InputError(f"pi_weights needs {name} for this kind.")
    value = jnp.asarray(value, jnp.float32)
    ndim = 1 if slate_size is None else 2
    ok = value.ndim == ndim and (rounds is None or value.shape[0] == rounds)
    ok = ok and (slate_size is None or value.shape[1] == slate_size)
    if not ok:
        expected = ("n" if rounds is None else str(rounds)) + ("" if slate_size is None else f", {slate_size}")
        raise InputError(f"{name} must have shape ({expected}{',' if slate_size is None else ''}), got {value.shape}.")
    return value


def _item_marginals(name: str, value: Any, slot_marginals: jax.Array, num_items: int, slate_size: int) -> jax.Array:
    """The target's item-anywhere marginals: given, or implied when ``k = 1`` (the slot's) or ``k = N`` (1)."""
    if slate_size == 1 and value is None:
        return slot_marginals
    if slate_size == num_items and value is None:
        return jnp.ones_like(slot_marginals)
    if value is None:
        raise InputError(f"pi_weights needs {name} (the target's probability of each item anywhere in its slate) "
                         f"when 1 < slate_size < num_items: without repetition, items shared in other slots count.")
    return _checked(name, value, slate_size, slot_marginals.shape[0])
