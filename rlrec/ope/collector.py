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
import hashlib
import math
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from rlrec import _memory, _progress
from rlrec.agents.base import slot_rewards
from rlrec.envs.recsys import EnvParams, RecEnv
from rlrec.errors import InputError
from rlrec.ope import blocks
from rlrec.ope.log import OBSERVATION_FIELDS, ROUND_LAYOUT, Log, is_whole_number
from rlrec.ope.policies import Policy
from rlrec.rollout.seeds import RUNNER_COMPILER_OPTIONS

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


# A static setting that does not change what a user does (the oracle's bookkeeping); the env's name is outside ==
# (its id is named beside the fingerprint).
_NOT_BEHAVIOUR = ("track_regret",)


def env_fingerprint(env: RecEnv, params: EnvParams) -> dict[str, str]:
    """What makes ``env``'s users behave as they do, one readable entry per part, the same in every process.

    The class, each static setting that shapes the simulation (``choice_model``, ``slate_size``,
    ``history_length``, ...; not the name or ``track_regret``) and every leaf of ``params``: a scalar by its value
    as JAX computes with it (``"float32 3.0"``: a Python ``3.0`` and ``jnp.float32(3.0)`` are the same env), an
    array by dtype, shape and the SHA-256 of its bytes (never Python's ``hash()``, which is salted per process).
    A log records it (:func:`collect`) and :func:`check_log` compares it part by part, so a log is never evaluated
    on another env of the same sizes (a cascade for an MNL, another ``no_click_logit``), whose truth differs.

    Returns:
        ``{part: description}``, e.g. ``{"class": "rlrec.envs.recsys.RecEnv", "choice_model": "'mnl'",
        "params.no_click_logit": "float32 3.0", "params.item_features": "float32[10, 8] sha256:<16 hex digits>"}``.
    """
    parts = {"class": state_class(env)}
    for field in dataclasses.fields(env):
        if field.compare and field.name not in _NOT_BEHAVIOUR:
            parts[field.name] = repr(getattr(env, field.name))
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        value = np.asarray(jnp.asarray(leaf))
        if value.ndim == 0:
            description = f"{value.dtype} {value}"
        else:
            digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]
            description = f"{value.dtype}{list(value.shape)} sha256:{digest}"
        parts["params" + jax.tree_util.keystr(path)] = description
    return parts


def check_log(log: Log, env: RecEnv, params: EnvParams) -> None:
    """Raises :class:`~rlrec.errors.InputError` unless ``log`` is sound (:meth:`Log.check`) and was collected on
    ``env``: the same catalog and slate size, the same fingerprint (:func:`env_fingerprint`), observations of the
    env's shapes. A log without a fingerprint (format 1, or built by hand) is evaluated with a warning."""
    log.check()
    if log.slate_size != env.slate_size or log.num_items != env.num_items(params):
        raise InputError(f"The log ({log.env_id}: {log.num_items} items, slates of {log.slate_size}) was not "
                         f"collected on this env ({env.name}: {env.num_items(params)} items, slates of "
                         f"{env.slate_size}); pass the env and params it was collected on.")
    here = env_fingerprint(env, params)
    if log.env_fingerprint is None:
        warnings.warn(f"The log has no env fingerprint (saved before log format 2, or built by hand), so rlrec "
                      f"cannot check that {env.name or 'this env'} is the env it was collected on (another env "
                      "gives wrong numbers without an error): collect it again with rlrec.ope.collect, which records "
                      "the fingerprint, to have it checked.", UserWarning, stacklevel=3)
    else:
        logged = log.env_fingerprint
        differ = [part for part in {**logged, **here} if logged.get(part) != here.get(part)]
        if differ:
            shown = "; ".join(f"{part}: {logged.get(part, 'absent')} in the log's env, {here.get(part, 'absent')} "
                              "in this one" for part in differ[:3])
            more = f" (and {len(differ) - 3} more parts)" if len(differ) > 3 else ""
            raise InputError(f"The log was collected on {log.env_id}, which differs from this env ({env.name}) in "
                             f"{shown}{more}; pass the env and params the log was collected on (rlrec.make with the "
                             "same id and settings).")
    spaces = env.observation_space(params).spaces
    for name in OBSERVATION_FIELDS:
        shape, expected = np.shape(getattr(log, name))[1:], tuple(spaces[name].shape)
        if shape != expected:
            raise InputError(f"The log's {name} is {shape} per round, but {env.name} observes {expected}; pass the "
                             "env and params the log was collected on.")


