"""Contextual-bandit agents: baselines, epsilon-greedy, UCB1, LinUCB, linear Thompson sampling, LM priors.

All agents score every item and show the top-k (k = ``slate_size``); slate feedback is used per slot
(a click is reward 1 for that item, 0 for the other shown items). ``update`` accepts transitions with any
leading batch shape, so the same agent learns one user (personal mode) or a batch of users sharing one
state (shared mode).

Linear agents keep the ridge-regression posterior of ``A = lambda I + sum x x^T`` and ``b = sum r x`` over
item features ``x`` (:func:`~rlrec.envs.recsys.bandit_features`) and estimate ``theta = A^-1 (b + lambda
theta_0)``, where the prior mean ``theta_0`` is zero, or, for the **LM-prior** variants, points along the
user's request embedding (``prior_scale * request``): a cold-start user is then explored around what they said
they wanted. The posterior is updated incrementally, with matrix products only (no LAPACK; see
:class:`LinearBandit`).

References: LinUCB, Li et al. (2010) "A contextual-bandit approach to personalized news article
recommendation"; linear Thompson sampling, Agrawal & Goyal (2013); UCB1, Auer et al. (2002).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rlrec import _repr
from rlrec.agents.base import (
    Agent,
    Transition,
    as_slate,
    from_env,
    hyperparameter,
    random_distinct_items,
    random_slate,
    top_k_slate,
)
from rlrec.envs.recsys import bandit_features
from rlrec.errors import InputError

ITEM = "item"
REQUEST_ITEM = "request-item"
CONTEXTS = (ITEM, REQUEST_ITEM)

# The smallest ridge strength of a linear agent: float32 keeps A^-1 (and LinUCB each item's x^T A^-1 x) by
# subtracting from values of order 1 / lambda, so rounding grows as 1 / lambda (tests/test_robustness.py).
MIN_RIDGE = 1e-2


class RandomAgent(Agent):
    """Uniformly random slates: the no-learning baseline (linear regret)."""

    acts_at_random = True

    def act(self, key, state, obs, env_params):
        return random_slate(key, env_params.item_features.shape[0], self.slate_size)


class PopularityAgent(Agent):
    """The most popular items for everyone (log-popularity), ties broken at random."""

    scores_from_request = True

    def act(self, key, state, obs, env_params):
        return top_k_slate(env_params.item_appeal, self.slate_size, key=key)

    def item_scores(self, state, obs, env_params):
        """Log-popularity (the same for every user)."""
        return env_params.item_appeal


class TextMatchAgent(Agent):
    """Zero-shot LM retrieval: the items nearest to the user's request embedding (no learning)."""

    scores_from_request = True

    def act(self, key, state, obs, env_params):
        return top_k_slate(self.item_scores(state, obs, env_params), self.slate_size)

    def item_scores(self, state, obs, env_params):
        """Cosine similarity of each item to the request (both unit-norm)."""
        return score_items(obs["request"], env_params.item_features)


class UCB1State(struct.PyTreeNode):
    counts: jax.Array  # (N,) times each item was shown
    clicks: jax.Array  # (N,) clicks it got
    steps: jax.Array  # () rounds so far

    def __repr__(self) -> str:
        return _repr.fields_repr(self)


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
        return top_k_slate(jnp.where(jnp.isinf(scores), 1e9, scores), self.slate_size, key=key)

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
    """The ridge posterior of a linear bandit, kept up to date by :meth:`LinearBandit.update`.

    Attributes:
        covariance_root: ``(f, f)`` a square root ``S`` of the posterior covariance: ``S S^T = A^-1`` with
            ``A = lambda I + sum x x^T`` (not triangular; see :meth:`LinearBandit.update`).
        estimate: ``(f,)`` the ridge estimate without a prior, ``A^-1 b`` with ``b = sum r x``.
        variances: ``(N,)`` every item's ``x_i^T A^-1 x_i`` where the agent keeps them (LinUCB with item
            features), else ``(0,)``.
        steps: ``()`` rounds learnt from.
    """

    covariance_root: jax.Array
    estimate: jax.Array
    variances: jax.Array
    steps: jax.Array

    def __repr__(self) -> str:
        return _repr.fields_repr(self)

    @property
    def covariance(self) -> jax.Array:
        """``A^-1 = S S^T`` (``(f, f)``; for checks and plots: acting never forms it)."""
        return self.covariance_root @ self.covariance_root.T


def score_items(vector: jax.Array, features: jax.Array) -> jax.Array:
    """``(N,)`` products ``<x_i, vector>`` of every item, written ``vector @ features.T``.

    Under ``vmap`` over users the result is laid out (users, N), as the scores are then used; ``features @
    vector`` gives the same numbers laid out (N, users) and an extra transposition of the whole (users, N)
    array.
    """
    return vector @ features.T


