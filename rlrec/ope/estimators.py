"""Off-policy estimators of a target policy's expected clicks per round, from a behaviour policy's logged rounds.

Pure JAX, batched over ``n`` logged rounds (slates of ``k`` slots; ``k = 1`` is the single-item case, where every
slate estimator reduces to its item version), jittable. The logging (:func:`rlrec.ope.collect`) and the reward
model are someone else's: every estimator reads the per-round arrays of an :class:`EstimatorInputs` and returns an
:class:`Estimate` (a value and its standard error).

Facts shared by every estimator:

1. **Importance weights** are ratios ``target / behaviour`` of float32 probabilities, 0 wherever the target's
   probability is 0 (whatever the behaviour's). :meth:`EstimatorInputs.build` checks in float64 that every
   ratio fits float32 (a whole-slate ratio of a uniform behaviour on 9,066 items, slates of 5, is
   ``1 / (9066 * ... * 9062) ~ 1.6e-20`` against a deterministic target's 1: a weight of ``6e19``, fine) and
   rescales a round's target and behaviour probability by the same power of two where either would fall below
   float32's smallest normal number (``1.2e-38``), which leaves the ratio exact. Dividing is used rather than
   ``exp(log p_e - log p_b)``: in float32, ``log 1.6e-20 = -45.6`` carries an absolute rounding of ``4e-6``,
   a relative error of ``4e-6`` in every weight, where a division of two normal numbers is correctly rounded.
2. **Standard errors** are ``std(influence) / sqrt(n)`` (sample std, ``n - 1``) of the per-round influence
   terms: the terms themselves for the means (DM, IPS, DR, ...), the delta-method terms for the self-normalised
   ones (SNIPS: ``w (r - V) / mean(w)``). They are computed on terms scaled by their largest magnitude, so
   weights of ``1e20`` (squares of ``1e40``) do not overflow float32. NaN for a single round. They measure the
   sampling noise only: DM's says nothing of the reward model's error.
3. ``reward`` is the round's total clicks, ``clicks`` the per-slot ones; rlrec's envs click at most once a
   round, so ``reward = clicks.sum(-1)`` is 0 or 1, but nothing here relies on that.

Estimators (:data:`ESTIMATORS`, each with the assumption that makes it unbiased or consistent): direct
method (DM); inverse propensity scoring (IPS, Horvitz & Thompson 1952); self-normalised IPS (SNIPS, Swaminathan &
Joachims 2015); doubly robust (DR, Dudik, Langford & Li 2011) and its self-normalised form (SNDR); SWITCH-DR
(Wang, Agarwal & Dudik 2017); for slates, independent IPS (IIPS, Li et al. 2018 "Offline evaluation of ranking
policies with click models"), reward-interaction IPS (RIPS, McInerney et al. 2020 "Counterfactual evaluation of
slate recommendations with sequential reward interactions"; Kiyohara et al. 2022 "Doubly robust off-policy
evaluation for ranking policies under the cascade behavior model") and the pseudo-inverse estimator (PI,
Swaminathan et al. 2017 "Off-policy evaluation for slate recommendation"), whose weights
:func:`rlrec.ope.pseudo_inverse.pi_weights` computes for uniform and epsilon-greedy logging. Their names live
without JAX in :data:`rlrec.ope.specs.ESTIMATOR_TABLE`: adding one is its function here plus one row there.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlrec import _repr
from rlrec.errors import InputError
from rlrec.ope.specs import ESTIMATOR_TABLE


@struct.dataclass
class Estimate:
    """An estimated value (expected clicks per round under the target) and its standard error, both ``()``."""

    value: jax.Array
    stderr: jax.Array

    def __repr__(self) -> str:
        return _repr.fields_repr(self)


# Probability fields: (behaviour, target) pairs whose ratios are the importance weights.
_PROBABILITY_PAIRS = (("behaviour_prefix", "target_prefix"), ("behaviour_slot", "target_slot"))
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@struct.dataclass
class EstimatorInputs:
    """What the estimators read of ``n`` logged rounds with slates of ``k`` slots (float32, rounds first).

    Build it with :meth:`build` (checks shapes and probabilities, converts float64 propensities safely); the
    plain constructor checks nothing (use it inside ``jit``).

    Attributes:
        reward: ``(n,)`` total clicks of the round.
        clicks: ``(n, k)`` per-slot clicks (1 in the clicked slot).
        behaviour_prefix: ``(n, k)`` the behaviour's probability of slots ``1..j+1`` of the logged slate;
            ``[:, -1]`` is the whole slate's.
        behaviour_slot: ``(n, k)`` the behaviour's marginal probability that the logged item ``a_j`` is in slot
            ``j``.
        target_prefix: ``(n, k)`` the target's probability of the same prefixes.
        target_slot: ``(n, k)`` the target's marginal probability of ``a_j`` in slot ``j``.
        dm_logged: ``(n, k)`` the reward model's predicted clicks of each slot of the logged slate.
        dm_target: ``(n,)`` the reward model's expected slate reward under the target,
            ``E_{s ~ pi_e} sum_j qhat(s, j)``.
        pi_weight: ``(n,)`` the pseudo-inverse weight ``theta_pi^T Gamma_b^+ 1_s``
            (:mod:`~rlrec.ope.pseudo_inverse`), NaN where unavailable.
    """

    reward: jax.Array
    clicks: jax.Array
    behaviour_prefix: jax.Array
    behaviour_slot: jax.Array
    target_prefix: jax.Array
    target_slot: jax.Array
    dm_logged: jax.Array
    dm_target: jax.Array
    pi_weight: jax.Array

    @property
    def num_rounds(self) -> int:
        return self.reward.shape[0]

    @property
    def slate_size(self) -> int:
        return self.clicks.shape[1]

    def __repr__(self) -> str:
        return f"EstimatorInputs(rounds={self.num_rounds:,}, slate_size={self.slate_size})"

    @classmethod
    def build(cls, reward: Any, clicks: Any, behaviour_prefix: Any, behaviour_slot: Any, target_prefix: Any,
              target_slot: Any, dm_logged: Any = None, dm_target: Any = None,
              pi_weight: Any = None) -> "EstimatorInputs":
        """Checked float32 inputs from NumPy or JAX arrays (any float dtype; on the host, not under ``jit``).

        ``dm_logged``/``dm_target`` left out (no reward model) are NaN, and so are DM, DR, SNDR and SWITCH-DR;
        ``pi_weight`` left out is NaN, and so is PI.

        Raises:
            ValueError: a field of the wrong shape (named, with the shape got and the one expected); a
                probability outside ``[0, 1]`` or not finite; a logged round the behaviour gave probability 0;
                an importance weight beyond float32's range (``3.4e38``).
        """
        reward = np.asarray(reward)
        if reward.ndim != 1 or reward.shape[0] == 0:
            raise InputError(f"reward must have shape (n,) with n >= 1 rounds, got {reward.shape}.")
        clicks = np.asarray(clicks)
        if clicks.ndim != 2 or clicks.shape[0] != reward.shape[0] or clicks.shape[1] == 0:
            raise InputError(f"clicks must have shape (n, k) = ({reward.shape[0]}, k) with k >= 1 slots (n from "
                             f"reward), got {clicks.shape}.")
        n, k = clicks.shape
        fields: dict[str, np.ndarray] = {"reward": reward, "clicks": clicks}
        given = {"behaviour_prefix": behaviour_prefix, "behaviour_slot": behaviour_slot,
                 "target_prefix": target_prefix, "target_slot": target_slot, "dm_logged": dm_logged,
                 "dm_target": dm_target, "pi_weight": pi_weight}
        for name, value in given.items():
            shape = (n,) if name in ("dm_target", "pi_weight") else (n, k)
            value = np.full(shape, np.nan) if value is None else np.asarray(value)
            if value.shape != shape:
                raise InputError(f"{name} must have shape {shape} (n={n} rounds, k={k} slots), got {value.shape}.")
            fields[name] = value
        for behaviour_name, target_name in _PROBABILITY_PAIRS:
            fields[behaviour_name], fields[target_name] = _float32_pair(
                behaviour_name, fields[behaviour_name], target_name, fields[target_name])
        return cls(**{name: jnp.asarray(value, jnp.float32) for name, value in fields.items()})


def _float32_pair(behaviour_name: str, behaviour: np.ndarray, target_name: str,
                  target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checked behaviour and target probabilities whose ratios float32 holds (see the module's fact 1)."""
    behaviour = behaviour.astype(np.float64)
    target = target.astype(np.float64)
    for name, value in ((behaviour_name, behaviour), (target_name, target)):
        bad = ~np.isfinite(value) | (value < 0.0) | (value > 1.0 + 1e-6)
        if bad.any():
            index = np.argwhere(bad)[0]
            raise InputError(f"{name} must hold probabilities in [0, 1], got {value[tuple(index)]!r} at "
                             f"{tuple(int(i) for i in index)}.")
    if (behaviour <= 0.0).any():
        index = np.argwhere(behaviour <= 0.0)[0]
        raise InputError(f"{behaviour_name} is 0 at {tuple(int(i) for i in index)}: the behaviour logged a slate it "
                         "could not show (every logged probability must be positive).")
    ratio = target / behaviour
    if (ratio > _FLOAT32_MAX).any():
        index = np.argwhere(ratio > _FLOAT32_MAX)[0]
        raise InputError(f"{target_name} / {behaviour_name} = {ratio[tuple(index)]:.3g} at "
                         f"{tuple(int(i) for i in index)} exceeds float32's largest number (3.4e38).")
    tiny = (behaviour < _FLOAT32_TINY) | ((target > 0.0) & (target < _FLOAT32_TINY))
    if tiny.any():  # the same power of two for both keeps the ratio exact
        exponent = np.where(tiny, -np.ceil(np.log2(np.maximum(behaviour, target))), 0.0)
        behaviour, target = np.ldexp(behaviour, exponent.astype(np.int32)), np.ldexp(target, exponent.astype(np.int32))
    return behaviour, target


