"""Functional wrappers for the gymnax-style core, as gymnax / purejaxrl users expect them.

A wrapper holds the inner env and has the same ``reset(key, params)`` / ``step(key, state, action, params)``
signature, so wrappers compose and ``jit`` / ``vmap`` / ``scan`` like the core::

    env, params = rlrec.make("MovieLens-Session-v0", track_regret=False)
    env = LogWrapper(FlattenObservation(env))
    obs, state = env.reset(key, params)                       # obs: float32 (D,)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
    info["returned_episode_returns"]                          # the last finished episode's return

- :class:`FlattenObservation`: the observation dict becomes one float32 vector, a :class:`spaces.Box`.
- :class:`LogWrapper`: running episode returns and lengths in the state, the last finished episode's in
  ``info`` (the purejaxrl convention; an episode ends at ``terminated or truncated``).

Anything a wrapper does not define (``action_space``, ``num_items``, ``slate_size``, ``oracle_action``, ...) is
read from the inner env. ``reset_env``, ``step_env`` and ``get_obs`` are not forwarded: they would hand back the
inner env's observations and states past the wrapper (use ``.unwrapped`` to reach them on purpose).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import chex
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlrec.envs import spaces
from rlrec.errors import InputError

_ENV_METHODS = ("reset", "step", "observation_space", "action_space")
# Inner methods that skip the wrapper's work: forwarding them would silently return unwrapped observations.
_NOT_FORWARDED = frozenset({"reset_env", "step_env", "get_obs"})


@dataclasses.dataclass(frozen=True, repr=False)
class Wrapper:
    """Base of the functional wrappers: holds ``env`` and reads what it does not define from it.

    Subclasses override ``reset``, ``step`` and, if they change it, ``observation_space``. Frozen and
    hashable (when the inner env is), so a wrapped env can be a static argument of ``jax.jit``.

    Raises:
        TypeError: ``env`` is not a functional env (it lacks one of ``reset``, ``step``,
            ``observation_space``, ``action_space``), or is a Gymnasium env (wrap the functional core instead).
    """

    env: Any

    def __post_init__(self):
        if isinstance(self.env, gymnasium.Env):
            raise TypeError(
                f"{type(self).__name__} wraps the functional core, not a Gymnasium env "
                f"({type(self.env).__name__}); use env, params = rlrec.make(env_id)."
            )
        missing = [name for name in _ENV_METHODS if not callable(getattr(self.env, name, None))]
        if missing:
            raise TypeError(
                f"{type(self).__name__} wraps a functional env (with reset(key, params), step(key, state, action, "
                f"params), observation_space(params) and action_space(params)); got {type(self.env).__name__}, "
                f"which lacks {', '.join(missing)}. Build one with env, params = rlrec.make(env_id)."
            )

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails. Dunder names and `env` itself must fail normally (copy and
        # pickle probe them before `env` is set).
        if name == "env" or name.startswith("__"):
            raise AttributeError(name)
        if name in _NOT_FORWARDED:
            raise AttributeError(
                f"{type(self).__name__} does not forward {name!r}: the inner env's would bypass the wrapper. "
                f"Use reset/step, or .unwrapped.{name} to reach the core on purpose."
            )
        try:
            return getattr(self.env, name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r}, and neither has the env it wraps "
                f"({type(self.unwrapped).__name__})."
            ) from None

    @property
    def unwrapped(self) -> Any:
        """The functional core under every wrapper."""
        env = self.env
        while isinstance(env, Wrapper):
            env = env.env
        return env

    def observation_space(self, params: Any) -> Any:
        return self.env.observation_space(params)

    def action_space(self, params: Any) -> Any:
        return self.env.action_space(params)

    def reset(self, key: chex.PRNGKey, params: Any) -> tuple[Any, Any]:
        return self.env.reset(key, params)

    def step(
        self, key: chex.PRNGKey, state: Any, action: jax.Array, params: Any
    ) -> tuple[Any, Any, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        return self.env.step(key, state, action, params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env!r})"


# -- FlattenObservation ---------------------------------------------------------------------------------------


def _leaf_spaces(space: Any, prefix: str = "") -> list[tuple[str, spaces.Box]]:
    """``(name, Box)`` for every entry of ``space`` in flattening order: dict keys sorted, nested dicts
    recursed (``"outer/inner"``), as :func:`jax.tree.leaves` orders a dict observation."""
    if isinstance(space, spaces.Dict):
        entries = []
        for name in sorted(space.spaces):
            entries += _leaf_spaces(space.spaces[name], f"{prefix}{name}/")
        return entries
    name = prefix.rstrip("/")
    if isinstance(space, spaces.Box):
        return [(name, space)]
    if isinstance(space, spaces.Discrete):
        return [(name, spaces.Box(0, space.n - 1, (), space.dtype))]
    if isinstance(space, spaces.Slate):
        return [(name, spaces.Box(0, space.n - 1, (space.k,), space.dtype))]
    raise TypeError(f"FlattenObservation cannot flatten a {type(space).__name__} observation entry ({name!r}).")


def flatten_observation(obs: Any) -> jax.Array:
    """One float32 vector: every array of ``obs`` raveled and concatenated in :func:`jax.tree.leaves` order
    (a dict's entries sorted by key). Works on one observation; ``vmap`` it for a batch."""
    leaves = jax.tree.leaves(obs)
    if not leaves:
        raise InputError("The observation has no arrays to flatten.")
    return jnp.concatenate([jnp.ravel(jnp.asarray(leaf)).astype(jnp.float32) for leaf in leaves])


@dataclasses.dataclass(frozen=True, repr=False)
class FlattenObservation(Wrapper):
    """The observation as one float32 vector ``(D,)``, a :class:`spaces.Box` (what an MLP policy takes).

    Order: the observation's entries sorted by key (the :func:`jax.tree.leaves` order of the dict), each
    raveled row-major. For :class:`~rlrec.envs.recsys.RecEnv` that is ``history_clicks (H)``,
    ``history_feedback (H)``, ``history_items (H*k)``, the time entry (``progress (1)``) and ``request (d)``;
    :meth:`layout` gives each entry's slice, :meth:`bounds` each element's bounds.

    Values pass through unchanged, cast to float32 (exact for integers up to 2**24): item ids
    (``history_items``, -1 for padding) and clicked slots stay numbers, not one-hot codes or embeddings, so an
    id's size means nothing to a network. Scale
    by :meth:`bounds` before a network (the example does), and for learned features prefer the
    ``request``/``history_feedback`` entries or :func:`rlrec.agents.networks.observation_features` (which
    looks the shown items' embeddings up in the catalog).

    ``observation_space(params)`` is a ``Box`` whose scalar bounds cover every entry (the lowest low and the
    highest high, e.g. ``[-1, N - 1]``); ``info["final_observation"]`` is flattened like the observation.
    """

    def layout(self, params: Any) -> dict[str, slice]:
        """Where each observation entry lies in the flat vector: ``{name: slice}`` in flattening order."""
        offsets, start = {}, 0
        for name, box in _leaf_spaces(self.env.observation_space(params)):
            size = int(np.prod(box.shape, dtype=np.int64))
            offsets[name] = slice(start, start + size)
            start += size
        return offsets

    def bounds(self, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """Elementwise ``(low (D,), high (D,))`` float32 bounds of the flat observation, from each entry's space."""
        entries = _leaf_spaces(self.env.observation_space(params))
        sizes = [int(np.prod(box.shape, dtype=np.int64)) for _, box in entries]
        low = np.concatenate([np.full(size, box.low, np.float32) for size, (_, box) in zip(sizes, entries)])
        high = np.concatenate([np.full(size, box.high, np.float32) for size, (_, box) in zip(sizes, entries)])
        return low, high

    def observation_space(self, params: Any) -> spaces.Box:
        entries = _leaf_spaces(self.env.observation_space(params))
        size = sum(int(np.prod(box.shape, dtype=np.int64)) for _, box in entries)
        low = float(min(box.low for _, box in entries))
        high = float(max(box.high for _, box in entries))
        return spaces.Box(low, high, (size,), jnp.float32)

    def reset(self, key: chex.PRNGKey, params: Any) -> tuple[jax.Array, Any]:
        obs, state = self.env.reset(key, params)
        return flatten_observation(obs), state

    def step(
        self, key: chex.PRNGKey, state: Any, action: jax.Array, params: Any
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        if "final_observation" in info:
            info = dict(info, final_observation=flatten_observation(info["final_observation"]))
        return flatten_observation(obs), state, reward, terminated, truncated, info


# -- LogWrapper -----------------------------------------------------------------------------------------------


@struct.dataclass
class LogEnvState:
    """The inner env's state and the episode bookkeeping of :class:`LogWrapper` (all per user: vmap adds a
    leading axis to each)."""

    env_state: Any
    episode_returns: jax.Array  # () float32, return of the running episode so far
    episode_lengths: jax.Array  # () int32, steps of the running episode so far
    returned_episode_returns: jax.Array  # () float32, return of the last finished episode (0 before one)
    returned_episode_lengths: jax.Array  # () int32, length of the last finished episode (0 before one)
    timestep: jax.Array  # () int32, steps taken since reset, over all episodes


@dataclasses.dataclass(frozen=True, repr=False)
class LogWrapper(Wrapper):
    """Episode returns and lengths, kept in the state and reported in ``info`` (purejaxrl / gymnax convention).

    State: :class:`LogEnvState` around the inner state. ``info`` gains, after each step:

    - ``returned_episode_returns``: float32 ``()``, the return of the last finished episode (this step's if
      it ended here);
    - ``returned_episode_lengths``: int32 ``()``, its length in steps;
    - ``returned_episode``: bool ``()``, whether an episode ended at this step (``terminated or truncated``);
    - ``timestep``: int32 ``()``, steps taken since :meth:`reset`.

    The mean return of the episodes finished in a rollout is
    ``sum(info["returned_episode_returns"] * info["returned_episode"]) / sum(info["returned_episode"])``.
    Requires an auto-resetting inner env (as the core is): the running sums restart with the next episode.
    """

    def reset(self, key: chex.PRNGKey, params: Any) -> tuple[Any, LogEnvState]:
        obs, env_state = self.env.reset(key, params)
        zero_return, zero_length = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        state = LogEnvState(
            env_state=env_state,
            episode_returns=zero_return,
            episode_lengths=zero_length,
            returned_episode_returns=zero_return,
            returned_episode_lengths=zero_length,
            timestep=zero_length,
        )
        return obs, state

    def step(
        self, key: chex.PRNGKey, state: LogEnvState, action: jax.Array, params: Any
    ) -> tuple[Any, LogEnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        if not isinstance(state, LogEnvState):
            raise TypeError(
                f"LogWrapper.step takes the LogEnvState its reset returned, got {type(state).__name__}."
            )
        obs, env_state, reward, terminated, truncated, info = self.env.step(key, state.env_state, action, params)
        done = jnp.logical_or(terminated, truncated)
        episode_return = state.episode_returns + jnp.asarray(reward, jnp.float32)
        episode_length = state.episode_lengths + 1
        state = LogEnvState(
            env_state=env_state,
            episode_returns=jnp.where(done, 0.0, episode_return),
            episode_lengths=jnp.where(done, 0, episode_length),
            returned_episode_returns=jnp.where(done, episode_return, state.returned_episode_returns),
            returned_episode_lengths=jnp.where(done, episode_length, state.returned_episode_lengths),
            timestep=state.timestep + 1,
        )
        info = dict(
            info,
            returned_episode_returns=state.returned_episode_returns,
            returned_episode_lengths=state.returned_episode_lengths,
            returned_episode=done,
            timestep=state.timestep,
        )
        return obs, state, reward, terminated, truncated, info


__all__ = ["FlattenObservation", "LogEnvState", "LogWrapper", "Wrapper", "flatten_observation"]
