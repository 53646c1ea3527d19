"""Estimating a target policy's value from a log: :func:`evaluate` (every estimator in one pass).

Per logged round it computes what the estimators read (:class:`~rlrec.ope.estimators.EstimatorInputs`): the
target's probabilities of the logged slate's prefixes and slots, the reward model's predictions (fitted on the
log: :mod:`rlrec.ope.reward_model`) for the logged slate and in expectation under the target, and the
pseudo-inverse weights where the logging policy's family has them in closed form (uniform, epsilon-greedy).
Nothing here reads the users' hidden states: that is :func:`rlrec.ope.true_value`'s side.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from rlrec.envs.recsys import EnvParams, RecEnv
from rlrec.errors import InputError
from rlrec.ope import estimators as est
from rlrec.ope import reward_model
from rlrec.ope.blocks import target_rounds
from rlrec.ope.collector import EVALUATE, check_log, check_policy, stream_key
from rlrec.ope.log import Log
from rlrec.ope.policies import Policy, deterministic_slates, in_slate, matching_prefix
from rlrec.ope.pseudo_inverse import PI_KINDS, pi_weights


@functools.partial(jax.jit, static_argnames=("greedy",))
def _target_block(keys, obs, slates, greedy_slates, params, target, weights, *, greedy):
    """A stochastic target's probabilities and the reward model's predictions, per round of a block.

    The slot and item probabilities, at the logged slate and at the greedy one, are read off the target's ``(k,
    N)`` marginals, which the reward model's expectation needs anyway: one pass of a Monte Carlo target's draws
    for all of them (the same estimates as its ``probabilities``/``item_probabilities``, of other draws).
    """
    def one(key, ob, slate, greedy_slate):
        probability_key, marginal_key = jax.random.split(key)
        slots = jnp.arange(slate.shape[0])
        log_prefix = target.probabilities(probability_key, ob, slate, params)[0]
        marginals = target.marginals(marginal_key, ob, params)
        request = ob["request"]
        logged_prediction = reward_model.predict_slate(weights, params, request, slate)
        target_prediction = jnp.sum(marginals * reward_model.predict_items(weights, params, request, slate.shape[0]))
        slot, item = marginals[slots, slate], jnp.sum(marginals[:, slate], axis=0)
        if greedy:
            greedy_slot, greedy_item = marginals[slots, greedy_slate], jnp.sum(marginals[:, greedy_slate], axis=0)
        else:
            greedy_slot = greedy_item = jnp.zeros(())
        return log_prefix, slot, item, logged_prediction, target_prediction, greedy_slot, greedy_item

    return jax.vmap(one)(keys, obs, slates, greedy_slates)


@jax.jit
def _deterministic_block(requests, slates, greedy_slates, target_slates, params, weights):
    """The same for a deterministic target, from the slates it shows (probabilities 0 or 1)."""
    def one(request, slate, greedy_slate, target_slate):
        return (jnp.where(matching_prefix(slate, target_slate), 0.0, -jnp.inf),
                (slate == target_slate).astype(jnp.float32), in_slate(slate, target_slate),
                reward_model.predict_slate(weights, params, request, slate),
                jnp.sum(reward_model.predict_slate(weights, params, request, target_slate)),
                (greedy_slate == target_slate).astype(jnp.float32), in_slate(greedy_slate, target_slate))

    return jax.vmap(one)(requests, slates, greedy_slates, target_slates)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Every estimator's estimate of one target's value from one log.

    Attributes:
        target: the target policy's name.
        estimates: ``{estimator: (value, standard error)}``.
        inputs: what the estimators read, per round (for your own estimators and for plots).
    """

    target: str
    estimates: dict[str, tuple[float, float]]
    inputs: est.EstimatorInputs

    def value(self, estimator: str) -> float:
        return self.estimates[estimator][0]


