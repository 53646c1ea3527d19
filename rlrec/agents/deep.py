"""Deep RL agents: DQN (double DQN; SlateQ for slates) and policy gradients (REINFORCE with a baseline, PPO).

Same API as the bandits (``init / act / update``), plus ``rollout_length`` (steps of a batch of users a
training loop collects before each ``update``) and ``act_with_extras`` (what the update needs back, e.g.
log-probabilities). ``update`` takes transitions with leading ``(T, B)`` axes. All networks score items as a
user tower dotted with item features (:mod:`rlrec.agents.networks`), so they serve any catalog size.

References: DQN, Mnih et al. (2015); double DQN, van Hasselt et al. (2016); SlateQ, Ie et al. (2019)
"SlateQ: a tractable decomposition for reinforcement learning with recommendation sets"; REINFORCE,
Williams (1992); PPO, Schulman et al. (2017); GAE, Schulman et al. (2016).
"""

from __future__ import annotations

from typing import Any

import flashbax
import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from rlrec import _repr
from rlrec.agents import networks, returns
from rlrec.agents.base import Agent, Transition, as_slate, bandit_features, from_env, hyperparameter, random_slate


class DeepAgent(Agent):
    """Shared configuration of the deep agents (network size, optimiser, discount)."""

    hidden: int = hyperparameter(64, "width of the user tower's hidden layers", low=1, high=1e5)
    rollout_length: int = hyperparameter(1, "steps of every user collected before each update", low=1, high=1e6)
    deterministic: bool = struct.field(pytree_node=False, default=False)  # greedy actions (evaluation)
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
        features, memory = networks.in_blocks(one, flat, FEATURE_CHUNK)
        return jax.tree.map(lambda x: x.reshape(batch_shape + x.shape[1:]), (features, memory))

    def tower(self, params: nnx.State, obs: dict, env_params) -> tuple[dict, jax.Array]:
        """Tower outputs and history memory for observations with any leading batch shape."""
        features, memory = self.features(obs, env_params)
        return networks.apply_tower(self.graph(env_params), params, features), memory

    def act(self, key, state, obs, env_params):
        return self.act_with_extras(key, state, obs, env_params)[0]


# Observations featurised per block by DeepAgent.features: on a 2-core CPU, 1.4 us per observation at once
# for 16k observations, 0.4 us in blocks of 256.
FEATURE_CHUNK = 256


def sample_by_cdf(uniform: jax.Array, logits: jax.Array) -> jax.Array:
    """One draw per row of ``softmax(logits)`` (``(B, M)``) by the inverse CDF of ``uniform`` ``(B,)`` in [0, 1).

    Why not ``jax.random.categorical``: it draws a Gumbel per option, and threefry on a CPU spends 2.3 us
    per user on the 199 options of a 9k-item tree, a third of PPO's acting time; this needs one uniform.
    The first option whose CDF exceeds ``uniform`` times the total mass: never one of probability 0.
    """
    cdf = jnp.cumsum(jax.nn.softmax(logits, axis=-1), axis=-1)
    return jnp.argmax(cdf > uniform[:, None] * cdf[:, -1:], axis=-1).astype(jnp.int32)


