"""The agent API shared by bandits and deep RL agents.

An agent is a small immutable pytree (``flax.struct.PyTreeNode``): static configuration (sizes, code paths)
in fields marked ``pytree_node=False``, hyperparameters that do not fix shapes as leaves, so a population of
configurations vmaps. Three pure functions::

    state = agent.init(key, env_params)
    action = agent.act(key, state, obs, env_params)
    state, metrics = agent.update(key, state, transition, env_params)

Training loops and shared-mode runs call ``agent.act_batch(keys, state, obs, env_params)`` for a batch of users
served by one learner: by default ``act_with_extras`` under ``vmap``; agents override it where a batch is
cheaper as a whole (PPO groups users by the item-tree leaf they pick).
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Transition:
    """What one step taught the agent, for one user.

    Attributes:
        obs: observation the action was chosen from.
        action: int32 ``()`` or ``(k,)``, the item or slate shown.
        reward: float32 ``()``, 1 for a click.
        slot_rewards: float32 ``(k,)``, 1 in the clicked slot, else 0 (per-item feedback on a slate).
        next_obs: observation after the step (of the next user after an auto-reset).
        done: bool ``()``, the episode ended (terminated or truncated).
        terminated: bool ``()``, the user left (no bootstrapping from ``next_obs``); ``None`` when the
            caller does not tell truncation apart (bandits do not need it).
        extras: what the agent's ``act_with_extras`` returned with the action (e.g. log-probability and
            value for policy-gradient agents); empty for bandits.
    """

    obs: dict
    action: jax.Array
    reward: jax.Array
    slot_rewards: jax.Array
    next_obs: dict
    done: jax.Array
    terminated: jax.Array | None = None
    extras: dict = struct.field(default_factory=dict)


def as_slate(action: jax.Array) -> jax.Array:
    """An item index or a slate as a ``(k,)`` int32 slate."""
    return jnp.atleast_1d(jnp.asarray(action, jnp.int32))


def slot_rewards(clicked_slot: jax.Array, slate_size: int) -> jax.Array:
    """``(k,)`` one-hot of the clicked slot (all zeros for no click)."""
    return (jnp.arange(slate_size) == clicked_slot).astype(jnp.float32)


def bandit_features(env_params: Any) -> jax.Array:
    """``(N, d + 2)`` item features for linear bandits: the item embedding, its quality and its appeal.

    These are exactly the item attributes the simulated user's click utility is built from, so a linear
    model can represent any user (up to the choice model's non-linearity).
    """
    return jnp.concatenate(
        [env_params.item_features, env_params.item_quality[:, None], env_params.item_appeal[:, None]], axis=1
    )


def top_k_slate(scores: jax.Array, slate_size: int) -> jax.Array:
    """The ``slate_size`` best-scoring items, best first (scalar item when ``slate_size == 1``)."""
    chex.assert_rank(scores, 1)
    _, items = jax.lax.top_k(scores, slate_size)
    items = items.astype(jnp.int32)
    return items[0] if slate_size == 1 else items


def random_slate(key: chex.PRNGKey, num_items: int, slate_size: int) -> jax.Array:
    """A uniformly random slate of distinct items (scalar item when ``slate_size == 1``).

    Top-k of i.i.d. uniform scores: distinct by construction and O(N) (``jax.random.choice`` without
    replacement sorts the whole catalog).
    """
    if slate_size == 1:
        return jax.random.randint(key, (), 0, num_items, dtype=jnp.int32)
    return top_k_slate(jax.random.uniform(key, (num_items,)), slate_size)


class Agent(struct.PyTreeNode):
    """Base class: subclasses define ``init``, ``act`` and ``update``.

    ``slate_size`` is static (it fixes the action shape); set it from the env (``env.slate_size``).
    """

    slate_size: int = struct.field(pytree_node=False, default=1)
    label: str = struct.field(pytree_node=False, default="")

    @property
    def name(self) -> str:
        """Name shown in tables and plots: the registry name when built by ``make_agent``."""
        return self.label or type(self).__name__

    reads_hidden_state = False  # only the oracle does; the runner hands it the env state

    def init(self, key: chex.PRNGKey, env_params: Any) -> Any:
        return ()

    def act(self, key: chex.PRNGKey, state: Any, obs: dict, env_params: Any) -> jax.Array:
        raise NotImplementedError

    def act_with_extras(self, key: chex.PRNGKey, state: Any, obs: dict, env_params: Any) -> tuple[jax.Array, dict]:
        """The action and what the agent wants back in ``Transition.extras`` (training loops call this)."""
        return self.act(key, state, obs, env_params), {}

    def act_batch(self, keys: chex.PRNGKey, state: Any, obs: dict, env_params: Any) -> tuple[jax.Array, dict]:
        """:meth:`act_with_extras` for a batch of users sharing ``state`` (``keys`` and ``obs`` lead with ``B``).

        Training loops call this; agents override it when a batch is cheaper than ``B`` separate users.
        """
        return jax.vmap(self.act_with_extras, in_axes=(0, None, 0, None))(keys, state, obs, env_params)

    def update(self, key: chex.PRNGKey, state: Any, transition: Transition, env_params: Any) -> tuple[Any, dict]:
        return state, {}


class Frozen(Agent):
    """A trained agent that no longer learns: ``init`` returns ``state``, ``update`` changes nothing.

    Use it to evaluate a trained learner with :func:`rlrec.run` (``Frozen.of(agent, state)``).
    """

    agent: Any = None
    state: Any = None

    @classmethod
    def of(cls, agent: Agent, state: Any, deterministic: bool | None = None) -> "Frozen":
        """Freezes ``agent`` at ``state``; ``deterministic`` overrides its action noise when it has one."""
        if deterministic is not None and hasattr(agent, "deterministic"):
            agent = agent.replace(deterministic=deterministic)
        return cls(slate_size=agent.slate_size, label=agent.name, agent=agent, state=state)

    def init(self, key, env_params):
        return self.state

    def act(self, key, state, obs, env_params):
        return self.agent.act(key, state, obs, env_params)

    def act_batch(self, keys, state, obs, env_params):
        return self.agent.act_batch(keys, state, obs, env_params)
