"""Contextual-bandit agents: baselines, epsilon-greedy, UCB1, LinUCB, linear Thompson sampling, LM priors.

All agents score every item and show the top-k (k = ``slate_size``); slate feedback is used per slot
(a click is reward 1 for that item, 0 for the other shown items). ``update`` accepts transitions with any
leading batch shape, so the same agent learns one user (personal mode) or a batch of users sharing one
state (shared mode).

Linear agents keep the ridge-regression statistics ``A = lambda I + sum x x^T`` and ``b = sum r x`` over
item features ``x`` (:func:`item_features`) and estimate ``theta = A^-1 (b + lambda theta_0)``, where the
prior mean ``theta_0`` is zero, or, for the **LM-prior** variants, points along the user's request embedding
(``prior_scale * request``): a cold-start user is then explored around what they said they wanted.

References: LinUCB, Li et al. (2010) "A contextual-bandit approach to personalized news article
recommendation"; linear Thompson sampling, Agrawal & Goyal (2013); UCB1, Auer et al. (2002).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rlrec.agents.base import (
    Agent,
    Transition,
    as_slate,
    bandit_features,
    from_env,
    hyperparameter,
    random_slate,
    top_k_slate,
)

ITEM = "item"
REQUEST_ITEM = "request-item"
CONTEXTS = (ITEM, REQUEST_ITEM)


class RandomAgent(Agent):
    """Uniformly random slates: the no-learning baseline (linear regret)."""

    def act(self, key, state, obs, env_params):
        return random_slate(key, env_params.item_features.shape[0], self.slate_size)


class PopularityAgent(Agent):
    """The most popular items for everyone (log-popularity), ties broken at random."""

    def act(self, key, state, obs, env_params):
        noise = 1e-6 * jax.random.uniform(key, env_params.item_appeal.shape)
        return top_k_slate(env_params.item_appeal + noise, self.slate_size)


class TextMatchAgent(Agent):
    """Zero-shot LM retrieval: the items nearest to the user's request embedding (no learning)."""

    def act(self, key, state, obs, env_params):
        return top_k_slate(env_params.item_features @ obs["request"], self.slate_size)


class UCB1State(struct.PyTreeNode):
    counts: jax.Array  # (N,) times each item was shown
    clicks: jax.Array  # (N,) clicks it got
    steps: jax.Array  # () rounds so far


class UCB1(Agent):
    """UCB1 over items, ignoring features: ``mean_i + c sqrt(2 ln t / n_i)``; unseen items first.

    With thousands of items and a short horizon it never stops exploring: the lesson of why structure
    (features, an LM prior) matters.
    """

    exploration: float = hyperparameter(1.0, "scale of the exploration bonus", low=0.0, high=1e6)

    def init(self, key, env_params):
        count = env_params.item_features.shape[0]
        return UCB1State(jnp.zeros(count), jnp.zeros(count), jnp.zeros((), jnp.int32))

    def act(self, key, state, obs, env_params):
        mean = state.clicks / jnp.maximum(state.counts, 1.0)
        bonus = self.exploration * jnp.sqrt(2.0 * jnp.log(state.steps + 1.0) / jnp.maximum(state.counts, 1.0))
        scores = jnp.where(state.counts > 0, mean + bonus, jnp.inf)
        tie_break = 1e-6 * jax.random.uniform(key, scores.shape)
        return top_k_slate(jnp.where(jnp.isinf(scores), 1e9, scores) + tie_break, self.slate_size)

    def update(self, key, state, transition: Transition, env_params):
        slates = as_slate(transition.action).reshape(-1, self.slate_size)
        rewards = transition.slot_rewards.reshape(-1, self.slate_size)
        return (
            state.replace(
                counts=state.counts.at[slates.ravel()].add(1.0),
                clicks=state.clicks.at[slates.ravel()].add(rewards.ravel()),
                steps=state.steps + slates.shape[0],
            ),
            {},
        )


class LinearState(struct.PyTreeNode):
    precision: jax.Array  # (f, f) A = lambda I + sum x x^T
    response: jax.Array  # (f,) b = sum r x
    steps: jax.Array  # () updates so far