def square_root_update(root: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One rank-1 observation ``A <- A + x x^T`` applied to ``S`` (``S S^T = A^-1``), matmuls only.

    With ``w = S^T x`` and ``u = S w = A^-1 x``, Sherman-Morrison gives ``A'^-1 = S (I - w w^T / (1 + w^T w)) S^T``,
    and ``I - w w^T / (1 + w^T w) = (I - beta w w^T)^2`` for ``beta = 1 / (d + sqrt(d))``, ``d = 1 + w^T w``. So
    ``S' = S - beta u w^T`` (Potter's square-root update, 1963): ``O(f^2)``, no factorisation, and ``S' S'^T``
    is positive semi-definite by construction, however rounding accumulates.

    Returns:
        ``(S', u, d)``: the new root, ``A^-1 x`` before the update and ``1 + x^T A^-1 x``.
    """
    w = root.T @ x
    u = root @ w
    d = 1.0 + w @ w
    beta = 1.0 / (d + jnp.sqrt(d))
    return root - beta * jnp.outer(u, w), u, d


class LinearBandit(Agent):
    """Shared machinery of the linear agents: features, the ridge posterior kept incrementally, the mean.

    Static: ``context`` = ``"item"`` (features of the item alone: one agent state per user) or
    ``"request-item"`` (the request embedding times the item embedding, elementwise, plus quality and
    appeal: one agent state shared by many users). Leaves: ``regulariser`` (lambda) and ``prior_scale``
    (0: no prior; > 0: the LM prior ``theta_0`` along the request).

    **No LAPACK.** The posterior is kept up to date in :meth:`update` instead of refactorised in ``act``. Per
    shown slot ``x`` (with ``u = A^-1 x`` and ``d = 1 + x^T u``):

    - a square root ``S`` of ``A^-1`` by a rank-1 update (:func:`square_root_update`, ``O(f^2)``, matmuls);
    - the estimate ``m = A^-1 b`` by the recursive-least-squares step ``m += u (r - x^T m) / d`` (``O(f)``).
      Not ``S S^T b``: ``b`` grows with every click and multiplies the rounding of ``S S^T``, while the recursive
      step corrects its own rounding;
    - for LinUCB with item features, every item's variance ``s_i = x_i^T A^-1 x_i`` by
      ``s_i -= (x_i^T u)^2 / d`` (``O(N f)``).

    The mean ``theta = m + lambda S S^T theta_0`` (the prior, which depends on the request) costs ``O(f^2)`` in
    ``act``. Its float32 rounding stays within ``tests/test_agents.py``'s bounds after 10,000 rank-1 updates, so no
    refresh is scheduled.
    """

    context: str = hyperparameter(ITEM, "features: of the item alone, or request x item", choices=CONTEXTS)
    regulariser: float = hyperparameter(1.0, "ridge strength lambda: A starts at lambda I; float32 rounding grows "
                                        "as 1/lambda", low=MIN_RIDGE, high=1e6)
    prior_scale: float = hyperparameter(0.0, "length of the LM prior mean along the request (0: no prior)",
                                        low=-1e6, high=1e6)

    keeps_variances = False  # LinUCB keeps x_i^T A^-1 x_i of every item (item features only)
    fit_settings = {"context": REQUEST_ITEM}  # request x item features: one state serves every user by request
    scores_from_request = True  # item_scores: the estimate, from the request and the learnt state

    def features(self, env_params: Any, request: jax.Array) -> jax.Array:
        """``(N, f)`` features of every item for a user with this request."""
        base = bandit_features(env_params)
        if self.context == ITEM:
            return base
        if self.context == REQUEST_ITEM:
            dim = env_params.item_features.shape[1]
            return base.at[:, :dim].multiply(request)
        raise InputError(f"context must be one of {CONTEXTS}, got {self.context!r}.")

    def _request_scale(self, env_params: Any, request: jax.Array) -> jax.Array:
        """``(f,)`` ``D_r``: the request-item features are ``x_i(r) = D_r z_i`` for the item features ``z_i``."""
        return jnp.concatenate([request, jnp.ones((2,), request.dtype)])

    def prior_mean(self, env_params: Any, request: jax.Array) -> jax.Array:
        """``theta_0``: scores ``prior_scale * <request, e_i>`` before any feedback (zero without a prior)."""
        direction = request if self.context == ITEM else jnp.ones_like(request)
        return self.prior_scale * jnp.concatenate([direction, jnp.zeros((2,), direction.dtype)])

    def _tracks_variances(self) -> bool:
        return self.keeps_variances and self.context == ITEM

    def init(self, key, env_params):
        features = bandit_features(env_params)
        size = features.shape[1]
        variances = (
            jnp.sum(features * features, axis=1) / self.regulariser
            if self._tracks_variances()
            else jnp.zeros((0,), features.dtype)
        )
        return LinearState(
            covariance_root=jnp.eye(size, dtype=features.dtype)
            / jnp.sqrt(jnp.asarray(self.regulariser, features.dtype)),
            estimate=jnp.zeros(size, features.dtype),
            variances=variances,
            steps=jnp.zeros((), jnp.int32),
        )

    def mean(self, state: LinearState, env_params: Any, request: jax.Array) -> jax.Array:
        """``theta = A^-1 (b + lambda theta_0) = m + lambda S S^T theta_0``: ``O(f^2)``."""
        prior = self.regulariser * self.prior_mean(env_params, request)
        return state.estimate + state.covariance_root @ (state.covariance_root.T @ prior)

    def variances(self, state: LinearState, env_params: Any, request: jax.Array) -> jax.Array:
        """``(N,)`` ``x_i^T A^-1 x_i``: kept by :meth:`update` (item features), else ``||S^T x_i(r)||^2``.

        The request-item features depend on the user, so nothing can be kept for them: ``x_i(r) = D_r z_i`` gives
        ``||(Z (D_r S))_i||^2``, one ``(N, f) @ (f, f)`` product per user (``O(N f^2)``); batched over users
        it is one batched matmul.
        """
        if self._tracks_variances():
            return jnp.maximum(state.variances, 0.0)
        features = bandit_features(env_params)
        root = state.covariance_root
        if self.context == REQUEST_ITEM:
            root = self._request_scale(env_params, request)[:, None] * root
        projected = features @ root
        return jnp.sum(projected * projected, axis=1)

    def observations(self, transition: Transition, env_params: Any) -> tuple[jax.Array, jax.Array]:
        """``(features (m, f), targets (m,))``: the rank-1 observations a transition teaches, in the order they are
        applied: every shown slot of every user with its click (agents that hear more, such as answers, add rows)."""
        slates = as_slate(transition.action).reshape(-1, self.slate_size)
        rewards = transition.slot_rewards.reshape(-1, self.slate_size)
        requests = transition.obs["request"].reshape(slates.shape[0], -1)
        shown = jax.vmap(lambda request, slate: self.features(env_params, request)[slate])(requests, slates)
        return shown.reshape(-1, shown.shape[-1]), rewards.ravel()

    def observe(self, state: LinearState, features: jax.Array, targets: jax.Array, env_params: Any) -> LinearState:
        """``state`` after ``A += x x^T``, ``b += y x`` for each row ``(x, y)`` of ``features``/``targets`` in order.

        A zero row changes nothing (``u = 0``, ``d = 1``), so an observation that did not happen may be a zero row.
        """
        # Kept variances follow each rank-1 update, s_i -= (x_i^T u)^2 / d: O(N f) per row. For a batch of more
        # rank-1 updates than features (shared mode), one recomputation from the new root, O(N f^2), is cheaper.
        # (Row by row rather than one (N, f) @ (f, m) product: under vmap over seeds that product is an (S, m, N)
        # array, which outgrows the CPU's caches.)
        tracked = self._tracks_variances()
        incremental = tracked and features.shape[0] <= features.shape[1]
        catalog = bandit_features(env_params) if tracked else None

        def observe_row(carry, row):
            root, estimate, variances = carry
            x, target = row
            root, u, d = square_root_update(root, x)
            estimate = estimate + u * ((target - x @ estimate) / d)
            if incremental:
                projection = score_items(u, catalog)
                variances = variances - projection * projection / d
            return (root, estimate, variances), None

        (root, estimate, variances), _ = jax.lax.scan(
            observe_row, (state.covariance_root, state.estimate, state.variances), (features, targets)
        )
        if tracked and not incremental:
            projected = catalog @ root
            variances = jnp.sum(projected * projected, axis=1)
        return state.replace(covariance_root=root, estimate=estimate, variances=variances)

    def update(self, key, state: LinearState, transition: Transition, env_params):
        rounds = as_slate(transition.action).reshape(-1, self.slate_size).shape[0]
        state = self.observe(state, *self.observations(transition, env_params), env_params)
        return state.replace(steps=state.steps + rounds), {}

    def item_scores(self, state: LinearState, obs, env_params):
        """``(N,)`` the estimate ``x_i^T theta``: what the agent believes, without its exploration (a bonus or a
        posterior sample), so a frozen linear bandit scored this way exploits what it learnt."""
        request = obs["request"]
        theta = self.mean(state, env_params, request)
        if self.context == REQUEST_ITEM:  # x_i(r) = D_r z_i, so x_i(r)^T theta = z_i^T (D_r theta): no (N, f) copy
            theta = theta * self._request_scale(env_params, request)
        return score_items(theta, bandit_features(env_params))


class LinUCB(LinearBandit):
    """LinUCB: ``x^T theta + alpha sqrt(x^T A^-1 x)`` (Li et al., 2010).

    Cost per decision with item features: ``O(N f)`` to score (the variances are kept by ``update``, ``O(N f)``
    per shown slot) plus a top-k; with request-item features ``O(N f^2)`` (see :meth:`variances`).
    """

    alpha: float = hyperparameter(0.3, "width of the confidence bonus", low=0.0, high=1e6)
    keeps_variances = True

    def scores(self, state: LinearState, env_params: Any, request: jax.Array) -> jax.Array:
        """``(N,)`` upper confidence bounds ``x_i^T theta + alpha sqrt(x_i^T A^-1 x_i)``."""
        features = self.features(env_params, request)
        theta = self.mean(state, env_params, request)
        return score_items(theta, features) + self.alpha * jnp.sqrt(self.variances(state, env_params, request))

    def act(self, key, state, obs, env_params):
        scores = self.scores(state, env_params, obs["request"])
        return top_k_slate(scores, self.slate_size, key=key, exact_ties=False)


class LinTS(LinearBandit):
    """Linear Thompson sampling: score with ``theta ~ N(theta_hat, v^2 A^-1)`` (Agrawal & Goyal, 2013).

    The sample is ``theta_hat + v S z`` with ``z ~ N(0, I)`` and the kept root ``S S^T = A^-1``: two ``O(f^2)``
    matrix-vector products, no factorisation or triangular solve (``O(N f)`` to score the catalog).
    """

    posterior_scale: float = hyperparameter(0.1, "scale v of the posterior covariance sampled from", low=0.0, high=1e6)
    acts_at_random = True  # scores with a posterior draw

    def sample(self, key, state: LinearState, env_params: Any, request: jax.Array) -> jax.Array:
        """One draw of ``theta ~ N(theta_hat, v^2 A^-1)``."""
        noise = jax.random.normal(key, state.estimate.shape, state.estimate.dtype)
        return self.mean(state, env_params, request) + self.posterior_scale * (state.covariance_root @ noise)

    def act(self, key, state, obs, env_params):
        theta = self.sample(key, state, env_params, obs["request"])
        scores = score_items(theta, self.features(env_params, obs["request"]))
        return top_k_slate(scores, self.slate_size, exact_ties=False)


class EpsilonGreedy(LinearBandit):
    """Epsilon-greedy on the ridge estimate: explore uniformly with probability
    ``max(min_epsilon, epsilon * decay^t)``, else show the top-k by ``x^T theta``."""

    epsilon: float = hyperparameter(0.1, "probability of a uniformly random slate at the start", low=0.0, high=1.0)
    decay: float = hyperparameter(1.0, "factor applied to epsilon after every step", low=0.0, high=1.0, low_open=True)
    min_epsilon: float = hyperparameter(0.0, "floor of the decaying epsilon", low=0.0, high=1.0)
    acts_at_random = True  # a uniformly random slate with probability epsilon

    def act(self, key, state, obs, env_params):
        explore_key, random_key, tie_key = jax.random.split(key, 3)
        features = self.features(env_params, obs["request"])
        theta = self.mean(state, env_params, obs["request"])
        greedy = top_k_slate(score_items(theta, features), self.slate_size, key=tie_key, exact_ties=False)
        exploring = jax.random.uniform(explore_key) < jnp.maximum(
            self.min_epsilon, self.epsilon * self.decay ** state.steps.astype(jnp.float32)
        )
        return jnp.where(exploring, random_distinct_items(random_key, features.shape[0], self.slate_size), greedy)


class OracleAgent(Agent):
    """Shows the click-maximising slate computed from the user's hidden state: for checks and plots only.

    The runner passes the environment state (``reads_hidden_state``); the oracle's regret is exactly 0.
    """

    env: Any = from_env(read=lambda env: env)  # the env itself: its oracle_action
    reads_hidden_state = True

    def act(self, key, state, obs, env_params, env_state=None):
        if env_state is None:
            raise InputError("OracleAgent.act needs env_state (the runner passes it).")
        return self.env.oracle_action(env_state, env_params)
