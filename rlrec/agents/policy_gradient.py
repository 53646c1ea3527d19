"""Policy gradients over a hierarchical item policy: PPO, and REINFORCE with a learnt baseline.

References: REINFORCE, Williams (1992); PPO, Schulman et al. (2017); GAE, Schulman et al. (2016).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from rlrec import _repr
from rlrec.agents import item_tree, networks, returns
from rlrec.agents.base import Transition, as_slate, hyperparameter
from rlrec.agents.deep import DeepAgent, flatten_leading, log_softmax_entropy, sample_by_cdf, shuffled
from rlrec.errors import InputError


class PGState(struct.PyTreeNode):
    params: nnx.State
    opt_state: Any
    tree: item_tree.ItemTree
    updates: jax.Array

    def __repr__(self) -> str:
        return _repr.fields_repr(self)


class PolicyGradient(DeepAgent):
    """Actor-critic policy gradient over a hierarchical item policy: PPO, or REINFORCE with a baseline.

    The policy picks a leaf of the item tree (:func:`~rlrec.agents.item_tree.build_item_tree`) by its
    centroid's score, then an item within the leaf (a slate: ``k`` items of that leaf without replacement,
    Plackett-Luce), all scored by the same user tower; the tower's value output is the critic (baseline).
    Advantages are generalised advantage estimates over each rollout (bootstrapped from the critic where a
    rollout or an episode is cut by truncation, not where the user left).

    - **PPO** (``clip > 0``): clipped surrogate over ``epochs`` passes of ``minibatches`` minibatches per rollout
      (the clip binds from the second minibatch on, once the policy has moved away from the rollout's).
    - **REINFORCE with a learnt baseline** (``clip = 0``, ``gae_lambda = 1``, one epoch, one minibatch):
      the policy gradient of Monte-Carlo returns minus the critic.
    """

    learns_from_rollouts = True  # rlrec.run's per-step updates do not fit; rlrec.train collects rollouts
    evaluate_greedily = False  # its policy is stochastic by design: evaluated as it acts
    acts_at_random = True  # samples its policy (greedy when deterministic)

    # Defaults tuned on MovieLens-Session-v0 (benchmarks/deep_rl.py, benchmarks/README.md): one pass of 8
    # minibatches at a higher learning rate learns as much per env step as several passes at a lower one, for
    # a fraction of the update's cost.
    rollout_length: int = hyperparameter(16, "steps of every user collected before each update", low=1, high=1e6)
    epochs: int = hyperparameter(1, "passes over each rollout", low=1, high=1e4)
    minibatches: int = hyperparameter(8, "minibatches per pass", low=1, high=1e7)
    learning_rate: float = hyperparameter(2e-3, "Adam step size", low=0.0, high=1.0, low_open=True)
    clip: float = hyperparameter(0.2, "PPO's ratio clip (0: no clipping, REINFORCE)", low=0.0, high=1e6)
    gae_lambda: float = hyperparameter(0.95, "GAE lambda (1: Monte Carlo returns)", low=0.0, high=1.0)
    value_coef: float = hyperparameter(0.5, "weight of the value loss", low=0.0, high=1e6)
    entropy_coef: float = hyperparameter(0.01, "weight of the entropy bonus", low=0.0, high=1e6)
    normalise_advantages: bool = hyperparameter(True, "standardise advantages per minibatch")
    max_grad_norm: float = hyperparameter(0.5, "gradient clipping by global norm", low=0.0, high=1e6, low_open=True)
    tree_leaves: int = hyperparameter(0, "leaves of the item tree (0: about sqrt(catalog size))", low=0, high=1e7)

    def check_rollout(self, num_users: int) -> None:
        batch = self.rollout_length * num_users
        if batch < self.minibatches:
            raise InputError(
                f"A rollout of {batch} transitions cannot be split into {self.minibatches} minibatches; use more users "
                "or fewer minibatches."
            )

    def init(self, key, env_params):
        params = self.init_network(key, env_params)
        return PGState(
            params=params,
            opt_state=self.optimiser().init(params),
            tree=item_tree.build_item_tree(env_params, min_leaf_size=self.slate_size, num_leaves=self.tree_leaves),
            updates=jnp.zeros((), jnp.int32),
        )

    def _slate_log_prob(self, item_log_probs, slots):
        """Plackett-Luce log-probability of the ordered ``slots`` (a single item when ``k == 1``), one user, from the
        log-softmax of the leaf's item logits (the first slot's distribution); later slots renormalise it without
        the items already shown."""
        log_prob = item_log_probs[slots[0]]
        log_probs = item_log_probs
        for slot in range(1, self.slate_size):
            log_probs = jax.nn.log_softmax(log_probs.at[slots[slot - 1]].set(item_tree.MASKED))
            log_prob = log_prob + log_probs[slots[slot]]
        return log_prob

    def item_probabilities(self, state: PGState, obs: dict, env_params) -> jax.Array:
        """``(N,)`` probability of each item being shown (first slot) for one observation: ``O(N d)``."""
        outputs, memory = self.tower(state.params, obs, env_params)
        head = networks.select_head(outputs, 0)
        tree = state.tree
        leaf_probs = jax.nn.softmax(item_tree.centroid_scores(tree, head, item_tree.centroid_similarity(tree, memory)))
        leaves = jnp.arange(tree.leaves.shape[0])
        every_leaf = jax.tree.map(lambda x: jnp.broadcast_to(x, leaves.shape + x.shape), (head, memory))
        similarity = item_tree.leaf_item_similarity(tree, every_leaf[1], leaves)
        item_probs = jax.nn.softmax(item_tree.leaf_item_scores(tree, every_leaf[0], similarity, leaves), axis=-1)
        joint = leaf_probs[:, None] * item_probs
        return jnp.zeros(env_params.item_features.shape[0]).at[tree.leaves].add(
            jnp.where(tree.leaves >= 0, joint, 0.0), mode="drop"
        )

    def value(self, state: PGState, obs: dict, env_params) -> jax.Array:
        """The critic's value of one observation."""
        return self.tower(state.params, obs, env_params)[0]["value"]

    def act_with_extras(self, key, state: PGState, obs, env_params):
        """One user's action: :meth:`act_batch` on a batch of one."""
        one = lambda x: x[None]  # noqa: E731
        action, extras = self.act_batch(one(key), state, jax.tree.map(one, obs), env_params)
        return jax.tree.map(lambda x: x[0], (action, extras))

    def act_batch(self, keys, state: PGState, obs, env_params):
        """Actions of a batch of users (``keys (B,)``, observations with a leading ``B`` axis).

        Extras: the log-probability and value the update needs, and what the update would otherwise recompute
        from the history on every epoch: the observation features and the boredom terms of the leaves and of
        the chosen leaf's items (none depends on the parameters).
        """
        features, memory = self.features(obs, env_params)
        outputs = networks.apply_tower(self.graph(env_params), state.params, features)
        head = networks.select_head(outputs, 0)
        tree = state.tree
        uniform = jax.vmap(lambda key: jax.random.uniform(key, (2,)))(keys)  # (B, 2): leaf, item
        leaf_similarity = item_tree.centroid_similarity(tree, memory)
        leaf_logits = item_tree.centroid_scores(tree, head, leaf_similarity)  # (B, C)
        if self.deterministic:
            leaf = jnp.argmax(leaf_logits, axis=-1)
        else:
            leaf = sample_by_cdf(uniform[:, 0], leaf_logits)
        item_similarity = item_tree.leaf_item_similarity(tree, memory, leaf)
        item_logits = item_tree.leaf_item_scores(tree, head, item_similarity, leaf)  # (B, L)
        if self.deterministic:
            _, slots = jax.lax.top_k(item_logits, self.slate_size)  # (B, k)
        elif self.slate_size == 1:
            slots = sample_by_cdf(uniform[:, 1], item_logits)[:, None]
        else:  # Gumbel top-k: k items without replacement, Plackett-Luce order
            gumbel = jax.vmap(lambda key: jax.random.gumbel(jax.random.fold_in(key, 1), item_logits.shape[1:]))(keys)
            _, slots = jax.lax.top_k(item_logits + gumbel, self.slate_size)
        leaf_log_prob = jnp.take_along_axis(jax.nn.log_softmax(leaf_logits), leaf[:, None], axis=-1)[:, 0]
        log_prob = leaf_log_prob + jax.vmap(self._slate_log_prob)(jax.nn.log_softmax(item_logits), slots)
        items = tree.leaves[leaf[:, None], slots].astype(jnp.int32)
        action = items[:, 0] if self.slate_size == 1 else items
        extras = {
            "log_prob": log_prob,
            "value": outputs["value"],
            "features": features,
            "leaf_similarity": leaf_similarity,
            "item_similarity": item_similarity,
        }
        return action, extras

    def _evaluate(self, params, tree, batch, env_params):
        """``(log-probability, entropy, value)`` of the taken actions ``batch["action"] (B, k)`` under ``params``."""
        outputs = networks.apply_tower(self.graph(env_params), params, batch["features"])
        head = networks.select_head(outputs, 0)
        actions = batch["action"]
        leaf = tree.leaf_of[actions[:, 0]]
        leaf_log_probs, leaf_entropy = log_softmax_entropy(
            item_tree.centroid_scores(tree, head, batch["leaf_similarity"])
        )  # (B, C), (B,)
        item_logits = item_tree.leaf_item_scores(tree, head, batch["item_similarity"], leaf)  # (B, L)
        item_log_probs, item_entropy = log_softmax_entropy(item_logits)
        slots = tree.slot_of[actions]
        log_prob = jnp.take_along_axis(leaf_log_probs, leaf[:, None], axis=-1)[:, 0] + jax.vmap(
            self._slate_log_prob
        )(item_log_probs, slots)
        # Entropy of the leaf choice plus that of the first item within the taken leaf.
        return log_prob, leaf_entropy + item_entropy, outputs["value"]

    def _policy_inputs(self, obs, actions, tree, env_params) -> dict[str, jax.Array]:
        """The parameter-free inputs of :meth:`_evaluate` for ``(T, B)`` observations and taken slates."""
        features, memory = self.features(obs, env_params)
        flat_memory, leaves = memory.reshape(-1, memory.shape[-1]), tree.leaf_of[actions[..., 0]].reshape(-1)
        item_similarity = item_tree.leaf_item_similarity(tree, flat_memory, leaves)
        return {
            "features": features,
            "leaf_similarity": item_tree.centroid_similarity(tree, memory),
            "item_similarity": item_similarity.reshape(memory.shape[:-1] + item_similarity.shape[-1:]),
        }

    def _next_values(self, params, transition: Transition, terminated, env_params) -> jax.Array:
        """The critic's ``(T, B)`` values of ``transition.next_obs`` (only used where the user did not leave).

        Where the user stayed, ``next_obs`` is the next step's observation, whose value the rollout already
        holds (``extras["value"]``, from the same parameters: the rollout is on-policy). The critic runs only
        where the rollout was cut (its last step) and where an episode was truncated. A user is truncated at
        most once per rollout when the rollout is no longer than ``max_steps``, so that is ``2 B`` observations
        instead of ``T B``; longer rollouts run the critic on every ``next_obs``. (rlrec's envs truncate only
        when ``step`` reaches ``max_steps``, and ``step`` restarts at 0 with each episode.) ``env_params`` is
        shared by all seeds, so the ``cond`` stays a branch under ``vmap``.
        """
        steps, users = transition.reward.shape
        values = transition.extras["value"]
        truncated = transition.done & ~terminated

        def every_step():
            return self.tower(params, transition.next_obs, env_params)[0]["value"]

        def where_cut():
            cut = jnp.argmax(truncated, axis=0)  # (B,) each user's truncated step, if any
            columns = jnp.arange(users)
            picked = jax.tree.map(lambda x: jnp.concatenate([x[steps - 1], x[cut, columns]]), transition.next_obs)
            critic = self.tower(params, picked, env_params)[0]["value"]
            following = jnp.concatenate([values[1:], critic[None, :users]])  # last step: its own next_obs
            return jnp.where(truncated, critic[None, users:], following)

        return jax.lax.cond(jnp.asarray(env_params.max_steps) >= steps, where_cut, every_step)

    def update(self, key, state: PGState, transition: Transition, env_params):
        if transition.reward.ndim != 2:
            raise InputError(
                f"{type(self).__name__}.update takes a rollout with (steps, users) leading axes; got reward of "
                f"shape {transition.reward.shape}. Train it with rlrec.train, which collects rollouts."
            )
        steps, users = transition.reward.shape
        terminated = transition.done if transition.terminated is None else transition.terminated
        values = transition.extras["value"]
        next_values = self._next_values(state.params, transition, terminated, env_params)
        not_terminated = 1.0 - terminated.astype(jnp.float32)
        deltas = transition.reward + self.gamma * not_terminated * next_values - values
        continues = 1.0 - transition.done.astype(jnp.float32)
        advantages = returns.generalised_advantages(deltas, continues, self.gamma, self.gae_lambda)
        targets = advantages + values

        # What does not depend on the parameters is computed once (when acting, see act_batch), not every epoch.
        actions = jax.vmap(jax.vmap(as_slate))(transition.action)
        inputs = ("features", "leaf_similarity", "item_similarity")
        if all(name in transition.extras for name in inputs):
            features = {name: transition.extras[name] for name in inputs}
        else:  # transitions not collected by act_batch
            features = self._policy_inputs(transition.obs, actions, state.tree, env_params)
        data = {
            **features,
            "action": actions,
            "log_prob": transition.extras["log_prob"],
            "advantage": advantages,
            "return": targets,
        }
        data = flatten_leading(data, 2)
        total = steps * users
        size = total // self.minibatches
        optimiser = self.optimiser()

        def loss_fn(params, batch):
            log_prob, entropy, value = self._evaluate(params, state.tree, batch, env_params)
            advantage = batch["advantage"]
            if self.normalise_advantages:
                advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
            ratio = jnp.exp(log_prob - batch["log_prob"])
            clipped = jnp.clip(ratio, 1.0 - self.clip, 1.0 + self.clip)
            use_clip = self.clip > 0
            surrogate = jnp.where(use_clip, jnp.minimum(ratio * advantage, clipped * advantage), ratio * advantage)
            policy_loss = -jnp.mean(surrogate)
            value_loss = 0.5 * jnp.mean((value - batch["return"]) ** 2)
            entropy = jnp.mean(entropy)
            loss = policy_loss + self.value_coef * value_loss - self.entropy_coef * entropy
            approx_kl = jnp.mean(batch["log_prob"] - log_prob)
            return loss, {
                "policy_loss": policy_loss,
                "value_loss": value_loss,
                "entropy": entropy,
                "approx_kl": approx_kl,
            }

        def minibatch_step(carry, indices):
            params, opt_state = carry
            batch = jax.tree.map(lambda x: x[indices], data)
            (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
            changes, opt_state = optimiser.update(grads, opt_state, params)
            return (optax.apply_updates(params, changes), opt_state), dict(metrics, loss=loss)

        def epoch(carry, epoch_key):
            order = shuffled(epoch_key, total)[: size * self.minibatches]
            return jax.lax.scan(minibatch_step, carry, order.reshape(self.minibatches, size))

        (params, opt_state), metrics = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(key, self.epochs)
        )
        metrics = {name: jnp.mean(value) for name, value in metrics.items()}
        return state.replace(params=params, opt_state=opt_state, updates=state.updates + 1), metrics