class LinearBandit(Agent):
    """Shared machinery of the linear agents: features, ridge statistics, the posterior mean.

    Static: ``context`` = ``"item"`` (features of the item alone: one agent state per user) or
    ``"request-item"`` (the request embedding times the item embedding, elementwise, plus quality and
    appeal: one agent state shared by many users). Leaves: ``regulariser`` (lambda) and ``prior_scale``
    (0: no prior; > 0: the LM prior ``theta_0`` along the request).
    """

    context: str = hyperparameter(ITEM, "features: of the item alone, or request x item", choices=CONTEXTS)
    regulariser: float = hyperparameter(1.0, "ridge strength lambda: A starts at lambda I", low=0.0, high=1e6,
                                        low_open=True)
    prior_scale: float = hyperparameter(0.0, "length of the LM prior mean along the request (0: no prior)",
                                        low=-1e6, high=1e6)

    def features(self, env_params: Any, request: jax.Array) -> jax.Array:
        """``(N, f)`` features of every item for a user with this request."""
        base = bandit_features(env_params)
        if self.context == ITEM:
            return base
        if self.context == REQUEST_ITEM:
            dim = env_params.item_features.shape[1]
            return base.at[:, :dim].multiply(request)
        raise ValueError(f"context must be one of {CONTEXTS}, got {self.context!r}.")

    def prior_mean(self, env_params: Any, request: jax.Array) -> jax.Array:
        """``theta_0``: scores ``prior_scale * <request, e_i>`` before any feedback (zero without a prior)."""
        direction = request if self.context == ITEM else jnp.ones_like(request)
        return self.prior_scale * jnp.concatenate([direction, jnp.zeros((2,), direction.dtype)])

    def init(self, key, env_params):
        size = bandit_features(env_params).shape[1]
        return LinearState(
            precision=self.regulariser * jnp.eye(size), response=jnp.zeros(size), steps=jnp.zeros((), jnp.int32)
        )

    def posterior(self, state: LinearState, env_params: Any, request: jax.Array):
        """``(features (N, f), theta (f,), covariance A^-1, cholesky factor of A)`` for scoring.

        ``A^-1`` comes from one Cholesky solve against the identity and ``theta`` is a matmul with it: fewer
        batched LAPACK triangular solves under ``vmap``, which on CPU (jaxlib 0.10) were seen to deadlock
        XLA's intra-op pool intermittently with two solves per step.
        """
        features = self.features(env_params, request)
        factor = jax.scipy.linalg.cho_factor(state.precision, lower=True)
        covariance = jax.scipy.linalg.cho_solve(factor, jnp.eye(features.shape[1], dtype=features.dtype))
        theta = covariance @ (state.response + self.regulariser * self.prior_mean(env_params, request))
        return features, theta, covariance, factor

    def update(self, key, state: LinearState, transition: Transition, env_params):
        slates = as_slate(transition.action).reshape(-1, self.slate_size)
        rewards = transition.slot_rewards.reshape(-1, self.slate_size)
        requests = transition.obs["request"].reshape(slates.shape[0], -1)
        shown = jax.vmap(lambda request, slate: self.features(env_params, request)[slate])(requests, slates)
        shown = shown.reshape(-1, shown.shape[-1])  # (users * k, f)
        return (
            state.replace(
                precision=state.precision + shown.T @ shown,
                response=state.response + shown.T @ rewards.ravel(),
                steps=state.steps + slates.shape[0],
            ),
            {},
        )


def _variance(features: jax.Array, covariance: jax.Array) -> jax.Array:
    """``x_i^T A^-1 x_i`` for every row: one ``(N, f) @ (f, f)`` matmul."""
    return jnp.maximum(jnp.sum((features @ covariance) * features, axis=1), 0.0)


class LinUCB(LinearBandit):
    """LinUCB: ``x^T theta + alpha sqrt(x^T A^-1 x)`` (Li et al., 2010)."""

    alpha: float = hyperparameter(0.3, "width of the confidence bonus", low=0.0, high=1e6)

    def act(self, key, state, obs, env_params):
        features, theta, covariance, _ = self.posterior(state, env_params, obs["request"])
        scores = features @ theta + self.alpha * jnp.sqrt(_variance(features, covariance))
        return top_k_slate(scores + 1e-6 * jax.random.uniform(key, scores.shape), self.slate_size)


class LinTS(LinearBandit):
    """Linear Thompson sampling: score with ``theta ~ N(theta_hat, v^2 A^-1)`` (Agrawal & Goyal, 2013)."""

    posterior_scale: float = hyperparameter(0.1, "scale v of the posterior covariance sampled from", low=0.0, high=1e6)

    def act(self, key, state, obs, env_params):
        features, theta, _, factor = self.posterior(state, env_params, obs["request"])
        lower, _ = factor
        noise = jax.random.normal(key, theta.shape)
        # A = L L^T, so L^-T z ~ N(0, A^-1).
        sample = theta + self.posterior_scale * jax.scipy.linalg.solve_triangular(lower.T, noise, lower=False)
        return top_k_slate(features @ sample, self.slate_size)


class EpsilonGreedy(LinearBandit):
    """Epsilon-greedy on the ridge estimate: explore uniformly with probability
    ``max(min_epsilon, epsilon * decay^t)``, else show the top-k by ``x^T theta``."""

    epsilon: float = hyperparameter(0.1, "probability of a uniformly random slate at the start", low=0.0, high=1.0)
    decay: float = hyperparameter(1.0, "factor applied to epsilon after every step", low=0.0, high=1.0, low_open=True)
    min_epsilon: float = hyperparameter(0.0, "floor of the decaying epsilon", low=0.0, high=1.0)

    def act(self, key, state, obs, env_params):
        explore_key, random_key, tie_key = jax.random.split(key, 3)
        features, theta, _, _ = self.posterior(state, env_params, obs["request"])
        greedy_scores = features @ theta + 1e-6 * jax.random.uniform(tie_key, (features.shape[0],))
        greedy = top_k_slate(greedy_scores, self.slate_size)
        exploring = jax.random.uniform(explore_key) < jnp.maximum(
            self.min_epsilon, self.epsilon * self.decay ** state.steps.astype(jnp.float32)
        )
        return jnp.where(exploring, random_slate(random_key, features.shape[0], self.slate_size), greedy)


class OracleAgent(Agent):
    """Shows the click-maximising slate computed from the user's hidden state: for checks and plots only.

    The runner passes the environment state (``reads_hidden_state``); the oracle's regret is exactly 0.
    """

    env: Any = from_env()
    reads_hidden_state = True

    def act(self, key, state, obs, env_params, env_state=None):
        if env_state is None:
            raise ValueError("OracleAgent.act needs env_state (the runner passes it).")
        return self.env.oracle_action(env_state, env_params)
