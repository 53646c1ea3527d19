"""Conversational recommendation: the recommender may ask about a key-term, and users critique in words.

:class:`ConversationalEnv` is :class:`~rlrec.envs.recsys.RecEnv` plus a conversation (docs/design.md, section
"Conversation"). Each step the recommender shows a slate and may ask one question about a key-term
(``"Do you like war films?"``); the user answers from the same hidden taste ``u`` that drives their clicks, and
when the slate gets no click they may say a critique ("something funnier"). Key-terms and critiques are texts
embedded by the catalog's LM into the simulator space (:mod:`rlrec.data.key_terms`).

- **Answer** to key-term ``j``: yes with probability ``sigmoid(answer_beta <u, k_j> + answer_bias)``; with
  probability ``answer_noise`` the answer is a fair coin instead, and with probability ``no_answer_rate`` the
  user does not answer. Observed as ``+1`` (yes), ``-1`` (no) or ``0`` (no answer, or nothing asked).
- **Critique** after a slate with no click, with probability ``critique_rate``: the critique ``c`` maximising
  ``<c, u - m> + critique_noise * G_c`` (``m`` the mean embedding of the items shown, ``G_c`` standard Gumbel
  noise): the one that best points from what was shown toward the user's taste.
- **Patience**: each question costs ``question_cost`` budget (the session setting sets it; a user leaves at 0).

Clicks, the oracle and regret are exactly those of :class:`RecEnv`: questions and critiques change nothing the
user does with the slate, and the click is drawn from the step's key as in :class:`RecEnv` (the answer and the
critique from keys folded out of it). So an agent that never asks meets the same users and clicks here as on
the plain env, and its regret is the same number.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

from rlrec.envs import spaces
from rlrec.envs.recsys import EnvParams, EnvState, RecEnv, StepInfo, display_name
from rlrec.errors import InputError
from rlrec.simulators import choice

NO_QUESTION = -1  # the question of an action that asks nothing
YES, NO, NO_ANSWER = 1.0, -1.0, 0.0


@struct.dataclass(kw_only=True, repr=False)
class ConversationalParams(EnvParams):
    """:class:`EnvParams` plus the key-terms, the critiques and the knobs of the answer and critique models.

    ``K`` key-terms and ``C`` critiques; ``M`` key-term/item pairs in the relation.
    """

    key_term_features: jax.Array  # (K, d) unit-norm LM embeddings of the key-term texts
    key_term_centroids: jax.Array  # (K, d + 2) each key-term's weighted mean of its related items' bandit features
    key_term_items: jax.Array  # (M,) int32 item of each key-term/item pair
    key_term_ids: jax.Array  # (M,) int32 key-term of each pair (grouped by key-term)
    critique_features: jax.Array  # (C, d) unit-norm LM embeddings of the critique texts
    answer_beta: jax.Array = 10.0
    answer_bias: jax.Array = -1.0
    answer_noise: jax.Array = 0.0
    no_answer_rate: jax.Array = 0.0
    critique_rate: jax.Array = 0.5
    critique_noise: jax.Array = 0.05
    question_cost: jax.Array = 0.0


@struct.dataclass(kw_only=True, repr=False)
class ConversationalState(EnvState):
    """:class:`EnvState` plus the last exchange (what the next observation shows) and the questions asked."""

    last_question: jax.Array  # () int32 key-term asked at the last step, -1 for none
    last_answer: jax.Array  # () float32 +1 yes, -1 no, 0 no answer or nothing asked
    last_critique: jax.Array  # () int32 critique said at the last step, -1 for none
    questions: jax.Array  # () int32 questions asked in this episode


class ConversationalStepInfo(StepInfo):
    """:class:`StepInfo` plus the conversation of the step."""

    question: jax.Array  # () int32 key-term asked, -1 for none
    asked: jax.Array  # () float32 1 when a question was asked
    answer: jax.Array  # () float32 +1, -1 or 0
    critique: jax.Array  # () int32 critique said, -1 for none


def answer_probability(interest: jax.Array, question: jax.Array, params: ConversationalParams) -> jax.Array:
    """``P(yes)`` of a user with taste ``interest`` asked about key-term ``question`` (given that they answer):
    ``(1 - answer_noise) sigmoid(answer_beta <u, k_j> + answer_bias) + answer_noise / 2``."""
    key_term = params.key_term_features[jnp.maximum(question, 0)]
    truthful = jax.nn.sigmoid(params.answer_beta * (key_term @ interest) + params.answer_bias)
    return (1.0 - params.answer_noise) * truthful + 0.5 * params.answer_noise


def answer(key: chex.PRNGKey, interest: jax.Array, question: jax.Array, params: ConversationalParams) -> jax.Array:
    """The user's answer to ``question``: ``+1`` yes, ``-1`` no, ``0`` no answer or no question (``question < 0``)."""
    yes_key, silent_key = jax.random.split(key)
    yes = jax.random.uniform(yes_key) < answer_probability(interest, question, params)
    answers = jnp.logical_and(question >= 0, jax.random.uniform(silent_key) >= params.no_answer_rate)
    return jnp.where(answers, jnp.where(yes, YES, NO), NO_ANSWER).astype(jnp.float32)