# -- weights and standard errors ------------------------------------------------------------------------------


def _ratio(target: jax.Array, behaviour: jax.Array) -> jax.Array:
    """``target / behaviour``, exactly 0 where the target's probability is 0 (whatever the behaviour's)."""
    positive = target > 0.0
    return jnp.where(positive, target / jnp.where(positive, behaviour, 1.0), 0.0)


def slate_weight(inputs: EstimatorInputs) -> jax.Array:
    """``(n,)`` whole-slate importance weights ``P_e(s) / P_b(s)``."""
    return _ratio(inputs.target_prefix[:, -1], inputs.behaviour_prefix[:, -1])


def _stderr(influence: jax.Array) -> jax.Array:
    """``std(influence) / sqrt(n)`` (sample std), computed on terms scaled by their largest deviation."""
    n = influence.shape[0]
    if n == 1:
        return jnp.full((), jnp.nan, influence.dtype)
    centred = influence - jnp.mean(influence)
    scale = jnp.max(jnp.abs(centred))
    scale = jnp.where(scale > 0.0, scale, 1.0)
    return scale * jnp.sqrt(jnp.sum(jnp.square(centred / scale)) / (float(n) * (n - 1)))  # float: n^2 > int32


def _mean(terms: jax.Array) -> Estimate:
    return Estimate(jnp.mean(terms), _stderr(terms))


