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
from rlrec.agents.pytree import ClassKeyed
from rlrec.errors import InputError
from rlrec.ope import blocks

_NEG_INF = -jnp.inf


def _uniform_log_prefix(num_items: int, slate_size: int) -> jax.Array:
    """``(k,)`` log-probability of the first ``j + 1`` slots of a uniform slate of distinct items."""
    return jnp.cumsum(-jnp.log(num_items - jnp.arange(slate_size, dtype=jnp.float32)))


def matching_prefix(slate: jax.Array, other: jax.Array) -> jax.Array:
    """``(k,)`` bool: the first ``j + 1`` slots of ``slate`` and ``other`` agree."""
    return jnp.cumprod(slate == other).astype(bool)


def in_slate(slate: jax.Array, other: jax.Array) -> jax.Array:
    """``(k,)`` float: ``slate[j]`` is somewhere in ``other``."""
    return jnp.any(slate[:, None] == other[None, :], axis=1).astype(jnp.float32)


class Policy(ClassKeyed):
    """A stationary distribution over slates given the observation (see the module docstring).

    ``slate_size`` is static; ``label`` names the policy in tables. ``kind`` says which family it is (the
    pseudo-inverse estimator needs the logging policy's family); ``samples`` is 0 when every probability is exact.
    """

    slate_size: int = struct.field(pytree_node=False, default=1)
    label: str = struct.field(pytree_node=False, default="", compare=False)  # display only
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

    def probabilities(self, key: jax.Array, obs: dict, slate: jax.Array, params: Any,
                      logged: bool = False) -> tuple[jax.Array, jax.Array]:
        """``(log_prefix (k,), slot (k,))``: log-probability that the policy's first ``j + 1`` slots are
        ``slate``'s, and the probability that ``slate[j]`` is in slot ``j``. ``key`` feeds Monte Carlo policies;
        ``logged``: ``slate`` is this policy's own draw (:func:`rlrec.ope.collect` logging it), which a Monte Carlo
        estimate counts with its draws (so a logged slate never gets probability 0); exact families ignore it."""
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

    def probabilities(self, key, obs, slate, params, logged=False):
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

    def probabilities(self, key, obs, slate, params, logged=False):
        best = self.top(obs, params)
        return jnp.where(matching_prefix(slate, best), 0.0, _NEG_INF), (slate == best).astype(jnp.float32)

    def marginals(self, key, obs, params):
        return jax.nn.one_hot(self.top(obs, params), params.item_features.shape[0])

    def item_probabilities(self, key, obs, slate, params):
        return in_slate(slate, self.top(obs, params))

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

    def probabilities(self, key, obs, slate, params, logged=False):
        count = params.item_features.shape[0]
        best = self.top(obs, params)
        # In log space: a uniform slate of 10 of 9,066 items has probability 4e-40, below float32's normal range.
        explore = jnp.log(self.epsilon) + _uniform_log_prefix(count, self.slate_size)
        exploit = jnp.where(matching_prefix(slate, best), jnp.log1p(-self.epsilon), _NEG_INF)
        slot = (1.0 - self.epsilon) * (slate == best) + self.epsilon / count
        return jnp.logaddexp(exploit, explore), slot

    def marginals(self, key, obs, params):
        count = params.item_features.shape[0]
        return (1.0 - self.epsilon) * jax.nn.one_hot(self.top(obs, params), count) + self.epsilon / count

    def item_probabilities(self, key, obs, slate, params):
        count = params.item_features.shape[0]
        return (1.0 - self.epsilon) * in_slate(slate, self.top(obs, params)) + self.epsilon * self.slate_size / count

    def greedy(self, obs, params):
        return self.top(obs, params)