def estimator_inputs(env: RecEnv, params: EnvParams, log: Log, target: Policy, *, regulariser: float = 1.0,
                     seed: int = 0) -> est.EstimatorInputs:
    """What the estimators read about ``target`` on ``log`` (see the module docstring)."""
    check_policy(target, env, "target")
    check_log(log, env, params)
    weights = reward_model.fit(params, log.request, log.slate, log.clicks, regulariser)
    greedy = log.behaviour_greedy is not None
    greedy_slates = log.behaviour_greedy if greedy else log.slate
    obs = log.observations()
    keys = jax.random.split(stream_key(seed, EVALUATE), log.num_rounds)
    target_slates = deterministic_slates(target, obs, params) if target.deterministic else None
    rows = target_rounds(log.slate_size, log.num_items, target.deterministic)
    parts = []
    for start in range(0, log.num_rounds, rows):
        cut = slice(start, start + rows)
        if target.deterministic:
            block = _deterministic_block(log.request[cut], log.slate[cut], greedy_slates[cut], target_slates[cut],
                                         params, weights)
        else:
            block = _target_block(keys[cut], {name: value[cut] for name, value in obs.items()}, log.slate[cut],
                                  greedy_slates[cut], params, target, weights, greedy=greedy)
        parts.append(jax.tree.map(np.asarray, block))
    log_prefix, slot, item, logged_prediction, target_prediction, greedy_slot, greedy_item = (
        np.concatenate(piece) for piece in zip(*parts, strict=True))
    pi_weight = None
    if log.behaviour_kind == "uniform":
        pi_weight = pi_weights("uniform", log.num_items, log.slate_size, slot, item)
    elif log.behaviour_kind == "epsilon-greedy":
        matches = np.sum(log.slate == log.behaviour_greedy, axis=1)
        shared = np.sum(np.any(log.slate[:, :, None] == log.behaviour_greedy[:, None, :], axis=2), axis=1)
        pi_weight = pi_weights("epsilon-greedy", log.num_items, log.slate_size, slot, item,
                                   epsilon=log.behaviour_settings["epsilon"], target_greedy_slot=greedy_slot,
                                   target_greedy_item=greedy_item, matches=matches, shared=shared)
    return est.EstimatorInputs.build(
        reward=log.reward, clicks=log.clicks, behaviour_prefix=log.prefix_propensity,
        behaviour_slot=log.slot_propensity, target_prefix=np.exp(log_prefix.astype(np.float64)), target_slot=slot,
        dm_logged=logged_prediction, dm_target=target_prediction, pi_weight=pi_weight)


def evaluate(env: RecEnv, params: EnvParams, log: Log, target: Policy, *, estimators=None,
             switch_threshold: float | None = None, regulariser: float = 1.0, seed: int = 0) -> Evaluation:
    """Every estimator's estimate (with its standard error) of ``target``'s value per round on ``log``.

    Args:
        env, params: the env the log was collected on (its catalog feeds the reward model and the target).
        log: from :func:`rlrec.ope.collect` (or :func:`rlrec.ope.io.load`).
        target: the policy to evaluate (:mod:`rlrec.ope.policies`).
        estimators: names from :data:`rlrec.ope.estimators.ESTIMATORS` (default: all that apply: the slate
            estimators only on slates, the pseudo-inverse only on uniform or epsilon-greedy logs).
        switch_threshold: Switch-DR's importance-weight threshold (default: the estimator's).
        regulariser: the reward model's ridge strength.
        seed: the draws of Monte Carlo targets (the seed's estimator stream, apart from the log's and the truth's).
    """
    names = default_estimators(log) if estimators is None else list(estimators)
    unknown = [name for name in names if name not in est.ESTIMATORS]
    if unknown:
        raise InputError(f"Unknown estimator(s) {unknown}; choose from {sorted(est.ESTIMATORS)}.")
    if "pi" in names and log.behaviour_kind not in PI_KINDS:
        raise InputError(f"The pseudo-inverse estimator needs a {' or '.join(PI_KINDS)} logging policy (its "
                         f"weights are known in closed form only there); this log's is {log.behaviour_kind}.")
    inputs = estimator_inputs(env, params, log, target, regulariser=regulariser, seed=seed)
    options = {} if switch_threshold is None else {"switch_threshold": switch_threshold}
    results = est.estimate_all(inputs, names=tuple(names), **options)
    estimates = {name: (float(result.value), float(result.stderr)) for name, result in results.items()}
    return Evaluation(target.name, estimates, inputs)


def default_estimators(log: Log) -> list[str]:
    """The estimators that apply to ``log``: all on slates (the pseudo-inverse only where it has weights), the
    item ones on single items."""
    names = [name for name in est.ESTIMATORS if log.slate_size > 1 or name not in est.SLATE_ESTIMATORS]
    return [name for name in names if name != "pi" or log.behaviour_kind in PI_KINDS]
