"""DQN (double DQN, n-step returns, a target network, flashbax replay, an epsilon schedule) and, on slates,
SlateQ: the slate's value decomposed over its items by the user's choice model.

References: DQN, Mnih et al. (2015); double DQN, van Hasselt et al. (2016); SlateQ, Ie et al. (2019)
"SlateQ: a tractable decomposition for reinforcement learning with recommendation sets".
"""

from __future__ import annotations

from typing import Any

import flashbax
import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from rlrec import _repr
from rlrec.agents import item_tree, networks, returns
from rlrec.agents.base import Transition, as_slate, from_env, hyperparameter, random_slate
from rlrec.agents.deep import DeepAgent, flatten_leading
from rlrec.envs.recsys import HISTORY_LENGTH, bandit_features, blank_observation
from rlrec.errors import InputError

# SlateQ's click logits are clipped to +-LOGIT_CLIP: the weights exp(logit - max) and exp(-max) then stay finite
# in float32 (exp overflows past 88), and sigmoid(30) is already 1 there.
LOGIT_CLIP = 30.0


class DQNState(struct.PyTreeNode):
    params: nnx.State
    target_params: nnx.State
    opt_state: Any
    buffer: Any  # flashbax item buffer state
    env_steps: jax.Array  # transitions seen (drives the epsilon schedule)
    updates: jax.Array  # gradient steps taken
    tree: item_tree.ItemTree  # for the beam-search argmax

    def __repr__(self) -> str:
        return _repr.fields_repr(self)


