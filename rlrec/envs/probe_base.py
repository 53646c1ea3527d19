"""The base of the probe environments (:mod:`rlrec.envs.probes`): deterministic episodic MDPs with exact ``Q*``.

A probe defines its reward table and its reachable states; :class:`ProbeEnv` builds its world, steps it,
scores each step against the exact oracle and tabulates ``Q*`` (:class:`ProbeValues`).

:class:`ProbeEnv` subclasses :class:`~rlrec.envs.recsys.RecEnv` and uses its :class:`EnvParams`/:class:`EnvState`,
observation dict, spaces, auto-reset and ``info`` keys, so agents and the runner take the probes unchanged. The
catalog is one-hot: item ``i`` is ``e_i`` and user type ``p`` requests ``e_{N+p}`` (in ``d = N + P``
dimensions), orthogonal to every item, so no item feature or request leaks the answer; quality and appeal
are 0. The reward tables are static fields of the env (hashable tuples), like the slate size; ``params``
only carry what agents observe about the world.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, ClassVar

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlrec.envs.recsys import EnvParams, EnvState, RecEnv, empty_history, step_info
from rlrec.envs.registry import NUMERIC_OVERRIDES
from rlrec.errors import InputError
from rlrec.simulators import choice


@struct.dataclass
class ProbeValues:
    """The exact optimal values of every decision state a probe can reach.

    ``Q*(s, a) = r(s, a) + gamma * max_a' Q*(s', a')``, 0 after termination. On a slate (one-step probes with
    ``slate_size > 1``) rewards add up over the distinct items shown, so ``Q*(s, slate)`` is the sum of the
    per-item ``q_values`` of its items and ``values`` is the sum of the ``slate_size`` best.

    Attributes:
        observations: the observation dict of each state, every leaf with a leading ``(S,)`` axis.
        states: the :class:`EnvState` of each state, batched ``(S,)``.
        q_values: float32 ``(S, N)``, ``Q*(s, i)`` of showing item ``i``.
        values: float32 ``(S,)``, ``V*(s)``, the best slate's value.
        optimal_actions: int32 ``(S,)`` (``(S, k)`` for slates), the optimal item or slate (best first).
        names: ``S`` readable state names, e.g. ``("start", "after A", "after B")``.
    """

    observations: dict
    states: EnvState
    q_values: jax.Array
    values: jax.Array
    optimal_actions: jax.Array
    names: tuple[str, ...] = struct.field(pytree_node=False)


@dataclasses.dataclass(frozen=True)
class ProbeEnv(RecEnv):
    """Base of the probes: a deterministic episodic MDP of ``episode_length`` steps with exact ``Q*``.

    Observation and action: as :class:`RecEnv` (``request (d,)``, ``history_items (H, k)``,
    ``history_clicks (H,)``, ``history_feedback (H,)``, ``step ()``; an item index or a ``(k,)`` slate).
    Reward: float32 ``()``, the sum of the fixed rewards of the distinct items shown (any float, not a click).
    Termination: after ``episode_length`` steps (a true end: do not bootstrap). Truncation: only if
    ``params.max_steps`` is set below ``episode_length``.
    Info (same keys as :class:`RecEnv`, probe meanings):
        - ``expected_reward``: this step's reward (deterministic); ``oracle_expected_reward``: this step's
          reward of ``oracle_slate``.
        - ``oracle_slate``: int32 ``(k,)``, the slate maximising the undiscounted return to go (not the next
          reward: in the two-step probe it is A, which pays 0 now).
        - ``regret``: ``V*(s) - Q*(s, action)`` undiscounted, >= 0. Summed over an episode it is exactly the
          optimal return minus the return obtained. In the two-step probe it is therefore *not*
          ``oracle_expected_reward - expected_reward``.
        - ``clicked_slot``: the slot of the best-paying item shown if it pays > 0, else -1 (so a 0/1 reward
          matches a click); ``clicked_item``: its item (-1 if none); ``satisfaction``: its reward clipped to
          [0, 1] (this also goes to ``history_feedback``); ``budget``: steps left in the episode.
        - with ``track_regret=False``, as in :class:`RecEnv`: ``regret`` and ``oracle_expected_reward`` are NaN
          and ``oracle_slate`` is -1.
    """

    episode_length: ClassVar[int] = 1

    # -- what a probe defines --------------------------------------------------------------------------------

    @property
    def num_user_types(self) -> int:
        return 1

    def _num_items(self) -> int:
        """``N``, fixed by the probe's reward tables."""
        raise NotImplementedError

    def _item_rewards(self, state: EnvState) -> jax.Array:
        """``(N,)`` reward of showing each item in this (non-terminal) state."""
        raise NotImplementedError

    def item_q_values(self, state: EnvState, params: EnvParams, gamma: float | jax.Array) -> jax.Array:
        """``(N,)`` ``Q*(s, i)`` of showing each item in this state under discount ``gamma``."""
        raise NotImplementedError

    def _decision_states(self, params: EnvParams) -> tuple[list[EnvState], tuple[str, ...]]:
        """Every reachable non-terminal state, with a name each."""
        raise NotImplementedError

    # -- shared machinery ------------------------------------------------------------------------------------

    def default_params(self) -> EnvParams:
        """The probe's world: ``N`` one-hot items, one one-hot request per user type (equally likely)."""
        num_items, num_types = self._num_items(), self.num_user_types
        dim = num_items + num_types
        features = np.eye(num_items, dim, dtype=np.float32)
        requests = np.eye(num_types, dim, k=num_items, dtype=np.float32)
        numeric = {name: field.default for name, field in EnvParams.__dataclass_fields__.items()}
        numeric.update(
            interest_noise=0.0,
            position_bias=np.zeros((self.slate_size,), np.float32),
            initial_budget=float(self.episode_length),
            step_cost=1.0,
            max_steps=self.episode_length,
        )
        return EnvParams(
            item_features=jnp.asarray(features),
            item_quality=jnp.zeros((num_items,), jnp.float32),
            item_appeal=jnp.zeros((num_items,), jnp.float32),
            # Nothing is hidden beyond the user type: the "interest" is the request.
            prototype_interests=jnp.asarray(requests),
            prototype_requests=jnp.asarray(requests[:, None, :]),
            prototype_log_weights=jnp.full((num_types,), -math.log(num_types), jnp.float32),
            # Same dtypes as registry.build_params, so probe params batch and vmap like any env's.
            **{
                name: jnp.asarray(numeric[name], jnp.int32 if name == "max_steps" else jnp.float32)
                for name in NUMERIC_OVERRIDES
            },
        )

    def _check_params(self, params: EnvParams) -> None:
        # Shapes are static, so this runs once per trace.
        if self.num_items(params) != self._num_items():
            raise InputError(
                f"{self.name} has {self._num_items()} items but params have {self.num_items(params)}; build params "
                "with env.default_params()."
            )
        if params.prototype_requests.shape[0] != self.num_user_types:
            raise InputError(
                f"{self.name} has {self.num_user_types} user type(s) but params have "
                f"{params.prototype_requests.shape[0]} prototypes; build params with env.default_params()."
            )

    def item_rewards(self, state: EnvState, params: EnvParams) -> jax.Array:
        """``(N,)`` float32 reward of showing each item in this state (0 once the episode is over)."""
        self._check_params(params)
        rewards = jnp.asarray(self._item_rewards(state), jnp.float32)
        return jnp.where(state.step < self.episode_length, rewards, 0.0)

    def item_utilities(self, state: EnvState, params: EnvParams) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(Q* undiscounted (N,), reward now (N,), zeros (N,))``: the runner ranks relevant items by the first."""
        rewards = self.item_rewards(state, params)
        return self.item_q_values(state, params, 1.0), rewards, jnp.zeros_like(rewards)

    def slate_utilities(
        self, state: EnvState, slate: jax.Array, params: EnvParams
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """:meth:`item_utilities` of the ``(k,)`` items of ``slate`` only."""
        utility, rewards, zeros = self.item_utilities(state, params)
        return utility[slate], rewards[slate], zeros[slate]

    def _best_slate(self, q_values: jax.Array) -> jax.Array:
        return jax.lax.top_k(q_values, self.slate_size)[1].astype(jnp.int32)

    def oracle_action(self, state: EnvState, params: EnvParams) -> jax.Array:
        """The action maximising the undiscounted return to go (reads the state: for checks and plots)."""
        best = self._best_slate(self.item_q_values(state, params, 1.0))
        return best[0] if self.slate_size == 1 else best

    def initial_state(self, user_type: jax.Array, params: EnvParams) -> EnvState:
        """The start state of a user of type ``user_type`` (``reset_env`` draws the type)."""
        user_type = jnp.asarray(user_type, jnp.int32)
        request = params.prototype_requests[user_type, 0]
        return EnvState(
            interest=params.prototype_interests[user_type],
            request=request,
            prototype=user_type,
            memory=jnp.zeros_like(request),
            budget=jnp.asarray(self.episode_length, jnp.float32),
            step=jnp.zeros((), jnp.int32),
            **empty_history(self.history_length, self.slate_size),
        )

    def pin_user(self, params: EnvParams, prototype: jax.Array) -> EnvParams:
        """``params`` whose users are all of type ``prototype``: the sampling weights on that type. A probe's user
        types index its value tables, so its population stays whole (a handful of types)."""
        weights = jnp.where(jnp.arange(self.num_user_types) == prototype, 0.0, -jnp.inf)
        return params.replace(prototype_log_weights=weights.astype(params.prototype_log_weights.dtype))

    def reset_env(self, key: chex.PRNGKey, params: EnvParams) -> tuple[dict, EnvState]:
        """A new episode of a user whose type is drawn from ``params.prototype_log_weights``."""
        self._check_params(params)
        user_type = jax.random.categorical(key, params.prototype_log_weights)
        state = self.initial_state(user_type, params)
        return self.get_obs(state, params), state

    def step_env(
        self, key: chex.PRNGKey, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[dict, EnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """One deterministic step without auto-reset (``key`` is unused)."""
        del key
        slate = jnp.reshape(jnp.asarray(action, jnp.int32), (self.slate_size,))
        shown = ~choice.mask_repeats(slate)
        rewards = self.item_rewards(state, params)
        slot_rewards = jnp.where(shown, rewards[slate], 0.0)
        reward = jnp.sum(slot_rewards)

        if self.track_regret:
            q_values = self.item_q_values(state, params, 1.0)
            best = self._best_slate(q_values)
            oracle_expected_reward = jnp.sum(rewards[best])
            # Repeats show fewer items, which beats top-k only with negative rewards; clip that case to 0.
            regret = jnp.maximum(jnp.sum(q_values[best]) - jnp.sum(jnp.where(shown, q_values[slate], 0.0)), 0.0)
        else:  # as RecEnv: no oracle
            best = jnp.full((self.slate_size,), -1, jnp.int32)
            oracle_expected_reward = regret = jnp.asarray(jnp.nan, jnp.float32)

        paying_slot = jnp.argmax(jnp.where(shown, slot_rewards, -jnp.inf)).astype(jnp.int32)
        clicked = slot_rewards[paying_slot] > 0.0
        clicked_slot = jnp.where(clicked, paying_slot, -1)
        feedback = jnp.where(clicked, jnp.clip(slot_rewards[paying_slot], 0.0, 1.0), 0.0).astype(jnp.float32)

        step = state.step + 1
        budget = jnp.asarray(self.episode_length - step, jnp.float32)
        next_state = state.replace(
            budget=budget,
            step=step,
            **state.pushed_history(slate, clicked_slot, feedback),
        )
        terminated = step >= self.episode_length
        truncated = jnp.logical_and(step >= params.max_steps, ~terminated)
        info = step_info(reward, oracle_expected_reward, regret, best, clicked_slot,
                         jnp.where(clicked, slate[paying_slot], -1), feedback, budget)
        return self.get_obs(next_state, params), next_state, reward, terminated, truncated, info

    def optimal_values(self, params: EnvParams, gamma: float) -> ProbeValues:
        """The exact ``Q*`` table over every reachable decision state, under discount ``gamma`` in [0, 1].

        Args:
            params: from :func:`make_probe` (or ``env.default_params()``).
            gamma: the agent's discount.

        Returns:
            :class:`ProbeValues` with the states, their observations (to feed an agent's network) and ``Q*``.
        """
        if not 0.0 <= gamma <= 1.0:
            raise InputError(f"gamma must be in [0, 1], got {gamma!r}.")
        return _optimal_values(self, params, jnp.asarray(gamma, jnp.float32))


@functools.partial(jax.jit, static_argnums=0)
def _optimal_values(env: ProbeEnv, params: EnvParams, gamma: jax.Array) -> ProbeValues:
    # Jitted: one compilation per probe instead of dozens of small eager ones.
    states, names = env._decision_states(params)
    q_values = jnp.stack([env.item_q_values(state, params, gamma) for state in states])
    best = jax.vmap(env._best_slate)(q_values)
    values = jnp.sum(jnp.take_along_axis(q_values, best, axis=1), axis=1)
    batched = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    return ProbeValues(
        observations=env.get_obs(batched, params),
        states=batched,
        q_values=q_values,
        values=values,
        optimal_actions=best[:, 0] if env.slate_size == 1 else best,
        names=names,
    )
