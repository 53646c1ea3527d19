"""Logging a behaviour policy with its propensities: :func:`collect`.

One jitted program steps a block of simulated user streams (``vmap``) for ``steps_per_user`` rounds
(``lax.scan``), the behaviour policy choosing each slate and stating its probabilities; users come from the
env's population exactly as in :func:`rlrec.run`. Each user stream has its own key, ``fold_in(stream_key(seed,
LOG), user)``, so a log does not depend on how its users are split into blocks, and ``collect(...,
num_rounds=n)`` starts with the rounds of any smaller log of the same seed and ``steps_per_user`` (the same users,
draws and clicks; a float may differ in its last bit, as programs for other block sizes round differently).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from rlrec import _progress
from rlrec.agents.base import slot_rewards
from rlrec.envs.recsys import EnvParams, RecEnv
from rlrec.errors import InputError
from rlrec.ope.log import OBSERVATION_FIELDS, Log
from rlrec.ope.policies import Policy
from rlrec.rollout.seeds import RUNNER_COMPILER_OPTIONS

# Users per compiled block: bounds the memory of one block's per-round outputs (the history dominates), and of
# a Monte Carlo behaviour's draws (one (N,) draw per user at a time).
BLOCK_USERS = 8192
MONTE_CARLO_BLOCK_USERS = 1024

# A seed's independent key streams: the log (users, the behaviour's draws, clicks), the truth's Monte Carlo draws,
# the estimators' (Monte Carlo targets) and a target's training users. Each is fold_in(key(seed), stream), and
# users or rounds fold in below it, so no two streams share a key.
LOG, TRUTH, EVALUATE, TRAIN = range(4)


def stream_key(seed: int, stream: int) -> jax.Array:
    """The root key of one of a seed's streams (:data:`LOG`, :data:`TRUTH`, :data:`EVALUATE`, :data:`TRAIN`)."""
    return jax.random.fold_in(jax.random.key(seed), stream)


def state_class(state) -> str:
    """The import path of an env state's class, as a log records it (``"rlrec.envs.recsys.EnvState"``)."""
    return f"{type(state).__module__}.{type(state).__qualname__}"


# rlrec.run's compiler options (LLVM level 1: compiles faster, the same numbers).
@functools.partial(jax.jit, static_argnames=("env", "steps"), compiler_options=RUNNER_COMPILER_OPTIONS)
def _collect_block(users, root, params, behaviour, *, env, steps):
    """Rounds of the streams ``users`` (int32 ``(B,)``): a dict of ``(B, steps, ...)`` arrays."""

    def stream(user):
        user_key = jax.random.fold_in(root, user)
        reset_key, steps_key = jax.random.split(user_key)
        obs, state = env.reset(reset_key, params)

        def one_round(carry, step):
            obs, state = carry
            act_key, probability_key, env_key = jax.random.split(jax.random.fold_in(steps_key, step), 3)
            slate = behaviour.sample(act_key, obs, params)
            log_prefix, slot = behaviour.probabilities(probability_key, obs, slate, params, logged=True)
            action = slate[0] if env.slate_size == 1 else slate
            next_obs, next_state, reward, _, _, info = env.step(env_key, state, action, params)
            out = {
                **{name: obs[name] for name in OBSERVATION_FIELDS},
                "slate": slate,
                "clicks": slot_rewards(info["clicked_slot"], env.slate_size),
                "reward": reward,
                "log_prefix": log_prefix,
                "slot_propensity": slot,
                "expected_reward": info["expected_reward"],
                "states": {f.name: getattr(state, f.name) for f in dataclasses.fields(state)},
            }
            if behaviour.kind == "epsilon-greedy":
                out["behaviour_greedy"] = behaviour.greedy(obs, params)
            return (next_obs, next_state), out

        _, rounds = jax.lax.scan(one_round, (obs, state), jnp.arange(steps))
        return rounds

    return jax.vmap(stream)(users)


def check_policy(policy: Policy, env: RecEnv, role: str) -> None:
    """Raises ``TypeError``/``ValueError`` when ``policy`` is not a :class:`Policy` of the env's slate size."""
    if not isinstance(policy, Policy):
        raise TypeError(
            f"The {role} must be an rlrec.ope policy (Uniform, Greedy, EpsilonGreedy, Softmax or Sampled), got "
            f"{type(policy).__name__}; build one with rlrec.ope.make_policy(...) or e.g. rlrec.ope.Greedy(agent=..., "
            "state=..., slate_size=env.slate_size)."
        )
    if policy.slate_size != env.slate_size:
        raise InputError(
            f"The {role} {policy.name} shows slates of {policy.slate_size} but {env.name} shows {env.slate_size}; "
            "build it with slate_size=env.slate_size."
        )
    from rlrec.envs.probe_base import ProbeEnv

    if isinstance(env, ProbeEnv):  # its reward is the items' fixed values, not a click of the choice model
        raise InputError(
            f"{env.name or type(env).__name__} is a probe (rewards are fixed item values, not clicks), so it has no "
            "click model for the exact truth; off-policy evaluation takes the recommendation envs (rlrec.make)."
        )


