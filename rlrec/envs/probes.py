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

The probes subclass :class:`~rlrec.envs.probe_base.ProbeEnv`, a :class:`~rlrec.envs.recsys.RecEnv` on a
one-hot catalog (its observations, spaces, auto-reset and ``info`` keys), so agents and the runner take them
unchanged; ``ProbeEnv`` and ``ProbeValues`` are importable from here too. After the probe environments of Andy
Jones, "Debugging RL, Without the Agonizing Pain" (andyljones.com), as rejax uses them in its tests.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from rlrec.envs.probe_base import ProbeEnv, ProbeValues
from rlrec.envs.recsys import EnvParams, EnvState, display_name
from rlrec.errors import InputError

ITEM_A = 0  # two-step probe: pays nothing now, ``delayed_reward`` at the next step
ITEM_B = 1  # two-step probe: pays ``immediate_reward`` now, nothing later


def _check_finite(name: str, values: Any) -> None:
    if not np.all(np.isfinite(np.asarray(values, dtype=np.float64))):
        raise InputError(f"{name} must be finite, got {values!r}.")


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
            raise InputError(f"{field} must be a non-empty table with one value per item in each row, got {table!r}.")
        _check_finite(field, table)
        num_items = len(table[0])
        if self.slate_size > num_items:
            raise InputError(f"slate_size={self.slate_size} is larger than the catalog ({num_items} items).")
        for row in table:
            ranked = sorted(row, reverse=True)
            # A unique optimal slate (as a set): the k-th best value beats the (k+1)-th.
            if self.slate_size < num_items and ranked[self.slate_size - 1] == ranked[self.slate_size]:
                raise InputError(f"{field} {row!r} has no unique best slate of {self.slate_size}: tie in the values.")

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
    name: str = display_name("one-step")

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
    name: str = display_name("contextual-one-step")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "type_values", tuple(tuple(float(v) for v in row) for row in self.type_values))
        self._check_values("type_values")
        best = {tuple(sorted(np.argsort(row)[::-1][: self.slate_size])) for row in np.asarray(self.type_values)}
        if len(best) < 2:
            raise InputError(
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
    name: str = display_name("two-step")

    episode_length: ClassVar[int] = 2

    def __post_init__(self):
        super().__post_init__()
        if self.slate_size != 1:
            raise InputError(f"The two-step probe shows one item per step, got slate_size={self.slate_size}.")
        _check_finite("rewards", (self.immediate_reward, self.delayed_reward))
        if not 0.0 < self.immediate_reward < self.delayed_reward:
            raise InputError(
                "The two-step probe needs 0 < immediate_reward < delayed_reward (so that waiting pays for some "
                f"gamma < 1), got immediate_reward={self.immediate_reward}, delayed_reward={self.delayed_reward}."
            )
        if self.payoff_item not in (None, ITEM_A, ITEM_B):
            raise InputError(f"payoff_item must be None, {ITEM_A} or {ITEM_B}, got {self.payoff_item!r}.")

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
        raise InputError(f"Unknown probe {name!r}; choose one of {', '.join(PROBES)}.")
    cls = PROBES[name]
    valid = {field.name for field in dataclasses.fields(cls)} - {"choice_model"}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise InputError(f"Unknown override(s) {unknown} for probe {name!r}; valid overrides are {sorted(valid)}.")
    env = cls(**overrides)
    return env, env.default_params()


__all__ = ["ITEM_A", "ITEM_B", "PROBES", "ContextualOneStepProbe", "OneStepProbe", "ProbeEnv", "ProbeValues",
           "TwoStepProbe", "make_probe"]