def log_softmax_entropy(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(log_softmax(logits), entropy of softmax(logits))`` along the last axis, with one ``exp``.

    Same values as ``jax.nn.log_softmax`` and ``-sum(exp(log_p) * log_p)``, which evaluate ``exp`` twice over the
    whole array, forward and again in the backward pass (XLA does not merge them); PPO's update does this for
    every leaf and item logit of every minibatch. Masked logits (``networks.MASKED``) get probability 0 and add
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
    9 ms for 16k indices on a 2-core CPU against 1 ms for :func:`~rlrec.agents.networks.packed_argsort`, and
    PPO shuffles every epoch. Indices whose random bits tie (about ``size^2 / 2^(33 - log2 size)`` pairs, e.g.
    500 of 16k) keep their relative order; they are neighbours in the result, so they share a minibatch
    either way.
    """
    index_bits = max(size - 1, 1).bit_length()
    if index_bits > 24:  # too few random bits left
        return jax.random.permutation(key, size)
    random_bits = 32 - index_bits
    return networks.packed_argsort(jax.random.bits(key, (size,), jnp.uint32) >> index_bits, random_bits)


def _flatten(tree, leading: int):
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[leading:]), tree)


# -- DQN and SlateQ ----------------------------------------------------------------------------------------


class DQNState(struct.PyTreeNode):
    params: nnx.State
    target_params: nnx.State
    opt_state: Any
    buffer: Any  # flashbax item buffer state
    env_steps: jax.Array  # transitions seen (drives the epsilon schedule)
    updates: jax.Array  # gradient steps taken
    tree: networks.ItemTree  # for the beam-search argmax

    def __repr__(self) -> str:
        return _repr.fields_repr(self)


class DQN(DeepAgent):
    """Double DQN with a target network, a replay buffer (flashbax) and a linear epsilon schedule.

    Single items: ``Q(s, i)`` is the tower's score of item ``i``; the greedy action is the best-scoring item
    (searched in the ``beam`` best leaves of the item tree, or the whole catalog with ``beam=0``), and the target is ``r + gamma Q_target(s', argmax_i Q(s', i))`` (bootstrapped on
    truncation, not when the user left).

    Slates (``slate_size > 1``, or ``decomposed=True``): **SlateQ**. Two heads score every item: ``Qbar(s, i)``, the long-term value
    of the user clicking ``i``, and ``v(s, i)``, a click logit (a learnt multinomial-logit choice model with a
    no-click option of logit 0, fitted by maximum likelihood on the observed clicks). The tower's value
    output is the long-term value of no click. ``Q(s, A) = P(none | A) V_none(s) + sum_i P(i | A) Qbar(s,
    i)``; the slate shown maximises it exactly (Dinkelbach's method, see :meth:`_select`; not SlateQ's top-k
    heuristic, which favours clickbait); ``Qbar`` learns only from the clicked item, with the next slate
    chosen greedily by the online network (double Q).
    """

    # Defaults tuned on MovieLens-Session-v0 (benchmarks/deep_rl.py, benchmarks/README.md), where the value of
    # keeping a user (budget, hence session length) shows only several steps after the choice and the budget
    # is hidden: long rollouts with 10-step returns, gamma 0.99 (gamma 0.95 plateaued near the myopic policy),
    # 8 gradient steps per rollout at learning rate 1e-3, and epsilon down to 0.01 (a uniformly random item
    # wastes a step of the user's budget, and every 10-step return containing one is biased low).
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
    beam: int = hyperparameter(8, "item-tree leaves searched for greedy actions (0: the whole catalog)", low=0, high=1e6)
    # n-step returns, computed within each rollout of rollout_length steps (1: one-step TD). Uncorrected for
    # exploration, as in Rainbow: slightly biased toward the behaviour policy, much faster credit assignment.
    n_step: int = hyperparameter(10, "steps of the n-step return (1: one-step TD)", low=1, high=1e6)
    # Epsilon-exploration among the beam's candidates (near the greedy choice) instead of the whole catalog.
    # Off by default: on MovieLens-Session-v0 it made DQN less stable and SlateQ no better (see benchmarks).
    explore_beam: bool = hyperparameter(False, "explore among the beam's items instead of the whole catalog")
    # Boltzmann exploration among the greedy candidates (the beam's items): the behaviour action maximises
    # Q + temperature x Gumbel noise, i.e. is drawn with probability ~ exp(Q / temperature). 0: greedy.
    # Off by default: temperature 0.3 on MovieLens-Session-v0 dropped the training CTR to ~0.75 and the
    # greedy policy it learnt was worse (6.9 against 7.4, one 2-seed run).
    temperature: float = hyperparameter(0.0, "Boltzmann exploration temperature among candidates (0: greedy)",
                                        low=0.0, high=1e6)
    history_length: int = from_env(8)  # the env's (replay item layout)
    # SlateQ slates (k > 1): Dinkelbach iterations of the exact slate argmax (each one a top-k; it converges
    # in a handful).
    dinkelbach_steps: int = hyperparameter(4, "iterations of SlateQ's exact slate argmax", low=1, high=1e4)

    @property
    def num_heads(self) -> int:  # type: ignore[override]
        return 2 if self.decomposed else 1

    def __post_init__(self):
        if self.slate_size > 1 and not self.decomposed:
            raise ValueError(
                "A Q-function over whole slates is combinatorial; slates need the SlateQ decomposition "
                "(decomposed=True, the default of the 'slateq' agent)."
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
            tree=networks.build_item_tree(env_params, min_leaf_size=self.slate_size),
        )

    def _example_item(self, env_params):
        # One stored transition (the replay buffer's item layout), built from shapes.
        obs = {
            "request": jnp.zeros(env_params.item_features.shape[1], jnp.float32),
            "history_items": jnp.full((self.history_length, self.slate_size), -1, jnp.int32),
            "history_clicks": jnp.full((self.history_length,), -1, jnp.int32),
            "history_feedback": jnp.zeros((self.history_length,), jnp.float32),
            "progress": jnp.zeros((1,), jnp.float32),
        }
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
        self, scores: jax.Array, none_value: jax.Array, valid: jax.Array | None = None, noise_key=None
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
        steps (``dinkelbach_steps``; checked against brute force in tests/test_deep_agents.py). On
        MovieLens-Session-v0 this alone did not lift SlateQ (the hyperparameters did, see benchmarks/README.md),
        but it is the argmax the double-Q target assumes.

        With ``noise_key``: Boltzmann exploration. Each candidate's value (``Q``; SlateQ: ``Qbar``) gets
        ``temperature`` times Gumbel noise first, so plain DQN draws its item with probability proportional to
        ``exp(Q / temperature)`` among the candidates (Gumbel-max).
        """
        valid = jnp.ones(scores.shape[1], bool) if valid is None else valid
        if noise_key is not None:
            scores = scores.at[0].add(self.temperature * jax.random.gumbel(noise_key, scores.shape[1:]))
        if not self.decomposed:
            return jax.lax.top_k(jnp.where(valid, scores[0], -jnp.inf), self.slate_size)[1]
        value, logit = scores[0], jnp.clip(scores[1], -30.0, 30.0)
        if self.slate_size == 1:
            gain = jax.nn.sigmoid(logit) * (value - none_value)
            return jax.lax.top_k(jnp.where(valid, gain, -jnp.inf), 1)[1]
        weight = jnp.exp(logit - jnp.max(jnp.where(valid, logit, -30.0)))  # rescaled: the no-click weight too
        none_weight = jnp.exp(-jnp.max(jnp.where(valid, logit, -30.0)))

        def step(_, carry):
            slate_value, _ = carry
            _, chosen = jax.lax.top_k(jnp.where(valid, weight * (value - slate_value), -jnp.inf), self.slate_size)
            w = weight[chosen]
            return (jnp.sum(w * value[chosen]) + none_weight * none_value) / (jnp.sum(w) + none_weight), chosen

        first = jnp.zeros((self.slate_size,), jnp.int32)
        _, chosen = jax.lax.fori_loop(0, self.dinkelbach_steps, step, (none_value, first))
        return chosen

    def _greedy(self, outputs, memory, env_params, tree, explore_key=None, noise_key=None) -> jax.Array:
        """The greedy item or slate: exact over the catalog (``beam == 0``), or a beam search of the item tree.

        With ``explore_key`` (and a beam), a uniformly random slate of the beam's candidate items instead:
        exploration near what the agent believes is good. With ``noise_key``, Boltzmann exploration among the
        candidates (:meth:`_select`).
        """
        none_value = outputs["value"]
        if self.beam == 0:
            scores = self._item_scores(outputs, memory, env_params)
            chosen = self._select(scores, none_value, noise_key=noise_key).astype(jnp.int32)
            return chosen[0] if self.slate_size == 1 else chosen
        beam = min(self.beam, tree.leaves.shape[0])
        # Leaves ranked as single items by their centroid's scores (for SlateQ: the k = 1 criterion).
        centroid = self._item_scores(outputs, memory, env_params, tree=tree)
        if self.decomposed:
            leaf_rank = jax.nn.sigmoid(jnp.clip(centroid[1], -30.0, 30.0)) * (centroid[0] - none_value)
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
        if explore_key is not None:
            _, best = jax.lax.top_k(
                jnp.where(members >= 0, jax.random.uniform(explore_key, members.shape), -jnp.inf), self.slate_size
            )
        else:
            best = self._select(head_scores, none_value, members >= 0, noise_key=noise_key)
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
        explore_key, random_key, noise_key = jax.random.split(key, 3)
        greedy = self._greedy(outputs, memory, env_params, state.tree, noise_key=noise_key)  # Boltzmann if T > 0
        if self.explore_beam and self.beam > 0:
            random = self._greedy(outputs, memory, env_params, state.tree, explore_key=random_key)
        else:
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
        items = {name: _flatten(value, leading) if name != "action" else value for name, value in items.items()}
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