class DQN(DeepAgent):
    """Double DQN with a target network, a replay buffer (flashbax) and a linear epsilon schedule.

    Single items: ``Q(s, i)`` is the tower's score of item ``i``; the greedy action is the best-scoring item
    (searched in the ``beam`` best leaves of the item tree, or the whole catalog with ``beam=0``), and the target
    is ``r + gamma Q_target(s', argmax_i Q(s', i))`` (bootstrapped on truncation, not when the user left).

    Slates (``slate_size > 1``, or ``decomposed=True``): **SlateQ**. Two heads score every item: ``Qbar(s, i)``, the
    long-term value of the user clicking ``i``, and ``v(s, i)``, a click logit (a learnt multinomial-logit choice
    model with a no-click option of logit 0, fitted by maximum likelihood on the observed clicks). The tower's value
    output is the long-term value of no click. ``Q(s, A) = P(none | A) V_none(s) + sum_i P(i | A) Qbar(s, i)``; the
    slate shown maximises it exactly (Dinkelbach's method, see :meth:`_select`; not SlateQ's top-k heuristic, which
    favours clickbait); ``Qbar`` learns only from the clicked item, with the next slate chosen greedily by the
    online network (double Q).
    """

    # Defaults tuned on MovieLens-Session-v0 (benchmarks/deep_rl.py, benchmarks/README.md), where the value of
    # keeping a user (budget, hence session length) shows only several steps after the choice and the budget
    # is hidden: long rollouts with 10-step returns, gamma 0.99, 8 gradient steps per rollout at learning rate
    # 1e-3, and epsilon down to 0.01 (a uniformly random item wastes a step of the user's budget, and every
    # 10-step return containing one is biased low).
    rollout_length: int = hyperparameter(16, "steps of every user collected before each update", low=1, high=1e6)
    buffer_size: int = hyperparameter(50_000, "replay buffer capacity (transitions)", low=1, high=1e9)
    batch_size: int = hyperparameter(256, "transitions per gradient step", low=1, high=1e7)
    gradient_steps: int = hyperparameter(8, "gradient steps per rollout", low=1, high=1e5)
    learning_starts: int = hyperparameter(1_000, "transitions before learning starts", low=0, high=1e12, static=False)
    target_tau: float = hyperparameter(0.005, "Polyak rate of the target network per gradient step (0: copies)",
                                       low=0.0, high=1.0)
    target_period: int = hyperparameter(250, "gradient steps between target copies when target_tau is 0",
                                        low=1, high=1e9, static=False)
    epsilon_start: float = hyperparameter(1.0, "exploration rate at the start", low=0.0, high=1.0)
    epsilon_end: float = hyperparameter(0.01, "exploration rate after the decay", low=0.0, high=1.0)
    epsilon_decay_steps: float = hyperparameter(50_000.0, "transitions over which epsilon decays linearly", low=0.0,
                                                high=1e12, low_open=True)
    click_loss_weight: float = hyperparameter(1.0, "weight of SlateQ's click-model loss", low=0.0, high=1e6)
    learning_rate: float = hyperparameter(1e-3, "Adam step size", low=0.0, high=1.0, low_open=True)
    gamma: float = hyperparameter(0.99, "discount factor", low=0.0, high=1.0)
    # SlateQ decomposition (required for slates; optional for single items, where it factors Q(s, i) into a
    # learnt click probability and the value of a click).
    decomposed: bool = hyperparameter(False, "SlateQ decomposition (required for slates)")
    # Greedy actions (acting and the double-DQN target) search the best `beam` leaves of the item tree:
    # O((C + beam L) d) instead of O(N d) per user; 0: exact argmax over the whole catalog.
    beam: int = hyperparameter(8, "item-tree leaves searched for greedy actions (0: the whole catalog)", low=0,
                               high=1e6)
    # n-step returns, computed within each rollout of rollout_length steps (1: one-step TD). Uncorrected for
    # exploration, as in Rainbow: slightly biased toward the behaviour policy, much faster credit assignment.
    n_step: int = hyperparameter(10, "steps of the n-step return (1: one-step TD)", low=1, high=1e6)
    history_length: int = from_env(HISTORY_LENGTH)  # the env's: the replay buffer stores observations of its layout
    # SlateQ slates (k > 1): Dinkelbach iterations of the exact slate argmax (each one a top-k; it converges
    # in a handful).
    dinkelbach_steps: int = hyperparameter(4, "iterations of SlateQ's exact slate argmax", low=1, high=1e4)

    @property
    def num_heads(self) -> int:  # type: ignore[override]
        return 2 if self.decomposed else 1

    def __post_init__(self):
        if self.slate_size > 1 and not self.decomposed:
            raise InputError(
                "A Q-function over whole slates is combinatorial; slates need the SlateQ decomposition "
                "(decomposed=True, the default of the 'slateq' agent)."
            )

    evaluate_greedily = True  # its exploration is epsilon-greedy: evaluation shows what it learnt, greedily
    acts_at_random = True  # epsilon-greedy exploration (greedy when deterministic)

    @classmethod
    def env_defaults(cls, env) -> dict:
        return {"decomposed": True} if env.slate_size > 1 else {}  # slates need SlateQ

    def check_rollout(self, num_users: int) -> None:
        batch = self.rollout_length * num_users
        if batch > self.buffer_size:
            raise InputError(
                f"A rollout of {batch} transitions ({self.rollout_length} steps x {num_users} users) does not fit in "
                f"the replay buffer of {self.buffer_size}; use buffer_size >= {batch} or fewer users."
            )

    def _buffer(self):
        return flashbax.make_item_buffer(
            max_length=self.buffer_size, min_length=self.batch_size, sample_batch_size=self.batch_size, add_batches=True
        )

    def init(self, key, env_params):
        params = self.init_network(key, env_params)
        example = self._example_item(env_params)
        return DQNState(
            params=params,
            target_params=params,
            opt_state=self.optimiser().init(params),
            buffer=self._buffer().init(example),
            env_steps=jnp.zeros((), jnp.int32),
            updates=jnp.zeros((), jnp.int32),
            tree=item_tree.build_item_tree(env_params, min_leaf_size=self.slate_size),
        )

    def _example_item(self, env_params):
        # One stored transition (the replay buffer's item layout), built from shapes.
        obs = blank_observation(env_params.item_features.shape[1], self.history_length, self.slate_size)
        return {
            "obs": obs,
            "action": jnp.zeros((self.slate_size,), jnp.int32),
            "reward": jnp.zeros((), jnp.float32),
            "slot_rewards": jnp.zeros((self.slate_size,), jnp.float32),
            "next_obs": obs,
            "discount": jnp.zeros((), jnp.float32),
        }

    def epsilon(self, state: DQNState) -> jax.Array:
        progress = jnp.clip(state.env_steps / self.epsilon_decay_steps, 0.0, 1.0)
        return self.epsilon_start + (self.epsilon_end - self.epsilon_start) * progress

    def _item_scores(self, outputs, memory, env_params, tree=None) -> jax.Array:
        """``(heads, M)`` scores of every item of the catalog (with ``tree``: of every leaf centroid)."""
        if tree is not None:
            features, embeddings = tree.centroid_features, tree.centroid_embeddings
        else:
            features, embeddings = bandit_features(env_params), env_params.item_features
        return jnp.stack(
            [
                networks.score_items(networks.select_head(outputs, h), features, embeddings, memory)
                for h in range(self.num_heads)
            ]
        )

    def _select(
        self, scores: jax.Array, none_value: jax.Array, valid: jax.Array | None = None
    ) -> jax.Array:
        """``(k,)`` positions of the greedy slate among candidates with ``(heads, M)`` scores.

        Plain DQN: the top-k of ``Q``. SlateQ: the slate maximising ``Q(s, A) = (sum_A w_i Qbar_i + V_none) /
        (sum_A w_i + 1)`` with ``w_i = exp(v_i)`` (the multinomial logit with a no-click option of logit 0),
        found by Dinkelbach's method: ``A <- top-k of w_i (Qbar_i - lambda)``, ``lambda <- Q(s, A)``.
        For ``k = 1`` that is ``argmax sigmoid(v_i) (Qbar_i - V_none)``, computed directly.

        Why not SlateQ's top-k heuristic (rank by ``w_i Qbar_i``: one Dinkelbach step from ``lambda = 0``): it
        ignores that, next to a no-click option, the click probability saturates, so a large click logit
        (clickbait) outweighs any difference in ``Qbar``; for ``k = 1`` it is not even the argmax of SlateQ's own
        ``Q(s, i)``. Dinkelbach's iterations increase ``lambda`` monotonically and stop at the maximiser in a few
        steps (``dinkelbach_steps``; checked against brute force in tests/test_deep_agents.py), and it is the
        argmax the double-Q target assumes.
        """
        valid = jnp.ones(scores.shape[1], bool) if valid is None else valid
        if not self.decomposed:
            return jax.lax.top_k(jnp.where(valid, scores[0], -jnp.inf), self.slate_size)[1]
        value, logit = scores[0], jnp.clip(scores[1], -LOGIT_CLIP, LOGIT_CLIP)
        if self.slate_size == 1:
            gain = jax.nn.sigmoid(logit) * (value - none_value)
            return jax.lax.top_k(jnp.where(valid, gain, -jnp.inf), 1)[1]
        weight = jnp.exp(logit - jnp.max(jnp.where(valid, logit, -LOGIT_CLIP)))  # rescaled: the no-click weight too
        none_weight = jnp.exp(-jnp.max(jnp.where(valid, logit, -LOGIT_CLIP)))

        def step(_, carry):
            slate_value, _ = carry
            _, chosen = jax.lax.top_k(jnp.where(valid, weight * (value - slate_value), -jnp.inf), self.slate_size)
            w = weight[chosen]
            return (jnp.sum(w * value[chosen]) + none_weight * none_value) / (jnp.sum(w) + none_weight), chosen

        first = jnp.zeros((self.slate_size,), jnp.int32)
        _, chosen = jax.lax.fori_loop(0, self.dinkelbach_steps, step, (none_value, first))
        return chosen

    def _greedy(self, outputs, memory, env_params, tree) -> jax.Array:
        """The greedy item or slate: exact over the catalog (``beam == 0``), or a beam search of the item tree."""
        none_value = outputs["value"]
        if self.beam == 0:
            scores = self._item_scores(outputs, memory, env_params)
            chosen = self._select(scores, none_value).astype(jnp.int32)
            return chosen[0] if self.slate_size == 1 else chosen
        beam = min(self.beam, tree.leaves.shape[0])
        # Leaves ranked as single items by their centroid's scores (for SlateQ: the k = 1 criterion).
        centroid = self._item_scores(outputs, memory, env_params, tree=tree)
        if self.decomposed:
            leaf_rank = jax.nn.sigmoid(jnp.clip(centroid[1], -LOGIT_CLIP, LOGIT_CLIP)) * (centroid[0] - none_value)
        else:
            leaf_rank = centroid[0]
        _, leaves = jax.lax.top_k(leaf_rank, beam)
        members = tree.leaves[leaves].reshape(-1)
        head_scores = jnp.stack(
            [
                networks.score_items(
                    networks.select_head(outputs, h),
                    tree.leaf_features[leaves].reshape(members.shape[0], -1),
                    tree.leaf_embeddings[leaves].reshape(members.shape[0], -1),
                    memory,
                )
                for h in range(self.num_heads)
            ]
        )
        best = self._select(head_scores, none_value, members >= 0)
        items = members[best].astype(jnp.int32)
        return items[0] if self.slate_size == 1 else items

    def q_values(self, state: DQNState, obs: dict, env_params) -> jax.Array:
        """``(N,)`` Q-values of every item for one observation (SlateQ: ``Qbar``, the value of a click)."""
        outputs, memory = self.tower(state.params, obs, env_params)
        return self._item_scores(outputs, memory, env_params)[0]

    def act_with_extras(self, key, state, obs, env_params):
        outputs, memory = self.tower(state.params, obs, env_params)
        if self.deterministic:
            return self._greedy(outputs, memory, env_params, state.tree), {}
        explore_key, random_key, _ = jax.random.split(key, 3)  # the third is unused
        greedy = self._greedy(outputs, memory, env_params, state.tree)
        random = random_slate(random_key, env_params.item_features.shape[0], self.slate_size)
        explore = jax.random.uniform(explore_key) < self.epsilon(state)
        return jnp.where(explore, random, greedy), {}

    # learning

    def _values_of(self, params, obs, actions, env_params) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(scores (B, heads, k), no-click value (B,), memory)`` of the shown items."""
        outputs, memory = self.tower(params, obs, env_params)
        features = bandit_features(env_params)[actions]  # (B, k, d + 2)
        embeddings = env_params.item_features[actions]

        def one(out, mem, feat, emb):
            return jnp.stack(
                [networks.score_items(networks.select_head(out, h), feat, emb, mem) for h in range(self.num_heads)]
            )

        return jax.vmap(one)(outputs, memory, features, embeddings), outputs["value"]

    def _next_value(self, params, target_params, next_obs, env_params, tree) -> jax.Array:
        """Double-Q value of the next states: greedy action(s) by the online net, valued by the target net."""
        outputs, memory = self.tower(params, next_obs, env_params)
        greedy = jax.vmap(lambda o, m: as_slate(self._greedy(o, m, env_params, tree)))(outputs, memory)  # (B, k)
        target_scores, target_none = self._values_of(target_params, next_obs, greedy, env_params)
        if not self.decomposed:
            return target_scores[:, 0, 0]
        click_logits = jnp.concatenate([jnp.zeros_like(target_none)[:, None], target_scores[:, 1]], axis=1)
        probabilities = jax.nn.softmax(click_logits, axis=1)
        values = jnp.concatenate([target_none[:, None], target_scores[:, 0]], axis=1)
        return jnp.sum(probabilities * values, axis=1)

    def _loss(self, params, target_params, batch, env_params, tree):
        actions = batch["action"]
        scores, none_value = self._values_of(params, batch["obs"], actions, env_params)
        next_value = jax.lax.stop_gradient(
            self._next_value(params, target_params, batch["next_obs"], env_params, tree)
        )
        target = batch["reward"] + batch["discount"] * next_value
        if not self.decomposed:
            td = scores[:, 0, 0] - target
            return jnp.mean(optax.huber_loss(td)), {"q_loss": jnp.mean(td**2), "q_mean": jnp.mean(scores[:, 0, 0])}
        clicked = batch["slot_rewards"]  # (B, k) one-hot of the clicked slot
        any_click = jnp.sum(clicked, axis=1)
        chosen_value = jnp.sum(clicked * scores[:, 0], axis=1) + (1.0 - any_click) * none_value
        td = chosen_value - target
        logits = jnp.concatenate([jnp.zeros_like(none_value)[:, None], scores[:, 1]], axis=1)
        labels = jnp.concatenate([(1.0 - any_click)[:, None], clicked], axis=1)
        click_loss = jnp.mean(optax.softmax_cross_entropy(logits, labels))
        q_loss = jnp.mean(optax.huber_loss(td))
        return q_loss + self.click_loss_weight * click_loss, {
            "q_loss": jnp.mean(td**2),
            "click_loss": click_loss,
            "q_mean": jnp.mean(chosen_value),
        }

    def _n_step(self, transition: Transition) -> Transition:
        """``n_step``-step returns within a ``(T, B)`` rollout: ``reward`` becomes the discounted sum of up to
        ``n_step`` rewards (stopping at the episode's end or the rollout's), ``next_obs`` the observation to
        bootstrap from, and ``extras["discount"]`` ``gamma^m`` (0 when the user left)."""
        terminated = transition.done if transition.terminated is None else transition.terminated
        reward, boot, discount = returns.n_step_returns(
            transition.reward, transition.done, terminated, self.n_step, self.gamma
        )
        users = jnp.arange(transition.reward.shape[1])[None, :]
        next_obs = jax.tree.map(lambda x: x[boot, users], transition.next_obs)
        return transition.replace(reward=reward, next_obs=next_obs, extras={"discount": discount})

    def update(self, key, state: DQNState, transition: Transition, env_params):
        leading = transition.reward.ndim
        terminated = transition.done if transition.terminated is None else transition.terminated
        if self.n_step > 1 and leading == 2:
            transition = self._n_step(transition)
            discount = transition.extras["discount"]
        else:
            discount = self.gamma * (1.0 - terminated.astype(jnp.float32))
        items = {
            "obs": transition.obs,
            "action": jax.vmap(as_slate)(transition.action.reshape((-1,) + transition.action.shape[leading:])),
            "reward": transition.reward,
            "slot_rewards": transition.slot_rewards,
            "next_obs": transition.next_obs,
            "discount": discount,
        }
        items = {name: flatten_leading(value, leading) if name != "action" else value for name, value in items.items()}
        buffer = self._buffer()
        buffer_state = buffer.add(state.buffer, items)
        env_steps = state.env_steps + items["reward"].shape[0]
        optimiser = self.optimiser()

        def gradient_step(carry, step_key):
            params, target_params, opt_state, updates = carry
            batch = buffer.sample(buffer_state, step_key).experience
            (loss, metrics), grads = jax.value_and_grad(self._loss, has_aux=True)(
                params, target_params, batch, env_params, state.tree
            )
            changes, new_opt_state = optimiser.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, changes)
            # Learn only once the buffer holds learning_starts transitions (select: vmaps over seeds).
            learn = (env_steps >= self.learning_starts) & buffer.can_sample(buffer_state)
            keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(learn, n, o), new, old)  # noqa: E731
            params, opt_state = keep(new_params, params), keep(new_opt_state, opt_state)
            updates = updates + learn.astype(jnp.int32)
            # Target network: Polyak averaging (target_tau > 0) or a copy every target_period gradient steps.
            copy = learn & (updates % jnp.maximum(jnp.asarray(self.target_period, jnp.int32), 1) == 0)
            tau = jnp.where(self.target_tau > 0, jnp.where(learn, self.target_tau, 0.0), jnp.where(copy, 1.0, 0.0))
            target_params = jax.tree.map(lambda p, t: tau * p + (1.0 - tau) * t, params, target_params)
            metrics = dict(metrics, loss=loss, learning=learn.astype(jnp.float32))
            return (params, target_params, opt_state, updates), metrics

        (params, target_params, opt_state, updates), metrics = jax.lax.scan(
            gradient_step,
            (state.params, state.target_params, state.opt_state, state.updates),
            jax.random.split(key, self.gradient_steps),
        )
        new_state = DQNState(params, target_params, opt_state, buffer_state, env_steps, updates, state.tree)
        metrics = {name: jnp.mean(value) for name, value in metrics.items()}
        metrics["epsilon"] = self.epsilon(new_state)
        return new_state, metrics
