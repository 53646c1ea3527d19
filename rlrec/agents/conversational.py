"""Conversational agents: recommenders that ask about key-terms and learn from the answers (and critiques).

They act on a :class:`~rlrec.envs.conversation.ConversationalEnv` with ``{"slate": ..., "question": key-term or
-1}`` and read the answer (and any critique) in the transition's ``next_obs``.

- :class:`ConUCB` (Zhang et al., 2020): a key-term-level ridge estimate from the answers pulls the arm-level one
  through a prior, and questions go to the key-term that most shrinks the arms' uncertainty.
- :class:`AskingLinUCB`, :class:`AskingLinTS`: LinUCB and linear Thompson sampling whose posterior also takes each
  answer as a linear observation along the key-term's LM embedding (and each critique along its embedding), so
  answers and clicks live in one posterior, and an LM prior (``prior_scale``) still applies.

**When to ask.** Every agent here asks at a round iff the questions asked so far are fewer than ``b(t)``, ``t`` the
rounds so far plus one: ``"log"`` ``b(t) = question_scale * floor(ln t)`` (the paper's ``5 floor(log t)`` with
``question_scale = 5``), ``"linear"`` ``b(t) = floor(question_scale * t)`` (``question_scale <= 1`` is the share of
rounds that ask), ``"never"`` ``b(t) = 0``. Our env takes one question per step, so a round asks at most one; the
paper asks ``b(t) - b(t - 1)`` questions at once, the same number spread over the next rounds here. In shared mode
one state serves a batch of users: a round is one user's step, and every user of a step gets the same decision.

The answer to a question asked at step ``t`` arrives with that step's click, so it shapes the slates from step
``t + 1`` on (the paper asks before it chooses the arm of the same round).

Reference: Zhang, Xie, Li, Zhang, Zhang, Zhang and Zhang (2020) "Conversational Contextual Bandit: Algorithm and
Application", WWW.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rlrec import _repr
from rlrec.agents.bandits import (
    MIN_RIDGE,
    REQUEST_ITEM,
    LinearBandit,
    LinearState,
    LinTS,
    LinUCB,
    score_items,
    square_root_update,
)
from rlrec.agents.base import Agent, Transition, as_slate, hyperparameter, top_k_slate
from rlrec.envs.conversation import NO_QUESTION, ConversationalEnv
from rlrec.envs.recsys import bandit_features
from rlrec.errors import InputError

LOG, LINEAR, NEVER = "log", "linear", "never"
SCHEDULES = (LOG, LINEAR, NEVER)
INFORMATIVE, RANDOM = "informative", "random"
QUESTION_SELECTIONS = (INFORMATIVE, RANDOM)


def question_budget(schedule: str, scale: Any, rounds: jax.Array) -> jax.Array:
    """``b(t)``: how many questions may have been asked by round ``t`` (``rounds``, counted from 1)."""
    t = jnp.asarray(rounds, jnp.float32)
    if schedule == LOG:
        return scale * jnp.floor(jnp.log(t))
    if schedule == LINEAR:
        return jnp.floor(scale * t)
    if schedule == NEVER:
        return jnp.zeros_like(t)
    raise InputError(f"question_schedule must be one of {SCHEDULES}, got {schedule!r}.")


class AskingAgent(Agent):
    """What every asking agent shares: the question schedule (see the module docstring) and the env it needs.

    Its state has ``steps`` (rounds learnt from) and ``questions`` (questions asked), both int32 ``()``.
    """

    question_schedule: str = hyperparameter(LOG, "when to ask: questions so far < b(t), log or linear in t",
                                            choices=SCHEDULES)
    question_scale: float = hyperparameter(5.0, "b(t) = scale floor(ln t) (log) or floor(scale t) (linear)",
                                           low=0.0, high=1e6)
    asks_questions = True

    @classmethod
    def env_defaults(cls, env: Any) -> dict[str, Any]:
        """No defaults; refuses an env that takes no questions (make_agent calls this first)."""
        if not isinstance(env, ConversationalEnv):
            raise InputError(f"{cls.__name__} asks questions: use a Conversational env such as "
                             f"MovieLens-Conversational-v0 (got {getattr(env, 'name', type(env).__name__)}).")
        return {}

    def asks(self, state: Any) -> jax.Array:
        """bool ``()``: this round asks (questions so far < ``b(rounds so far + 1)``)."""
        return state.questions < question_budget(self.question_schedule, self.question_scale, state.steps + 1)


def questions_asked(transition: Transition) -> jax.Array:
    """int32 ``()``: questions the env took in this transition (all users of a batch)."""
    return jnp.sum(transition.next_obs["question"] >= 0).astype(jnp.int32)


# -- ConUCB ---------------------------------------------------------------------------------------------------------


class ConUCBState(struct.PyTreeNode):
    """ConUCB's two ridge regressions, kept as square roots of the inverses (no LAPACK, as in LinearBandit).

    Attributes:
        arm_root: ``(f, f)`` ``S`` with ``S S^T = M^-1``, ``M = (1 - lambda) I + lambda sum x x^T`` over shown slots.
        arm_response: ``(f,)`` ``b = lambda sum r x``.
        key_term_root: ``(f, f)`` ``S~`` with ``S~ S~^T = M~^-1``, ``M~ = lambda~ I + sum x~ x~^T`` over answers.
        key_term_response: ``(f,)`` ``b~ = sum r~ x~`` (``r~`` 1 for yes, 0 for no).
        steps: ``()`` int32 rounds learnt from.
        questions: ``()`` int32 questions asked.
    """

    arm_root: jax.Array
    arm_response: jax.Array
    key_term_root: jax.Array
    key_term_response: jax.Array
    steps: jax.Array
    questions: jax.Array

    def __repr__(self) -> str:
        return _repr.fields_repr(self)


class ConUCB(AskingAgent):
    """ConUCB (Zhang et al., WWW 2020, Algorithm 1) on the items' ``bandit_features`` ``x`` (``f = d + 2``).

    - Key-term level: ``theta~ = M~^-1 b~`` from the answers about key-term vectors ``x~_k`` (the env's
      ``key_term_centroids``: each key-term's weighted mean of its related items' features); no answer, no update.
    - Arm level: ``theta = M^-1 (b + (1 - lambda) theta~)``: ridge on the clicks (every shown slot, ``r = 1`` in the
      clicked one) shrunk toward ``theta~`` instead of toward 0.
    - Slate: top-k of ``x^T theta + lambda alpha ||x||_{M^-1} + (1 - lambda) alpha~ ||M^-1 x||_{M~^-1}``.
    - Question: ``argmax_k ||X M^-1 x~_k||^2 / (1 + x~_k^T M~^-1 x~_k)``, ``X`` the features of every item: the
      paper uses the round's candidate arms; here the whole catalog is the candidate set. Written with ``X^T X``, so
      ``O(K f^2)`` after the ``O(N f^2)`` Gram matrix.

    Class defaults: ``arm_weight`` lambda 0.5, ``key_term_regulariser`` lambda~ 1, the schedule ``5 floor(log t)``
    and key-term rewards 1 (yes) and 0 (no) are the paper's experimental settings; ``alpha = key_term_alpha = 0.25``
    are ours (the paper sets them from its confidence bound). The registered ``conucb`` is tuned for MovieLens (its
    row in :mod:`rlrec.agents.names`). ``act`` costs ``O(N f^2)`` (the second width term depends on both ``M`` and
    ``M~``, so nothing catalog-sized can be kept); ``update`` ``O(f^2)`` per shown slot and answer. ``b`` and ``b~``
    are kept explicitly (``theta`` moves with ``theta~``, so the recursive-least-squares estimate of
    :class:`LinearBandit` does not apply).
    """

    arm_weight: float = hyperparameter(0.5, "lambda: weight of the clicks against the answers' prior (paper: 0.5)",
                                       low=0.0, high=1.0, high_open=True)
    key_term_regulariser: float = hyperparameter(1.0, "lambda~: ridge of the key-term level (paper: 1); float32 "
                                                 "rounding grows as 1/lambda~", low=MIN_RIDGE, high=1e6)
    alpha: float = hyperparameter(0.25, "width of the arm-level confidence bonus", low=0.0, high=1e6)
    key_term_alpha: float = hyperparameter(0.25, "width of the key-term-level confidence bonus", low=0.0, high=1e6)
    yes_reward: float = hyperparameter(1.0, "key-term reward r~ of a yes (paper: 1)", low=-1e6, high=1e6)
    no_reward: float = hyperparameter(0.0, "key-term reward r~ of a no (paper: 0)", low=-1e6, high=1e6)

    def init(self, key, env_params):
        size = bandit_features(env_params).shape[1]
        identity = jnp.eye(size, dtype=jnp.float32)
        return ConUCBState(
            arm_root=identity / jnp.sqrt(jnp.asarray(1.0 - self.arm_weight, jnp.float32)),
            arm_response=jnp.zeros(size, jnp.float32),
            key_term_root=identity / jnp.sqrt(jnp.asarray(self.key_term_regulariser, jnp.float32)),
            key_term_response=jnp.zeros(size, jnp.float32),
            steps=jnp.zeros((), jnp.int32),
            questions=jnp.zeros((), jnp.int32),
        )

    def key_term_estimate(self, state: ConUCBState) -> jax.Array:
        """``theta~ = M~^-1 b~`` ``(f,)``."""
        return state.key_term_root @ (state.key_term_root.T @ state.key_term_response)

    def estimate(self, state: ConUCBState) -> jax.Array:
        """``theta = M^-1 (b + (1 - lambda) theta~)`` ``(f,)``."""
        pulled = state.arm_response + (1.0 - self.arm_weight) * self.key_term_estimate(state)
        return state.arm_root @ (state.arm_root.T @ pulled)

    def scores(self, state: ConUCBState, env_params: Any) -> jax.Array:
        """``(N,)`` ``x^T theta + lambda alpha ||x||_{M^-1} + (1 - lambda) alpha~ ||M^-1 x||_{M~^-1}``."""
        features = bandit_features(env_params)
        size = features.shape[1]
        arm_covariance = state.arm_root @ state.arm_root.T
        # One (N, f) @ (f, 2f) product: rows S^T x (norm ||x||_{M^-1}) and S~^T M^-1 x (norm ||M^-1 x||_{M~^-1}).
        projected = features @ jnp.concatenate([state.arm_root, arm_covariance @ state.key_term_root], axis=1)
        arm_width = jnp.sqrt(jnp.sum(projected[:, :size] ** 2, axis=1))
        key_term_width = jnp.sqrt(jnp.sum(projected[:, size:] ** 2, axis=1))
        return (score_items(self.estimate(state), features) + self.arm_weight * self.alpha * arm_width
                + (1.0 - self.arm_weight) * self.key_term_alpha * key_term_width)

    def question_scores(self, state: ConUCBState, env_params: Any) -> jax.Array:
        """``(K,)`` ``||X M^-1 x~_k||^2 / (1 + x~_k^T M~^-1 x~_k)`` over every key-term."""
        features = bandit_features(env_params)
        centroids = env_params.key_term_centroids
        pulled = centroids @ (state.arm_root @ state.arm_root.T)  # rows (M^-1 x~_k)^T
        spread = jnp.sum((pulled @ (features.T @ features)) * pulled, axis=1)
        own = centroids @ state.key_term_root
        return spread / (1.0 + jnp.sum(own * own, axis=1))

    def act(self, key, state, obs, env_params):
        scores = self.scores(state, env_params)
        slate = top_k_slate(scores, self.slate_size, key=key, exact_ties=False)
        question = jnp.where(self.asks(state), jnp.argmax(self.question_scores(state, env_params)), NO_QUESTION)
        return {"slate": slate, "question": question.astype(jnp.int32)}

    def update(self, key, state: ConUCBState, transition: Transition, env_params):
        slates = as_slate(transition.action).reshape(-1, self.slate_size)
        rewards = transition.slot_rewards.reshape(-1)
        shown = bandit_features(env_params)[slates.reshape(-1)]  # (users * k, f)
        users = slates.shape[0]
        answers = transition.next_obs["answer"].reshape(users)
        asked = jnp.maximum(transition.next_obs["question"].reshape(users), 0)
        # An unanswered question is a zero row: no change to M~ or b~.
        told = env_params.key_term_centroids[asked] * (answers != 0.0)[:, None]

        def observe(root, x):
            return square_root_update(root, x)[0], None

        arm_root, _ = jax.lax.scan(observe, state.arm_root, jnp.sqrt(self.arm_weight) * shown)
        key_term_root, _ = jax.lax.scan(observe, state.key_term_root, told)
        reward = jnp.where(answers > 0.0, self.yes_reward, self.no_reward)  # r~ of each answer (unanswered rows: 0)
        return state.replace(
            arm_root=arm_root,
            arm_response=state.arm_response + self.arm_weight * (rewards @ shown),
            key_term_root=key_term_root,
            key_term_response=state.key_term_response + reward @ told,
            steps=state.steps + users,
            questions=state.questions + questions_asked(transition),
        ), {}


# -- linear bandits that hear answers through the LM ----------------------------------------------------------------


class AskingLinearState(LinearState):
    """:class:`LinearState` plus the questions asked and the catalog's Gram matrix ``X^T X`` ``(f, f)`` (choosing
    a question then costs ``O(K f^2)``, nothing catalog-sized)."""

    questions: jax.Array
    catalog_gram: jax.Array

    def __repr__(self) -> str:  # the dataclass would write its own, with every array in full
        return _repr.fields_repr(self)


class AskingLinear(AskingAgent, LinearBandit):
    """Mixed in before :class:`LinUCB` or :class:`LinTS` (``AskingLinUCB``, ``AskingLinTS``): their slate, plus a
    question, and answers and critiques as observations in their posterior.

    An answer ``a`` (+1 yes, -1 no) to key-term ``j`` is the observation ``x = sqrt(w) [k_j, 0, 0]``, target
    ``sqrt(w) v a`` (``k_j`` the key-term's LM embedding padded to the ``bandit_features`` layout; ``w``
    ``answer_weight``, ``v`` ``answer_value``): a yes says the user scores items along ``k_j`` about ``v``. A
    critique ``c`` is ``sqrt(w_c) [c, 0, 0]`` with target ``sqrt(w_c) v_c`` (``critique_weight`` 0: ignored). They
    go through the same rank-1 update as the clicks (:meth:`LinearBandit.observe`), so LinUCB's kept variances stay
    exact. With ``context="request-item"`` the embedding part is scaled by the request as the items' features are
    (``[r * k_j, 0, 0]``): the answer is then about ``theta`` in the request-item space the items are scored in.

    Question: ``"informative"`` asks the key-term whose answer most reduces the catalog's summed posterior variance,
    ``||X A^-1 x||^2 / (1 + x^T A^-1 x)`` for its observation ``x`` (Sherman-Morrison; the answer weight included);
    ``"random"`` a uniformly random key-term. The variance it reduces is that of a linear model, while an answer
    only tells the sign of ``<u, k_j>``: it spends questions on the least-known directions, not on the key-terms
    whose answer is least certain.

    The answer and critique weights and values were chosen on synthetic worlds, where both kinds of feedback
    lowered LinUCB's regret, and checked on MovieLens slates (the same held). Each step costs two rank-1 rows more
    than the plain agent (``O(N f)`` each for LinUCB's kept variances) and ``O(K f^2)`` to choose the question.
    """

    question_selection: str = hyperparameter(INFORMATIVE, "which key-term to ask about", choices=QUESTION_SELECTIONS)
    answer_weight: float = hyperparameter(1.0, "weight w of an answer against one shown slot", low=0.0, high=1e6)
    answer_value: float = hyperparameter(0.5, "v: a yes says theta . k = v, a no -v", low=0.0, high=1e6)
    critique_weight: float = hyperparameter(1.0, "weight of a critique as an observation (0: ignore critiques)",
                                            low=0.0, high=1e6)
    critique_value: float = hyperparameter(0.5, "a critique c says theta . c = this", low=0.0, high=1e6)

    def init(self, key, env_params):
        state = super().init(key, env_params)
        features = bandit_features(env_params)
        fields = {field.name: getattr(state, field.name) for field in dataclasses.fields(state)}
        return AskingLinearState(**fields, questions=jnp.zeros((), jnp.int32), catalog_gram=features.T @ features)

    def lm_directions(self, embeddings: jax.Array, request: jax.Array) -> jax.Array:
        """``(..., f)``: LM embeddings ``(..., d)`` as feature rows ``[e, 0, 0]`` (request-item: ``[r * e, 0, 0]``)."""
        if self.context == REQUEST_ITEM:
            embeddings = embeddings * request
        return jnp.concatenate([embeddings, jnp.zeros(embeddings.shape[:-1] + (2,), embeddings.dtype)], axis=-1)

    def question_scores(self, state: AskingLinearState, env_params: Any, request: jax.Array) -> jax.Array:
        """``(K,)`` ``||X A^-1 x_k||^2 / (1 + x_k^T A^-1 x_k)`` for each key-term's answer row ``x_k``."""
        rows = jnp.sqrt(self.answer_weight) * self.lm_directions(env_params.key_term_features, request)
        projected = rows @ state.covariance_root  # rows S^T x
        reduced = projected @ state.covariance_root.T  # rows (A^-1 x)^T
        gram = state.catalog_gram
        if self.context == REQUEST_ITEM:  # X(r) = X D_r, so X(r)^T X(r) = D_r X^T X D_r
            scale = self._request_scale(env_params, request)
            gram = scale[:, None] * gram * scale[None, :]
        return jnp.sum((reduced @ gram) * reduced, axis=1) / (1.0 + jnp.sum(projected * projected, axis=1))

    def question(self, key, state: AskingLinearState, obs: dict, env_params: Any) -> jax.Array:
        """int32 ``()``: the key-term to ask about this round, or -1 when the schedule says not to ask."""
        if self.question_selection == INFORMATIVE:
            chosen = jnp.argmax(self.question_scores(state, env_params, obs["request"]))
        elif self.question_selection == RANDOM:
            chosen = jax.random.randint(key, (), 0, env_params.key_term_features.shape[0])
        else:
            raise InputError(f"question_selection must be one of {QUESTION_SELECTIONS}, "
                             f"got {self.question_selection!r}.")
        return jnp.where(self.asks(state), chosen, NO_QUESTION).astype(jnp.int32)

    def act(self, key, state, obs, env_params):
        # The slate from the same key as the plain agent's: asking nothing and hearing nothing, it is that agent.
        slate = super().act(key, state, obs, env_params)
        return {"slate": slate, "question": self.question(jax.random.fold_in(key, 1), state, obs, env_params)}

    def observations(self, transition: Transition, env_params: Any) -> tuple[jax.Array, jax.Array]:
        """The clicks' rows, then one answer row and one critique row per user (zero rows where none was said)."""
        features, targets = super().observations(transition, env_params)
        told = transition.next_obs
        users = features.shape[0] // self.slate_size
        requests = transition.obs["request"].reshape(users, -1)
        answers = told["answer"].reshape(users)
        key_terms = env_params.key_term_features[jnp.maximum(told["question"].reshape(users), 0)]
        answer_scale = jnp.sqrt(self.answer_weight) * (answers != 0.0)
        critiqued = (told["critique"].reshape(users) >= 0).astype(features.dtype)
        critique_scale = jnp.sqrt(self.critique_weight) * critiqued
        critiques = told["critique_embedding"].reshape(users, -1)
        rows = jnp.concatenate([features, answer_scale[:, None] * self.lm_directions(key_terms, requests),
                                critique_scale[:, None] * self.lm_directions(critiques, requests)])
        heard = jnp.concatenate([targets, answer_scale * self.answer_value * answers,
                                 critique_scale * self.critique_value])
        return rows, heard

    def update(self, key, state, transition: Transition, env_params):
        state, metrics = super().update(key, state, transition, env_params)
        return state.replace(questions=state.questions + questions_asked(transition)), metrics


class AskingLinUCB(AskingLinear, LinUCB):
    """LinUCB (:class:`LinUCB`'s slate) that asks about key-terms and learns from answers and critiques through
    the LM embeddings (:class:`AskingLinear`)."""


class AskingLinTS(AskingLinear, LinTS):
    """Linear Thompson sampling (:class:`LinTS`'s slate) that asks about key-terms and learns from answers and
    critiques through the LM embeddings (:class:`AskingLinear`)."""