def check_log(log: Log, env: RecEnv, params: EnvParams) -> None:
    """Raises ``ValueError`` when ``log`` was not collected on an env of ``env``'s catalog and slate size."""
    if log.slate_size != env.slate_size or log.num_items != env.num_items(params):
        raise InputError(f"The log ({log.env_id}: {log.num_items} items, slates of {log.slate_size}) was not "
                         f"collected on this env ({env.name}: {env.num_items(params)} items, slates of "
                         f"{env.slate_size}); pass the env and params it was collected on.")


def collect(
    env: RecEnv,
    params: EnvParams,
    behaviour: Policy,
    num_rounds: int,
    *,
    steps_per_user: int = 1,
    seed: int = 0,
    progress: bool | None = False,
) -> Log:
    """Logs ``num_rounds`` rounds of ``behaviour`` on ``env``: what was shown, the clicks and the propensities.

    Args:
        env, params: from :func:`rlrec.make` (any env: plain or conversational, any setting).
        behaviour: the logging policy (:mod:`rlrec.ope.policies`); it does not learn while it logs.
        num_rounds: rounds in the log, a multiple of ``steps_per_user``.
        steps_per_user: consecutive rounds of each simulated user (1: every round a fresh cold-start user, the
            classic contextual-bandit log; more: the same user again, with the history of what was shown).
        seed: the log's seed (users, the behaviour's draws and the clicks).
        progress: a bar over the blocks of users (``None``: where someone watches).

    Returns:
        A :class:`~rlrec.ope.log.Log`, rounds user by user (``user`` and ``step`` say which), with the exact
        expected reward of every logged slate and the users' hidden states, which :func:`rlrec.ope.true_value`
        reads (no estimator does).
    """
    check_policy(behaviour, env, "behaviour")
    if num_rounds < 1 or steps_per_user < 1 or num_rounds % steps_per_user:
        raise InputError(
            f"num_rounds ({num_rounds}) must be a positive multiple of steps_per_user ({steps_per_user}): the log "
            "holds whole user streams."
        )
    num_users = num_rounds // steps_per_user
    block = min(num_users, MONTE_CARLO_BLOCK_USERS if behaviour.samples else BLOCK_USERS)
    blocks = math.ceil(num_users / block)
    # The log needs no oracle: skipping it makes a step O(k d) instead of O(N d), and changes no click.
    program_env = dataclasses.replace(env, track_regret=False, name="", catalog=None)
    root = stream_key(seed, LOG)
    display = _progress.Progress(blocks, f"logging {behaviour.name} on {env.name}", "block") \
        if _progress.wanted(progress) else None
    pieces = []
    started = time.perf_counter()
    try:
        for index in range(blocks):
            users = jnp.arange(index * block, (index + 1) * block, dtype=jnp.int32)
            rounds = _collect_block(users, root, params, behaviour, env=program_env, steps=steps_per_user)
            pieces.append(jax.tree.map(np.asarray, rounds))
            if display is not None:
                display.update(1)
    finally:
        if display is not None:
            display.close(f"logged {num_rounds:,} rounds in {_progress.duration(time.perf_counter() - started)}")
    rounds = jax.tree.map(lambda *parts: np.concatenate(parts)[:num_users], *pieces)
    flat = jax.tree.map(lambda x: x.reshape((num_rounds,) + x.shape[2:]), rounds)
    log_prefix = flat.pop("log_prefix").astype(np.float64)
    prefix = np.exp(log_prefix)
    state = env.reset(jax.random.key(0), params)[1]
    return Log(
        env_id=env.name,
        behaviour=behaviour.name,
        behaviour_kind=behaviour.kind,
        behaviour_settings=behaviour.settings(),
        num_items=env.num_items(params),
        slate_size=env.slate_size,
        seed=seed,
        user=np.repeat(np.arange(num_users, dtype=np.int32), steps_per_user),
        step=np.tile(np.arange(steps_per_user, dtype=np.int32), num_users),
        propensity=prefix[:, -1].copy(),
        prefix_propensity=prefix,
        slot_propensity=flat.pop("slot_propensity").astype(np.float64),
        states=flat.pop("states"),
        state_class=state_class(state),
        propensity_samples=behaviour.samples,
        behaviour_greedy=flat.pop("behaviour_greedy", None),
        **flat,
    )