# -- policy gradients ----------------------------------------------------------------------------------------


class PGState(struct.PyTreeNode):
    params: nnx.State
    opt_state: Any
    tree: networks.ItemTree
    updates: jax.Array

    def __repr__(self) -> str:
        return _repr.fields_repr(self)


class PolicyGradient(DeepAgent):
    """Actor-critic policy gradient over a hierarchical item policy: PPO, or REINFORCE with a baseline.

    The policy picks a leaf of the item tree (:func:`~rlrec.agents.networks.build_item_tree`) by its
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

    # Defaults tuned on MovieLens-Session-v0 (benchmarks/deep_rl.py, benchmarks/README.md): one epoch of 8
    # minibatches at learning rate 2e-3 learnt as much per env step as 4 epochs x 4 minibatches at 3e-4, over 6
    # seeds, with a quarter of the update's passes over the rollout (the update was 2/3 of PPO's training time).
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

    def init(self, key, env_params):
        params = self.init_network(key, env_params)
        return PGState(
            params=params,
            opt_state=self.optimiser().init(params),
            tree=networks.build_item_tree(env_params, min_leaf_size=self.slate_size, num_leaves=self.tree_leaves),
            updates=jnp.zeros((), jnp.int32),
        )

    def _slate_log_prob(self, item_log_probs, slots):
        """Plackett-Luce log-probability of the ordered ``slots`` (a single item when ``k == 1``), one user, from the
        log-softmax of the leaf's item logits (the first slot's distribution); later slots renormalise it without
        the items already shown."""
        log_prob = item_log_probs[slots[0]]
        log_probs = item_log_probs
        for slot in range(1, self.slate_size):
            log_probs = jax.nn.log_softmax(log_probs.at[slots[slot - 1]].set(networks.MASKED))
            log_prob = log_prob + log_probs[slots[slot]]
        return log_prob

    def item_probabilities(self, state: PGState, obs: dict, env_params) -> jax.Array:
        """``(N,)`` probability of each item being shown (first slot) for one observation: ``O(N d)``."""
        outputs, memory = self.tower(state.params, obs, env_params)
        head = networks.select_head(outputs, 0)
        tree = state.tree
        leaf_probs = jax.nn.softmax(networks.centroid_scores(tree, head, networks.centroid_similarity(tree, memory)))
        leaves = jnp.arange(tree.leaves.shape[0])
        every_leaf = jax.tree.map(lambda x: jnp.broadcast_to(x, leaves.shape + x.shape), (head, memory))
        similarity = networks.leaf_item_similarity(tree, every_leaf[1], leaves)
        item_probs = jax.nn.softmax(networks.leaf_item_scores(tree, every_leaf[0], similarity, leaves), axis=-1)
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
        leaf_similarity = networks.centroid_similarity(tree, memory)
        leaf_logits = networks.centroid_scores(tree, head, leaf_similarity)  # (B, C)
        if self.deterministic:
            leaf = jnp.argmax(leaf_logits, axis=-1)
        else:
            leaf = sample_by_cdf(uniform[:, 0], leaf_logits)
        item_similarity = networks.leaf_item_similarity(tree, memory, leaf)
        item_logits = networks.leaf_item_scores(tree, head, item_similarity, leaf)  # (B, L)
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
            networks.centroid_scores(tree, head, batch["leaf_similarity"])
        )  # (B, C), (B,)
        item_logits = networks.leaf_item_scores(tree, head, batch["item_similarity"], leaf)  # (B, L)
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
        item_similarity = networks.leaf_item_similarity(tree, flat_memory, leaves)
        return {
            "features": features,
            "leaf_similarity": networks.centroid_similarity(tree, memory),
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
            raise ValueError(
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
        data = _flatten(data, 2)
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