class Softmax(Scored):
    """Plackett-Luce over ``score / temperature``: slot by slot, an item not shown yet with probability
    proportional to ``exp(score / temperature)`` (Gumbel top-``k`` draws it).

    A slate's prefixes have exact probabilities (products of the slot-by-slot choices). An item's probability of
    being in slot ``j > 1`` sums over every prefix and has no closed form: it is the share of ``marginal_samples``
    Monte Carlo draws (for a slate the policy logged, its own draw counted with them: see :class:`Sampled`).
    Slot 1's is exact (a softmax). Memory is one draw's per round; time ``O(marginal_samples N)`` per round.
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

    def _draw(self, logits):
        """One Plackett-Luce slate from a key (Gumbel top-k)."""
        return lambda key: as_slate(top_k_slate(logits + jax.random.gumbel(key, logits.shape), self.slate_size,
                                                exact_ties=False))

    def probabilities(self, key, obs, slate, params, logged=False):
        logits = self.logits(obs, params)
        earlier = jnp.tril(jnp.ones((self.slate_size, self.slate_size), bool), k=-1)  # [j, i]: slot i before j

        def slot_log_probability(j):
            taken = jnp.any((jnp.arange(logits.shape[0])[None, :] == slate[:, None]) & earlier[j][:, None], axis=0)
            return logits[slate[j]] - jax.nn.logsumexp(jnp.where(taken, _NEG_INF, logits))

        log_prefix = jnp.cumsum(jax.vmap(slot_log_probability)(jnp.arange(self.slate_size)))
        first = jnp.exp(log_prefix[:1])
        if self.slate_size == 1:
            return log_prefix, first
        _, slot_hits = _count_hits(self._draw(logits), key, self.marginal_samples, slate)
        later = _share(slot_hits[1:], self.marginal_samples, logged)
        return log_prefix, jnp.concatenate([first, later])

    def marginals(self, key, obs, params):
        logits = self.logits(obs, params)
        exact_first = jax.nn.softmax(logits)[None, :]
        if self.slate_size == 1:
            return exact_first
        counts = _count_marginals(self._draw(logits), key, self.marginal_samples, self.slate_size, logits.shape[0])
        return jnp.concatenate([exact_first, counts[1:] / self.marginal_samples])


def _count_hits(draw, key: jax.Array, draws: int, slate: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(prefix hits (k,), slot hits (k,))`` of ``draws`` slates ``draw(fold_in(key, i))`` against ``slate``.

    A scan over the draws, so memory stays one draw's (a ``(draws, N)`` array of Gumbel noise for a 9,066-item
    catalog is 36 MB per round, and rounds run in blocks of thousands).
    """
    def add(hits, i):
        same = draw(jax.random.fold_in(key, i)) == slate
        return (hits[0] + jnp.cumprod(same), hits[1] + same), None

    zeros = jnp.zeros(slate.shape, jnp.float32)
    (prefix, slot), _ = jax.lax.scan(add, (zeros, zeros), jnp.arange(draws))
    return prefix, slot


def _count_marginals(draw, key: jax.Array, draws: int, slate_size: int, num_items: int) -> jax.Array:
    """``(k, N)`` how often each item was in each slot in ``draws`` slates ``draw(fold_in(key, i))`` (a scan)."""
    def add(counts, i):
        return counts.at[jnp.arange(slate_size), draw(jax.random.fold_in(key, i))].add(1.0), None

    counts, _ = jax.lax.scan(add, jnp.zeros((slate_size, num_items), jnp.float32), jnp.arange(draws))
    return counts


def _share(hits: jax.Array, draws: int, logged: bool) -> jax.Array:
    """A Monte Carlo probability: ``hits / draws``, or with the policy's own logged draw counted among them,
    ``(hits + 1) / (draws + 1)``."""
    return (hits + 1.0) / (draws + 1.0) if logged else hits / draws


class Sampled(Policy):
    """Any agent that acts at random (e.g. linear Thompson sampling) at a fixed state, its probabilities estimated
    from ``samples`` Monte Carlo draws of its action per round.

    A probability is the share of the draws that agree with the slate (a prefix or a slot): ``hits / draws`` as a
    target's; as the behaviour's, of the slate it logged, the logged draw is counted with them, ``(hits + 1) /
    (draws + 1)``, so no logged slate gets probability 0. The importance weights are then estimates too, and
    noisy ones: ``E[(M + 1) / (1 + Binomial(M, p))] = (1 - (1 - p)^(M + 1)) / p``, below ``1 / p``, so IPS on a
    log of rare slates underestimates (by 37% at ``p = 1e-3`` and 90% at ``p = 1 / 9,066`` with ``M = 1,000``):
    what a team logging a Thompson-sampling recommender faces. Memory is one draw's per round (a scan over the
    draws); time is ``draws`` actions per round.
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

    def probabilities(self, key, obs, slate, params, logged=False):
        prefix_hits, slot_hits = _count_hits(lambda k: self.sample(k, obs, params), key, self.draws, slate)
        return jnp.log(_share(prefix_hits, self.draws, logged)), _share(slot_hits, self.draws, logged)

    def marginals(self, key, obs, params):
        draw = lambda k: self.sample(k, obs, params)  # noqa: E731
        return _count_marginals(draw, key, self.draws, self.slate_size, params.item_features.shape[0]) / self.draws


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
        raise InputError(f"{policy.name} is not deterministic: it has no one slate per observation.")
    obs = {name: np.asarray(value) for name, value in obs.items()}
    rows = obs["request"].shape[0]
    inverse = None
    if getattr(getattr(policy, "agent", None), "scores_from_request", False):
        _, first, inverse = np.unique(obs["request"], axis=0, return_index=True, return_inverse=True)
        obs = {name: value[first] for name, value in obs.items()}
    count = obs["request"].shape[0]
    block = blocks.ROUNDS
    parts = [np.asarray(_slates_block({name: value[start:start + block] for name, value in obs.items()}, params,
                                      policy)) for start in range(0, count, block)]
    slates = np.concatenate(parts) if parts else np.zeros((0, policy.slate_size), np.int32)
    return slates if inverse is None else slates[np.reshape(inverse, (rows,))]