def round_bytes(env: RecEnv, params: EnvParams, behaviour: Policy) -> int:
    """Bytes of one logged round: the log's arrays (:data:`~rlrec.ope.log.ROUND_LAYOUT` in the env's sizes) and
    the env's hidden state (its shapes traced, nothing computed)."""
    sizes = {"d": int(params.item_features.shape[1]), "H": env.history_length, "k": env.slate_size}
    total = sum(math.prod(sizes.get(size, size) for size in shape) * np.dtype(dtype).itemsize
                for name, (shape, dtype) in ROUND_LAYOUT.items()
                if name != "behaviour_greedy" or behaviour.kind == "epsilon-greedy")
    state = jax.eval_shape(lambda key: env.reset(key, params)[1], jax.random.key(0))
    return total + sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(state))


def block_users(env: RecEnv, params: EnvParams, behaviour: Policy, steps_per_user: int) -> int:
    """User streams per compiled block of :func:`collect`: each holds its rounds' outputs and, for a Monte Carlo
    behaviour, one ``(N,)`` float32 draw at a time."""
    per_user = steps_per_user * round_bytes(env, params, behaviour)
    if behaviour.samples:
        return blocks.rows_per_block(per_user + 4 * env.num_items(params), blocks.MONTE_CARLO_USERS)
    return blocks.rows_per_block(per_user, blocks.USERS)


def check_memory(env: RecEnv, params: EnvParams, behaviour: Policy, num_rounds: int, *,
                 steps_per_user: int = 1) -> None:
    """Raises :class:`~rlrec.errors.InputError`, naming the largest size that fits, when :func:`collect`'s
    ``num_rounds`` would not fit in the memory available now; allocates nothing.

    :func:`collect` holds the blocks' outputs and, while joining them, the whole log once more, plus the block
    being computed: about ``(2 * rounds + block rounds) * round_bytes``. Sizes of unknown memory pass.
    """
    available = _memory.available_bytes()
    if available is None:
        return
    per_user = steps_per_user * round_bytes(env, params, behaviour)
    block = block_users(env, params, behaviour, steps_per_user)

    def needed(users: int) -> int:
        return (2 * users + min(users, block)) * per_user

    users = num_rounds // steps_per_user
    if needed(users) <= available:
        return
    fits = available // (3 * per_user)  # the largest number of users that fits (needed is increasing)
    if fits >= block:
        fits = (available - block * per_user) // (2 * per_user)
    advice = (f"collect at most {fits * steps_per_user:,} rounds here" if fits else
              f"not one stream of {steps_per_user} rounds fits: free memory") + ", or use a machine with more memory"
    raise InputError(f"{num_rounds:,} rounds of {behaviour.name} on {env.name} need about "
                     f"{_memory.describe(needed(users))} of memory ({_memory.describe(per_user / steps_per_user)} a "
                     f"round, the log held twice while its blocks are joined), and {_memory.describe(available)} is "
                     f"available: {advice}.")


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
        num_rounds: rounds in the log, a multiple of ``steps_per_user``; a size whose log would not fit in the
            memory available is refused before anything is allocated (:func:`check_memory`).
        steps_per_user: consecutive rounds of each simulated user (1: every round a fresh cold-start user, the
            classic contextual-bandit log; more: the same user again, with the history of what was shown).
        seed: the log's seed (users, the behaviour's draws and the clicks).
        progress: a bar over the blocks of users (``None``: where someone watches).

    Returns:
        A :class:`~rlrec.ope.log.Log`, rounds user by user (``user`` and ``step`` say which), with the exact
        expected reward of every logged slate and the users' hidden states, which :func:`rlrec.ope.true_value`
        reads (no estimator does), and the env's fingerprint (:func:`env_fingerprint`).
    """
    check_policy(behaviour, env, "behaviour")
    for name, value in (("num_rounds", num_rounds), ("steps_per_user", steps_per_user)):
        if not is_whole_number(value):
            raise InputError(f"{name} must be a whole number (an int), got {value!r} ({type(value).__name__}); "
                             "e.g. 10_000, not 1e4.")
    num_rounds, steps_per_user = int(num_rounds), int(steps_per_user)
    if num_rounds < 1 or steps_per_user < 1 or num_rounds % steps_per_user:
        raise InputError(
            f"num_rounds ({num_rounds}) must be a positive multiple of steps_per_user ({steps_per_user}): the log "
            "holds whole user streams."
        )
    check_memory(env, params, behaviour, num_rounds, steps_per_user=steps_per_user)
    num_users = num_rounds // steps_per_user
    block = min(num_users, block_users(env, params, behaviour, steps_per_user))
    num_blocks = math.ceil(num_users / block)
    # The log needs no oracle: skipping it makes a step O(k d) instead of O(N d), and changes no click.
    program_env = dataclasses.replace(env, track_regret=False)
    root = stream_key(seed, LOG)
    display = _progress.Progress(num_blocks, f"logging {behaviour.name} on {env.name}", "block") \
        if _progress.wanted(progress) else None
    pieces = []
    started = time.perf_counter()
    try:
        for index in range(num_blocks):
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
        env_fingerprint=env_fingerprint(env, params),
        **flat,
    )
