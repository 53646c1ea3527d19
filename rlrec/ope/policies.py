"""Stationary policies that know their own probabilities: the behaviour and target policies of off-policy evaluation.

A policy maps an observation to a distribution over slates of ``k`` distinct items and never learns while it is
logged or evaluated (a learner is trained first, then frozen: :func:`rlrec.ope.fitted`). Each one answers, for
any observation:

- :meth:`Policy.sample`: a slate drawn from it;
- :meth:`Policy.probabilities`: the log-probabilities of a given slate's prefixes (its first ``j + 1`` slots, the
  last being the whole slate) and the marginal probability of each of its items being in its slot;
- :meth:`Policy.marginals`: ``(k, N)``, every item's probability of being in each slot.

Exact for :class:`Uniform`, :class:`Greedy`, :class:`EpsilonGreedy` and :class:`Softmax` (Plackett-Luce) slate
prefixes; by Monte Carlo, with the draw count stated, for a Plackett-Luce slot after the first and for
:class:`Sampled` policies (any agent that acts at random, e.g. linear Thompson sampling). The scoring policies
rank items by an agent's :meth:`~rlrec.agents.base.Agent.item_scores` (text-match, popularity, a linear
bandit's estimate).
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlrec.agents.base import Agent, as_slate, random_distinct_items, top_k_slate

_NEG_INF = -jnp.inf


def _uniform_log_prefix(num_items: int, slate_size: int) -> jax.Array:
    """``(k,)`` log-probability of the first ``j + 1`` slots of a uniform slate of distinct items."""
    return jnp.cumsum(-jnp.log(num_items - jnp.arange(slate_size, dtype=jnp.float32)))


def _matching_prefix(slate: jax.Array, other: jax.Array) -> jax.Array:
    """``(k,)`` bool: the first ``j + 1`` slots of ``slate`` and ``other`` agree."""
    return jnp.cumprod(slate == other).astype(bool)


def _shown(slate: jax.Array, other: jax.Array) -> jax.Array:
    """``(k,)`` float: ``slate[j]`` is somewhere in ``other``."""
    return jnp.any(slate[:, None] == other[None, :], axis=1).astype(jnp.float32)


class Policy(struct.PyTreeNode):
    """A stationary distribution over slates given the observation (see the module docstring).

    ``slate_size`` is static; ``label`` names the policy in tables. ``kind`` says which family it is (the
    pseudo-inverse estimator needs the logging policy's family); ``samples`` is 0 when every probability is exact.
    """

    slate_size: int = struct.field(pytree_node=False, default=1)
    label: str = struct.field(pytree_node=False, default="")
    kind: ClassVar[str] = "policy"
    deterministic: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return self.label or self.kind

    @property
    def samples(self) -> int:
        """Monte Carlo draws behind the slot marginals (0: exact)."""
        return 0

    def settings(self) -> dict[str, Any]:
        """The numbers that define the policy (written into logs and tables)."""
        return {}

    def sample(self, key: jax.Array, obs: dict, params: Any) -> jax.Array:
        """``(k,)`` a slate drawn from the policy."""
        raise NotImplementedError

    def probabilities(self, key: jax.Array, obs: dict, slate: jax.Array, params: Any) -> tuple[jax.Array, jax.Array]:
        """``(log_prefix (k,), slot (k,))``: log-probability that the policy's first ``j + 1`` slots are
        ``slate``'s, and the probability that ``slate[j]`` is in slot ``j``. ``key`` feeds Monte Carlo policies."""
        raise NotImplementedError

    def marginals(self, key: jax.Array, obs: dict, params: Any) -> jax.Array:
        """``(k, N)``: the probability of each item in each slot (rows sum to 1)."""
        raise NotImplementedError

    def item_probabilities(self, key: jax.Array, obs: dict, slate: jax.Array, params: Any) -> jax.Array:
        """``(k,)`` the probability that ``slate[j]`` is anywhere in the policy's slate (the pseudo-inverse
        estimator needs it: without repeats, an item shared in another slot counts). From :meth:`marginals`
        unless a family knows better."""
        return jnp.sum(self.marginals(key, obs, params)[:, slate], axis=0)

    def greedy(self, obs: dict, params: Any) -> jax.Array:
        """``(k,)`` the slate an epsilon-greedy policy shows when it exploits (only :class:`EpsilonGreedy`)."""
        raise NotImplementedError(f"{self.name} has no greedy slate.")


class Uniform(Policy):
    """Every ordered slate of ``k`` distinct items equally likely: probability ``1 / (N (N-1) ... (N-k+1))``."""

    kind: ClassVar[str] = "uniform"

    def sample(self, key, obs, params):
        return as_slate(random_distinct_items(key, params.item_features.shape[0], self.slate_size))

    def probabilities(self, key, obs, slate, params):
        count = params.item_features.shape[0]
        return _uniform_log_prefix(count, self.slate_size), jnp.full((self.slate_size,), 1.0 / count)

    def marginals(self, key, obs, params):
        count = params.item_features.shape[0]
        return jnp.full((self.slate_size, count), 1.0 / count)

    def item_probabilities(self, key, obs, slate, params):
        return jnp.full((self.slate_size,), self.slate_size / params.item_features.shape[0])


class Scored(Policy):
    """A policy over the items' scores by an agent at a fixed (trained) state: ``agent.item_scores(state, obs)``."""

    agent: Agent = struct.field(pytree_node=True, default=None)
    state: Any = struct.field(pytree_node=True, default=None)

    def scores(self, obs: dict, params: Any) -> jax.Array:
        return self.agent.item_scores(self.state, obs, params)

    def top(self, obs: dict, params: Any) -> jax.Array:
        """``(k,)`` the ``k`` best-scoring items, best first (among exactly equal scores a fixed one, as
        :func:`rlrec.simulators.choice.top_k` picks it)."""
        return as_slate(top_k_slate(self.scores(obs, params), self.slate_size, exact_ties=False))


class Greedy(Scored):
    """Shows the top-``k`` items by score: deterministic (probability 1 on one slate)."""

    kind: ClassVar[str] = "greedy"
    deterministic: ClassVar[bool] = True

    def sample(self, key, obs, params):
        return self.top(obs, params)

    def probabilities(self, key, obs, slate, params):
        best = self.top(obs, params)
        return jnp.where(_matching_prefix(slate, best), 0.0, _NEG_INF), (slate == best).astype(jnp.float32)

    def marginals(self, key, obs, params):
        return jax.nn.one_hot(self.top(obs, params), params.item_features.shape[0])

    def item_probabilities(self, key, obs, slate, params):
        return _shown(slate, self.top(obs, params))

    def greedy(self, obs, params):
        return self.top(obs, params)


class EpsilonGreedy(Scored):
    """With probability ``epsilon`` a uniform slate of distinct items, else the top-``k`` by score.

    A slate's probability is ``(1 - eps) [slate = greedy] + eps / (N (N-1) ... (N-k+1))``, its prefixes' likewise,
    and an item's in slot ``j`` is ``(1 - eps) [item = greedy_j] + eps / N``: all exact.
    """

    epsilon: float = 0.1
    kind: ClassVar[str] = "epsilon-greedy"

    def settings(self):
        return {"epsilon": float(self.epsilon)}

    def sample(self, key, obs, params):
        explore_key, random_key = jax.random.split(key)
        uniform = as_slate(random_distinct_items(random_key, params.item_features.shape[0], self.slate_size))
        return jnp.where(jax.random.uniform(explore_key) < self.epsilon, uniform, self.top(obs, params))

    def probabilities(self, key, obs, slate, params):
        count = params.item_features.shape[0]
        best = self.top(obs, params)
        explore = self.epsilon * jnp.exp(_uniform_log_prefix(count, self.slate_size))
        exploit = (1.0 - self.epsilon) * _matching_prefix(slate, best)
        slot = (1.0 - self.epsilon) * (slate == best) + self.epsilon / count
        return jnp.log(exploit + explore), slot

    def marginals(self, key, obs, params):
        count = params.item_features.shape[0]
        return (1.0 - self.epsilon) * jax.nn.one_hot(self.top(obs, params), count) + self.epsilon / count

    def item_probabilities(self, key, obs, slate, params):
        count = params.item_features.shape[0]
        return (1.0 - self.epsilon) * _shown(slate, self.top(obs, params)) + self.epsilon * self.slate_size / count

    def greedy(self, obs, params):
        return self.top(obs, params)


class Softmax(Scored):
    """Plackett-Luce over ``score / temperature``: slot by slot, an item not shown yet with probability
    proportional to ``exp(score / temperature)`` (Gumbel top-``k`` draws it).

    A slate's prefixes have exact probabilities (products of the slot-by-slot choices). An item's probability of
    being in slot ``j > 1`` sums over every prefix and has no closed form: it is the share of ``marginal_samples``
    Monte Carlo draws (of the logged slate's own slots, the draw that was logged is counted with them, so no
    estimate is 0). Slot 1's is exact (a softmax).
    """

    temperature: float = 0.1
    marginal_samples: int = struct.field(pytree_node=False, default=1000)
    kind: ClassVar[str] = "softmax"

    @property
    def samples(self) -> int:
        return 0 if self.slate_size == 1 else self.marginal_samples

    def settings(self):
        return {"temperature": float(self.temperature)}

    def logits(self, obs, params):
        return self.scores(obs, params) / self.temperature

    def sample(self, key, obs, params):
        logits = self.logits(obs, params)
        noisy = logits + jax.random.gumbel(key, logits.shape)
        return as_slate(top_k_slate(noisy, self.slate_size, exact_ties=False))

    def _draws(self, key, logits):
        noise = jax.random.gumbel(key, (self.marginal_samples,) + logits.shape)
        return jax.vmap(lambda g: as_slate(top_k_slate(logits + g, self.slate_size, exact_ties=False)))(noise)

    def probabilities(self, key, obs, slate, params):
        logits = self.logits(obs, params)
        earlier = jnp.tril(jnp.ones((self.slate_size, self.slate_size), bool), k=-1)  # [j, i]: slot i before j

        def slot_log_probability(j):
            taken = jnp.any((jnp.arange(logits.shape[0])[None, :] == slate[:, None]) & earlier[j][:, None], axis=0)
            return logits[slate[j]] - jax.nn.logsumexp(jnp.where(taken, _NEG_INF, logits))

        log_prefix = jnp.cumsum(jax.vmap(slot_log_probability)(jnp.arange(self.slate_size)))
        first = jnp.exp(log_prefix[:1])
        if self.slate_size == 1:
            return log_prefix, first
        hits = jnp.sum(self._draws(key, logits) == slate[None, :], axis=0)
        later = (hits[1:] + 1.0) / (self.marginal_samples + 1.0)
        return log_prefix, jnp.concatenate([first, later])

    def marginals(self, key, obs, params):
        logits = self.logits(obs, params)
        exact_first = jax.nn.softmax(logits)[None, :]
        if self.slate_size == 1:
            return exact_first
        counts = jax.nn.one_hot(self._draws(key, logits), logits.shape[0]).mean(axis=0)
        return jnp.concatenate([exact_first, counts[1:]])


class Sampled(Policy):
    """Any agent that acts at random (e.g. linear Thompson sampling) at a fixed state, its probabilities estimated
    from ``samples`` Monte Carlo draws of its action per round.

    A probability is the share of the draws that agree with the slate (a prefix or a slot); the logged draw is
    counted with them, so no logged slate gets probability 0 and an estimate is ``(hits + 1) / (samples + 1)``.
    The importance weights are then estimates too (noisy, and their inverse is biased upward for rare slates):
    what a team logging a Thompson-sampling recommender faces.
    """

    agent: Agent = struct.field(pytree_node=True, default=None)
    state: Any = struct.field(pytree_node=True, default=None)
    draws: int = struct.field(pytree_node=False, default=1000)
    kind: ClassVar[str] = "sampled"

    @property
    def samples(self) -> int:
        return self.draws

    def settings(self):
        return {"samples": self.draws}

    def sample(self, key, obs, params):
        return as_slate(self.agent.act(key, self.state, obs, params))

    def _draws(self, key, obs, params):
        keys = jax.random.split(key, self.draws)
        return jax.vmap(lambda k: self.sample(k, obs, params))(keys)

    def probabilities(self, key, obs, slate, params):
        draws = self._draws(key, obs, params)
        prefix_hits = jnp.sum(jnp.cumprod(draws == slate[None, :], axis=1), axis=0)
        slot_hits = jnp.sum(draws == slate[None, :], axis=0)
        return jnp.log((prefix_hits + 1.0) / (self.draws + 1.0)), (slot_hits + 1.0) / (self.draws + 1.0)

    def marginals(self, key, obs, params):
        return jax.nn.one_hot(self._draws(key, obs, params), params.item_features.shape[0]).mean(axis=0)


# Rounds per compiled block of deterministic_slates.
SLATE_BLOCK = 4096


@jax.jit
def _slates_block(obs, params, policy):
    return jax.vmap(lambda ob: policy.sample(jax.random.key(0), ob, params))(obs)


def deterministic_slates(policy: Policy, obs: dict, params: Any) -> np.ndarray:
    """``(n, k)`` the slates a deterministic policy shows for ``n`` observations (NumPy, rounds first).

    A policy scoring by the request alone (its agent's ``scores_from_request``) shows the same slate for equal
    requests, so each distinct request is scored once: a log's users repeat their requests round after round,
    and the built-in populations draw them from a few thousand texts.
    """
    if not policy.deterministic:
        raise ValueError(f"{policy.name} is not deterministic: it has no one slate per observation.")
    obs = {name: np.asarray(value) for name, value in obs.items()}
    rows = obs["request"].shape[0]
    inverse = None
    if getattr(getattr(policy, "agent", None), "scores_from_request", False):
        _, first, inverse = np.unique(obs["request"], axis=0, return_index=True, return_inverse=True)
        obs = {name: value[first] for name, value in obs.items()}
    count = obs["request"].shape[0]
    blocks = [np.asarray(_slates_block({name: value[start:start + SLATE_BLOCK] for name, value in obs.items()},
                                       params, policy)) for start in range(0, count, SLATE_BLOCK)]
    slates = np.concatenate(blocks) if blocks else np.zeros((0, policy.slate_size), np.int32)
    return slates if inverse is None else slates[np.reshape(inverse, (rows,))]
