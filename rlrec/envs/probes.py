"""Probe environments with exactly known optimal values, for debugging deep RL agents (DQN, PPO, REINFORCE).

Each probe isolates one thing an agent must get right, on a catalog of a handful of items, with deterministic
rewards, so the optimal action values ``Q*`` are exact numbers a test can compare learnt values to:

- ``one-step`` (:class:`OneStepProbe`): one step per episode; each item pays a fixed value. Tests that the
  value/policy head learns rewards at all (``Q*(s, i) = r_i``, no bootstrapping).
- ``contextual-one-step`` (:class:`ContextualOneStepProbe`): two user types with different requests, each
  with a different best item. Tests that the agent reads the observation.
- ``two-step`` (:class:`TwoStepProbe`): item A pays nothing now but ``delayed_reward`` at the next step,
  item B pays ``immediate_reward`` now and nothing later. Tests discounting and credit assignment:
  ``Q*(s0, A) = gamma * delayed_reward``, ``Q*(s0, B) = immediate_reward``, so a myopic agent picks B and a
  far-sighted one (``gamma > immediate_reward / delayed_reward``) picks A.

The probes subclass :class:`~rlrec.envs.recsys.RecEnv` and use its :class:`EnvParams`/:class:`EnvState`,
observation dict, spaces, auto-reset and ``info`` keys, so agents and the runner take them unchanged. The
catalog is one-hot: item ``i`` is ``e_i`` and user type ``p`` requests ``e_{N+p}`` (in ``d = N + P``
dimensions), orthogonal to every item, so no item feature or request leaks the answer; quality and appeal
are 0. The reward tables are static fields of the env (hashable tuples), like the slate size; ``params``
only carry what agents observe about the world. After the probe environments of Andy Jones, "Debugging RL,
Without the Agonizing Pain" (andyljones.com), as rejax uses them in its tests.
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

from rlrec.envs.recsys import EnvParams, EnvState, RecEnv
from rlrec.envs.registry import NUMERIC_OVERRIDES
from rlrec.simulators import choice

ITEM_A = 0  # two-step probe: pays nothing now, ``delayed_reward`` at the next step
ITEM_B = 1  # two-step probe: pays ``immediate_reward`` now, nothing later


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


def _check_finite(name: str, values: Any) -> None:
    if not np.all(np.isfinite(np.asarray(values, dtype=np.float64))):
        raise ValueError(f"{name} must be finite, got {values!r}.")


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
            raise ValueError(
                f"{self.name} has {self._num_items()} items but params have {self.num_items(params)}; build params "
                "with env.default_params()."
            )
        if params.prototype_requests.shape[0] != self.num_user_types:
            raise ValueError(
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
            history_items=jnp.full((self.history_length, self.slate_size), -1, jnp.int32),
            history_clicks=jnp.full((self.history_length,), -1, jnp.int32),
            history_feedback=jnp.zeros((self.history_length,), jnp.float32),
        )

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
            history_items=jnp.concatenate([state.history_items[1:], slate[None]], axis=0),
            history_clicks=jnp.concatenate([state.history_clicks[1:], clicked_slot[None]]),
            history_feedback=jnp.concatenate([state.history_feedback[1:], feedback[None]]),
        )
        terminated = step >= self.episode_length
        truncated = jnp.logical_and(step >= params.max_steps, ~terminated)
        info = {
            "expected_reward": reward,
            "oracle_expected_reward": oracle_expected_reward,
            "regret": regret,
            "oracle_slate": best,
            "clicked_slot": clicked_slot,
            "clicked_item": jnp.where(clicked, slate[paying_slot], -1),
            "satisfaction": feedback,
            "budget": budget,
        }
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
            raise ValueError(f"gamma must be in [0, 1], got {gamma!r}.")
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


# -- one step ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _OneStepProbe(ProbeEnv):
    """Shared code of the one-step probes: a table ``values[user_type][item]`` of rewards."""

    episode_length: ClassVar[int] = 1

    def _values(self) -> tuple[tuple[float, ...], ...]:
        raise NotImplementedError

    def _check_values(self, field: str) -> None:
        table = self._values()
        if not table or not table[0] or any(len(row) != len(table[0]) for row in table):
            raise ValueError(f"{field} must be a non-empty table with one value per item in each row, got {table!r}.")
        _check_finite(field, table)
        num_items = len(table[0])
        if self.slate_size > num_items:
            raise ValueError(f"slate_size={self.slate_size} is larger than the catalog ({num_items} items).")
        for row in table:
            ranked = sorted(row, reverse=True)
            # A unique optimal slate (as a set): the k-th best value beats the (k+1)-th.
            if self.slate_size < num_items and ranked[self.slate_size - 1] == ranked[self.slate_size]:
                raise ValueError(f"{field} {row!r} has no unique best slate of {self.slate_size}: tie in the values.")

    @property
    def num_user_types(self) -> int:
        return len(self._values())

    def _num_items(self) -> int:
        return len(self._values()[0])

    def _item_rewards(self, state: EnvState) -> jax.Array:
        return jnp.asarray(self._values(), jnp.float32)[state.prototype]

    def item_q_values(self, state: EnvState, params: EnvParams, gamma: float | jax.Array) -> jax.Array:
        del gamma  # nothing follows the only step
        return self.item_rewards(state, params)

    def _decision_states(self, params: EnvParams) -> tuple[list[EnvState], tuple[str, ...]]:
        states = [self.initial_state(user_type, params) for user_type in range(self.num_user_types)]
        names = ("start",) if len(states) == 1 else tuple(f"type {p}" for p in range(len(states)))
        return states, names


@dataclasses.dataclass(frozen=True)
class OneStepProbe(_OneStepProbe):
    """One step per episode; item ``i`` pays ``item_values[i]`` (on a slate: the sum over distinct items).

    ``Q*(s0, i) = item_values[i]`` for any discount; the optimal policy shows the best item (the top ``k``).
    Default: 4 items worth ``(0.25, 1.0, 0.5, 0.0)``, best item 1.
    """

    item_values: tuple[float, ...] = (0.25, 1.0, 0.5, 0.0)
    name: str = "one-step"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "item_values", tuple(float(v) for v in self.item_values))
        self._check_values("item_values")

    def _values(self) -> tuple[tuple[float, ...], ...]:
        return (self.item_values,)


@dataclasses.dataclass(frozen=True)
class ContextualOneStepProbe(_OneStepProbe):
    """One step per episode; a user of type ``p`` (drawn uniformly, seen only through its request) gets
    ``type_values[p][i]`` from item ``i``.

    ``Q*(type p, i) = type_values[p][i]``. Default: 2 items, type 0 wants item 0 and type 1 item 1
    (``((1, 0), (0, 1))``): an agent ignoring the request earns 0.5 per episode, a contextual one 1.
    """

    type_values: tuple[tuple[float, ...], ...] = ((1.0, 0.0), (0.0, 1.0))
    name: str = "contextual-one-step"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "type_values", tuple(tuple(float(v) for v in row) for row in self.type_values))
        self._check_values("type_values")
        best = {tuple(sorted(np.argsort(row)[::-1][: self.slate_size])) for row in np.asarray(self.type_values)}
        if len(best) < 2:
            raise ValueError(
                f"type_values {self.type_values!r} give every user type the same best slate, so the request would "
                "not matter; give at least two types different best items."
            )

    def _values(self) -> tuple[tuple[float, ...], ...]:
        return self.type_values


# -- two steps, delayed reward -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TwoStepProbe(ProbeEnv):
    """Two steps per episode and two items, A (``ITEM_A = 0``) and B (``ITEM_B = 1``); single items only.

    Step 0: A pays 0, B pays ``immediate_reward``. Step 1: after A, ``delayed_reward`` for showing
    ``payoff_item`` (``None``: any item); after B, nothing. The step-1 state shows which item came first in
    ``history_items[-1, 0]`` and ``step == 1``. With discount ``gamma``::

        Q*(start, A) = gamma * delayed_reward      Q*(start, B) = immediate_reward
        Q*(after A, i) = delayed_reward  (0 for i != payoff_item)      Q*(after B, i) = 0

    so A is optimal iff ``gamma > immediate_reward / delayed_reward`` (0.5 by default) while a myopic agent
    (``gamma = 0``) picks B.
    """

    immediate_reward: float = 0.5
    delayed_reward: float = 1.0
    payoff_item: int | None = None
    name: str = "two-step"

    episode_length: ClassVar[int] = 2

    def __post_init__(self):
        super().__post_init__()
        if self.slate_size != 1:
            raise ValueError(f"The two-step probe shows one item per step, got slate_size={self.slate_size}.")
        _check_finite("rewards", (self.immediate_reward, self.delayed_reward))
        if not 0.0 < self.immediate_reward < self.delayed_reward:
            raise ValueError(
                "The two-step probe needs 0 < immediate_reward < delayed_reward (so that waiting pays for some "
                f"gamma < 1), got immediate_reward={self.immediate_reward}, delayed_reward={self.delayed_reward}."
            )
        if self.payoff_item not in (None, ITEM_A, ITEM_B):
            raise ValueError(f"payoff_item must be None, {ITEM_A} or {ITEM_B}, got {self.payoff_item!r}.")

    def _num_items(self) -> int:
        return 2

    def _payoff_rewards(self) -> jax.Array:
        """``(2,)`` step-1 rewards after A."""
        if self.payoff_item is None:
            return jnp.full((2,), self.delayed_reward, jnp.float32)
        return jnp.zeros((2,), jnp.float32).at[self.payoff_item].set(self.delayed_reward)

    def _item_rewards(self, state: EnvState) -> jax.Array:
        at_start = jnp.asarray([0.0, self.immediate_reward], jnp.float32)
        after_a = jnp.where(state.history_items[-1, 0] == ITEM_A, self._payoff_rewards(), 0.0)
        return jnp.where(state.step == 0, at_start, after_a)

    def item_q_values(self, state: EnvState, params: EnvParams, gamma: float | jax.Array) -> jax.Array:
        start = jnp.stack([jnp.asarray(gamma * self.delayed_reward), jnp.asarray(self.immediate_reward)])
        start = start.astype(jnp.float32)
        return jnp.where(state.step == 0, start, self.item_rewards(state, params))

    def _decision_states(self, params: EnvParams) -> tuple[list[EnvState], tuple[str, ...]]:
        start = self.initial_state(0, params)
        after = [self.step_env(None, start, item, params)[1] for item in (ITEM_A, ITEM_B)]  # steps need no key
        return [start, *after], ("start", "after A", "after B")


# -- by name ---------------------------------------------------------------------------------------------------

PROBES: dict[str, type[ProbeEnv]] = {
    "one-step": OneStepProbe,
    "contextual-one-step": ContextualOneStepProbe,
    "two-step": TwoStepProbe,
}


def make_probe(name: str, **overrides: Any) -> tuple[ProbeEnv, EnvParams]:
    """A probe environment and its parameters by name.

    Args:
        name: one of ``PROBES`` (``"one-step"``, ``"contextual-one-step"``, ``"two-step"``).
        **overrides: fields of the probe class: ``slate_size``, ``history_length`` and the probe's reward
            table (``item_values``, ``type_values``, ``immediate_reward``/``delayed_reward``/``payoff_item``).

    Returns:
        ``(env, params)``.

    Raises:
        ValueError: unknown name or override, or an invalid value.
    """
    if name not in PROBES:
        raise ValueError(f"Unknown probe {name!r}; choose one of {', '.join(PROBES)}.")
    cls = PROBES[name]
    valid = {field.name for field in dataclasses.fields(cls)} - {"choice_model"}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"Unknown override(s) {unknown} for probe {name!r}; valid overrides are {sorted(valid)}.")
    env = cls(**overrides)
    return env, env.default_params()