def _self_normalised(weight: jax.Array, residual: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``sum(w x) / sum(w)`` and its delta-method influence ``w (x - V) / mean(w)``."""
    value = jnp.sum(weight * residual) / jnp.sum(weight)
    return value, weight * (residual - value) / jnp.mean(weight)


# -- the estimators -------------------------------------------------------------------------------------------


def dm(inputs: EstimatorInputs) -> Estimate:
    """Direct method: ``mean(dm_target)``, the reward model's value of the target on the logged contexts.

    Unbiased only if the reward model is right; its standard error is the spread over contexts alone.
    """
    return _mean(inputs.dm_target)


def ips(inputs: EstimatorInputs) -> Estimate:
    """Inverse propensity scoring: ``mean(w r)`` with the whole-slate weight ``w = P_e(s) / P_b(s)``.

    Unbiased when the behaviour gives every slate the target can show a positive probability (common
    support), whatever the click model; its variance grows with the weights (``N^k``-sized for slates).
    """
    return _mean(slate_weight(inputs) * inputs.reward)


def snips(inputs: EstimatorInputs) -> Estimate:
    """Self-normalised IPS: ``sum(w r) / sum(w)`` (Swaminathan & Joachims 2015).

    Consistent under common support, biased in small samples (a ratio of means); bounded by the rewards, so
    far less variable than IPS when a few weights are huge. NaN when every weight is 0 (the target could show
    none of the logged slates).
    """
    value, influence = _self_normalised(slate_weight(inputs), inputs.reward)
    return Estimate(value, _stderr(influence))


def _dr_terms(inputs: EstimatorInputs) -> tuple[jax.Array, jax.Array]:
    """The whole-slate weight and the reward model's residual ``r - sum_j qhat(s, j)`` of each round."""
    return slate_weight(inputs), inputs.reward - jnp.sum(inputs.dm_logged, axis=-1)


def dr(inputs: EstimatorInputs) -> Estimate:
    """Doubly robust: ``mean(dm_target + w (r - sum_j qhat))`` (Dudik, Langford & Li 2011).

    Unbiased if either the propensities or the reward model are right; the better the model, the smaller the
    residuals the weights multiply.
    """
    weight, residual = _dr_terms(inputs)
    return _mean(inputs.dm_target + weight * residual)


def sndr(inputs: EstimatorInputs) -> Estimate:
    """Self-normalised DR: ``mean(dm_target) + sum(w (r - sum_j qhat)) / sum(w)``.

    Consistent if the propensities are right (or the model is); biased in small samples like SNIPS.
    """
    weight, residual = _dr_terms(inputs)
    correction, influence = _self_normalised(weight, residual)
    return Estimate(jnp.mean(inputs.dm_target) + correction,
                    _stderr(inputs.dm_target - jnp.mean(inputs.dm_target) + influence))


def default_switch_threshold(num_rounds: int) -> float:
    """SWITCH-DR's default threshold ``sqrt(n)``: 31.6 for 1,000 rounds, 1,000 for 1,000,000.

    The DR correction kept (weights ``w <= tau``) has variance at most ``tau E_b[w] = tau`` per round (rewards and
    residuals in ``[-1, 1]``), so its standard error is at most ``sqrt(tau / n) = n^(-1/4)``; and ``tau`` grows
    without bound, so every weight is eventually kept and the bias of the DM-only region vanishes: consistent,
    with a variance bound that does not depend on how extreme the weights are. A fixed threshold would be too
    strict for small slates and too loose for large ones, whose weights span ``1`` to ``N^k``.
    """
    return math.sqrt(num_rounds)


def switch_dr(inputs: EstimatorInputs, threshold: float | jax.Array | None = None) -> Estimate:
    """SWITCH-DR: DR terms where ``w <= threshold``, the model alone where ``w > threshold``.

    ``mean(dm_target + 1[w <= tau] w (r - sum_j qhat))`` (Wang, Agarwal & Dudik 2017; Open Bandit Pipeline's
    ``SwitchDoublyRobust``). Its bias is ``-E_e[1[w > tau] (r - sum_j qhat)]``: the model's error where the
    behaviour rarely shows what the target shows. ``threshold=None`` is :func:`default_switch_threshold`
    (``sqrt(n)``); ``inf`` gives DR, ``0`` gives DM.
    """
    tau = default_switch_threshold(inputs.num_rounds) if threshold is None else threshold
    weight, residual = _dr_terms(inputs)
    return _mean(inputs.dm_target + jnp.where(weight <= tau, weight * residual, 0.0))


def iips(inputs: EstimatorInputs) -> Estimate:
    """Independent IPS: ``mean_i sum_j (P_e(a_j in j) / P_b(a_j in j)) clicks_j`` (Li et al. 2018).

    Unbiased when each slot's click depends only on the item in that slot (no interaction between slots:
    ``E[click_j | s] = c(j, s_j)``); per-slot weights are ``N``-sized, not ``N^k``.
    """
    weight = _ratio(inputs.target_slot, inputs.behaviour_slot)
    return _mean(jnp.sum(weight * inputs.clicks, axis=-1))


def rips(inputs: EstimatorInputs) -> Estimate:
    """Reward-interaction IPS: ``mean_i sum_j (P_e(s_1..j) / P_b(s_1..j)) clicks_j``.

    McInerney et al. (2020); Kiyohara et al. (2022), the cascade DR family. Unbiased when slot ``j``'s click
    depends only on slots ``1..j`` (a cascade: the user reads top-down); between IIPS and IPS in variance.
    """
    weight = _ratio(inputs.target_prefix, inputs.behaviour_prefix)
    return _mean(jnp.sum(weight * inputs.clicks, axis=-1))


def pi(inputs: EstimatorInputs) -> Estimate:
    """Pseudo-inverse estimator: ``mean(pi_weight * r)`` (Swaminathan et al. 2017).

    With ``pi_weight = theta_pi^T Gamma_b^+ 1_s`` (:mod:`~rlrec.ope.pseudo_inverse`), unbiased when the slate's expected
    reward is linear (additive) in its slot-item pairs, ``E[r | s] = sum_j phi(j, s_j)``, and the target's
    marginals ``theta_pi`` lie in the range of ``Gamma_b`` (true for full-support logging). A cascade with small
    click probabilities and no position interaction approximates it (``1 - prod_j (1 - c_j) ~ sum_j c_j``); a
    multinomial logit breaks it (clicks compete: a good item lowers the others' click probabilities). Weights
    are ``O(N k)``, not ``N^k``. NaN (not an error) when any round's ``pi_weight`` is NaN (unavailable for that
    behaviour).
    """
    return _mean(inputs.pi_weight * inputs.reward)


class EstimatorSpec(NamedTuple):
    """A registered estimator: its function ``(inputs) -> Estimate`` and the assumption it rests on."""

    function: Callable[..., Estimate]
    assumption: str


# One per row of the table, each the function of its name here ("switch-dr": switch_dr).
ESTIMATORS: dict[str, EstimatorSpec] = {
    name: EstimatorSpec(globals()[name.replace("-", "_")], assumption)
    for name, (_, assumption) in ESTIMATOR_TABLE.items()
}
SLATE_ESTIMATORS = tuple(name for name, (slates_only, _) in ESTIMATOR_TABLE.items() if slates_only)


def estimate_all(inputs: EstimatorInputs, names: Iterable[str] | None = None,
                 switch_threshold: float | jax.Array | None = None) -> dict[str, Estimate]:
    """Every named estimator (default: all of :data:`ESTIMATORS`) in one compiled program.

    Args:
        inputs: the logged rounds.
        names: which estimators, in order (static: a new set compiles a new program).
        switch_threshold: SWITCH-DR's threshold (traced; ``None``: :func:`default_switch_threshold`).

    Returns:
        ``{name: Estimate}`` in the order of ``names``.
    """
    names = tuple(ESTIMATORS) if names is None else tuple(names)
    unknown = [name for name in names if name not in ESTIMATORS]
    if unknown:
        raise InputError(f"Unknown estimators {unknown}; known: {', '.join(ESTIMATORS)}.")
    results = _estimate_all(inputs, names, switch_threshold)
    return {name: results[name] for name in names}  # jit returns dicts sorted by key


@functools.partial(jax.jit, static_argnames=("names",))
def _estimate_all(inputs: EstimatorInputs, names: tuple[str, ...],
                  switch_threshold: jax.Array | None) -> dict[str, Estimate]:
    return {name: switch_dr(inputs, switch_threshold) if name == "switch-dr" else ESTIMATORS[name].function(inputs)
            for name in names}
