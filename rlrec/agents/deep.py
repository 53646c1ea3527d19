"""Deep RL agents' shared parts: the :class:`DeepAgent` base (a user tower over item features) and helpers.

The algorithms live one per file: :mod:`rlrec.agents.dqn` (DQN, SlateQ) and :mod:`rlrec.agents.policy_gradient`
(PPO, REINFORCE with a baseline); their returns (n-step, GAE) in :mod:`rlrec.agents.returns`. Same API as the
bandits (``init / act / update``), plus ``rollout_length`` (steps of a batch of users a training loop collects
before each ``update``) and ``act_with_extras`` (what the update needs back, e.g. log-probabilities).
``update`` takes transitions with leading ``(T, B)`` axes. All networks score items as a user tower dotted
with item features (:mod:`rlrec.agents.networks`), so they serve any catalog size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from rlrec.agents import item_tree, networks
from rlrec.agents.base import Agent, hyperparameter, internal


class DeepAgent(Agent):
    """Shared configuration of the deep agents (network size, optimiser, discount)."""

    hidden: int = hyperparameter(64, "width of the user tower's hidden layers", low=1, high=1e5)
    rollout_length: int = hyperparameter(1, "steps of every user collected before each update", low=1, high=1e6)
    deterministic: bool = internal(False, "greedy actions (evaluation: Frozen.of(..., deterministic=True))")
    learning_rate: float = hyperparameter(3e-4, "Adam step size", low=0.0, high=1.0, low_open=True)
    max_grad_norm: float = hyperparameter(10.0, "gradient clipping by global norm", low=0.0, high=1e6, low_open=True)
    gamma: float = hyperparameter(0.95, "discount factor", low=0.0, high=1.0)
    history_decay: float = hyperparameter(0.8, "decay of the history summary the tower reads", low=0.0, high=1.0)

    num_heads = 1

    def graph(self, env_params) -> nnx.GraphDef:
        return networks.graphdef(*networks.tower_dims(env_params), self.hidden, self.num_heads)

    def init_network(self, key, env_params) -> nnx.State:
        return networks.init_tower(key, *networks.tower_dims(env_params), self.hidden, self.num_heads)

    def optimiser(self) -> optax.GradientTransformation:
        return optax.chain(optax.clip_by_global_norm(self.max_grad_norm), optax.adam(self.learning_rate))

    def features(self, obs: dict, env_params) -> tuple[jax.Array, jax.Array]:
        """``(features, memory)`` of observations with any leading batch shape (parameter-free)."""
        batch_shape = obs["progress"].shape[:-1]
        one = lambda o: networks.observation_features(o, env_params, self.history_decay)  # noqa: E731
        if not batch_shape:
            return one(obs)
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[len(batch_shape) :]), obs)
        # In blocks (XLA's CPU backend materialises whole gathers; in blocks the gathered histories stay in cache).
        features, memory = item_tree.in_blocks(one, flat, FEATURE_CHUNK)
        return jax.tree.map(lambda x: x.reshape(batch_shape + x.shape[1:]), (features, memory))

    def tower(self, params: nnx.State, obs: dict, env_params) -> tuple[dict, jax.Array]:
        """Tower outputs and history memory for observations with any leading batch shape."""
        features, memory = self.features(obs, env_params)
        return networks.apply_tower(self.graph(env_params), params, features), memory

    def act(self, key, state, obs, env_params):
        return self.act_with_extras(key, state, obs, env_params)[0]

    def act_with_extras(self, key, state, obs, env_params):
        # Agent.act_with_extras calls act, and act above calls this: a deep agent must define it.
        raise NotImplementedError(f"{type(self).__name__} must define act_with_extras (DeepAgent.act calls it).")


# Observations featurised per block by DeepAgent.features: in blocks, the gathered histories stay in the CPU
# caches.
FEATURE_CHUNK = 256


def sample_by_cdf(uniform: jax.Array, logits: jax.Array) -> jax.Array:
    """One draw per row of ``softmax(logits)`` (``(B, M)``) by the inverse CDF of ``uniform`` ``(B,)`` in [0, 1).

    Why not ``jax.random.categorical``: it draws a Gumbel per option (threefry's rounds for each of the 199
    options of a 9k-item tree, costly on a CPU); this needs one uniform.
    The first option whose CDF exceeds ``uniform`` times the total mass: never one of probability 0.
    """
    cdf = jnp.cumsum(jax.nn.softmax(logits, axis=-1), axis=-1)
    return jnp.argmax(cdf > uniform[:, None] * cdf[:, -1:], axis=-1).astype(jnp.int32)


def log_softmax_entropy(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(log_softmax(logits), entropy of softmax(logits))`` along the last axis, with one ``exp``.

    Same values as ``jax.nn.log_softmax`` and ``-sum(exp(log_p) * log_p)``, which evaluate ``exp`` twice over the
    whole array, forward and again in the backward pass (XLA does not merge them); PPO's update does this for
    every leaf and item logit of every minibatch. Masked logits (``item_tree.MASKED``) get probability 0 and add
    nothing to the entropy or its gradient.
    """
    shifted = logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    unnormalised = jnp.exp(shifted)
    total = jnp.sum(unnormalised, axis=-1)
    log_total = jnp.log(total)
    entropy = log_total - jnp.sum(unnormalised * shifted, axis=-1) / total
    return shifted - log_total[..., None], entropy


def shuffled(key: jax.Array, size: int) -> jax.Array:
    """A random ordering of ``range(size)`` from one sort of ``uint32`` keys: random high bits, the index below.

    Why not ``jax.random.permutation``: on XLA's CPU backend it sorts (key, value) pairs in several rounds,
    far slower than the one sort of :func:`~rlrec.agents.item_tree.packed_argsort`, and PPO shuffles every
    epoch. Indices whose random bits tie (about ``size^2 / 2^(33 - log2 size)`` pairs, e.g. 500 of 16k) keep
    their relative order; they are neighbours in the result, so they share a minibatch either way.
    """
    index_bits = max(size - 1, 1).bit_length()
    if index_bits > 24:  # too few random bits left
        return jax.random.permutation(key, size)
    random_bits = 32 - index_bits
    return item_tree.packed_argsort(jax.random.bits(key, (size,), jnp.uint32) >> index_bits, random_bits)


def flatten_leading(tree, leading: int):
    """Merges the first ``leading`` axes of every leaf (a ``(T, B)`` rollout into ``T * B`` rows)."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[leading:]), tree)