def critique_scores(interest: jax.Array, slate: jax.Array, params: ConversationalParams) -> jax.Array:
    """``(C,)`` ``<c, u - m>`` of every critique: ``m`` is the mean embedding of the distinct items of ``slate``."""
    shown = (~choice.mask_repeats(slate)).astype(jnp.float32)
    mean_shown = (shown @ params.item_features[slate]) / jnp.sum(shown)
    return params.critique_features @ (interest - mean_shown)


def critique(key: chex.PRNGKey, interest: jax.Array, slate: jax.Array, clicked: jax.Array,
             params: ConversationalParams) -> jax.Array:
    """The critique said after ``slate`` (``-1``: none): only without a click, with probability ``critique_rate``;
    the best-pointing critique under Gumbel noise of scale ``critique_noise``."""
    says_key, noise_key = jax.random.split(key)
    scores = critique_scores(interest, slate, params)
    noisy = scores + params.critique_noise * jax.random.gumbel(noise_key, scores.shape)
    says = jnp.logical_and(~clicked, jax.random.uniform(says_key) < params.critique_rate)
    return jnp.where(says, jnp.argmax(noisy), NO_QUESTION).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class ConversationalEnv(RecEnv):
    """A :class:`RecEnv` in which the recommender may ask a question each step and users critique.

    Action: a dict ``{"slate": <the RecEnv action>, "question": int32 ()}``, ``question`` a key-term index or
        ``-1`` for none. A bare slate (a RecEnv action) asks nothing, so every agent of the plain env runs here.
        In the functional core an integer question outside ``-1 .. K-1`` is not asked (the Gymnasium adapters
        refuse it), and a float or bool question raises ``InputError`` under ``jit`` and eagerly alike.
    Observation: the :class:`RecEnv` observation plus ``question`` (int32 ``(1,)``, the key-term asked at the
        last step, -1 none), ``answer`` (float32 ``(1,)``, +1 yes, -1 no, 0 no answer or none asked),
        ``critique`` (int32 ``(1,)``, -1 none) and ``critique_embedding`` (float32 ``(d,)``, zeros for none).
    Info: the :class:`RecEnv` info plus ``question``, ``asked`` (1.0 when a question was asked), ``answer`` and
        ``critique``. Regret is counted on the slates, exactly as in :class:`RecEnv`.
    """

    name: str = display_name("ConversationalEnv")
    # The banks rlrec.make embedded (texts, related items; None for params of your own): for reading which key-term
    # an index is. Like ``catalog``, outside the env's identity (==, hash, snapshots).
    key_terms: Any = dataclasses.field(default=None, compare=False, repr=False)
    critiques: Any = dataclasses.field(default=None, compare=False, repr=False)

    def num_key_terms(self, params: ConversationalParams) -> int:
        return int(params.key_term_features.shape[0])

    def num_critiques(self, params: ConversationalParams) -> int:
        return int(params.critique_features.shape[0])

    def action_space(self, params: ConversationalParams) -> spaces.Dict:
        return spaces.Dict({"slate": super().action_space(params),
                            "question": spaces.Discrete(self.num_key_terms(params) + 1, start=NO_QUESTION)})

    def observation_space(self, params: ConversationalParams) -> spaces.Dict:
        dim = int(params.item_features.shape[1])
        return spaces.Dict({
            **super().observation_space(params).spaces,
            "question": spaces.Box(NO_QUESTION, self.num_key_terms(params) - 1, (1,), jnp.int32),
            "answer": spaces.Box(-1.0, 1.0, (1,), jnp.float32),
            "critique": spaces.Box(NO_QUESTION, self.num_critiques(params) - 1, (1,), jnp.int32),
            "critique_embedding": spaces.Box(-1.0, 1.0, (dim,), jnp.float32),
        })

    def split_action(self, action: Any, params: ConversationalParams) -> tuple[jax.Array, jax.Array]:
        """``(slate, question)`` of an action (a dict, or a bare slate: no question); a question outside
        ``-1 .. K-1`` becomes ``-1``.

        The question must be one integer (any integer dtype; Python ints too). A float or bool question raises
        :class:`~rlrec.errors.InputError`: a key-term is an index, and no rounding of 3.7 or NaN is one a researcher
        would guess (casting gave 3 for 3.7 everywhere, and for NaN key-term 0 under ``jit`` but none in eager
        mode). The dtype is known when tracing, so ``jit`` and eager refuse alike, at no cost per step.
        """
        if not isinstance(action, dict):
            return action, jnp.asarray(NO_QUESTION, jnp.int32)
        slate, question = action["slate"], jnp.asarray(action["question"])
        if question.dtype == jnp.bool_ or not jnp.issubdtype(question.dtype, jnp.integer):
            raise InputError(f"The question must be an integer key-term index (-1 for none), got dtype "
                             f"{question.dtype}; pass it as jnp.int32, e.g. jnp.int32(3) or x.astype(jnp.int32).")
        if question.size != 1:
            raise InputError(f"The question must be one key-term index (-1 for none), got shape {question.shape}.")
        question = question.astype(jnp.int32).reshape(())
        valid = jnp.logical_and(question >= 0, question < self.num_key_terms(params))
        return slate, jnp.where(valid, question, NO_QUESTION)

    def initial_state(self, key: chex.PRNGKey, params: ConversationalParams) -> ConversationalState:
        state = super().initial_state(key, params)
        fields = {field.name: getattr(state, field.name) for field in dataclasses.fields(state)}
        return ConversationalState(**fields, last_question=jnp.asarray(NO_QUESTION, jnp.int32),
                                   last_answer=jnp.asarray(NO_ANSWER, jnp.float32),
                                   last_critique=jnp.asarray(NO_QUESTION, jnp.int32),
                                   questions=jnp.zeros((), jnp.int32))

    def step_env(self, key: chex.PRNGKey, state: ConversationalState, action: Any, params: ConversationalParams):
        """One step without auto-reset: the slate exactly as :meth:`RecEnv.step_env`, then the conversation."""
        slate, question = self.split_action(action, params)
        _, next_state, reward, _, _, info = super().step_env(key, state, slate, params)
        asked = question >= 0
        said = answer(jax.random.fold_in(key, 1), state.interest, question, params)
        shown = jnp.reshape(jnp.asarray(slate, jnp.int32), (self.slate_size,))
        critiqued = critique(jax.random.fold_in(key, 2), state.interest, shown, info["clicked_slot"] >= 0, params)
        budget = next_state.budget - params.question_cost * asked
        next_state = next_state.replace(budget=budget, last_question=question, last_answer=said,
                                        last_critique=critiqued, questions=state.questions + asked)
        terminated = budget <= 0.0
        truncated = jnp.logical_and(next_state.step >= params.max_steps, ~terminated)
        info = ConversationalStepInfo(**info, question=question, asked=asked.astype(jnp.float32), answer=said,
                                      critique=critiqued)
        info["budget"] = budget
        return self.get_obs(next_state, params), next_state, reward, terminated, truncated, info

    def get_obs(self, state: ConversationalState, params: ConversationalParams) -> dict[str, jax.Array]:
        said = state.last_critique >= 0
        embedding = jnp.where(said, params.critique_features[jnp.maximum(state.last_critique, 0)], 0.0)
        return {
            **super().get_obs(state, params),
            "question": state.last_question[None],
            "answer": state.last_answer[None],
            "critique": state.last_critique[None],
            "critique_embedding": embedding,
        }
