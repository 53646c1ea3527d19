"""The recommendation environment: a simulated user, a catalog, a slate each step (gymnax-style, pure JAX).

Reads top to bottom like the model in docs/design.md section 4.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypedDict

import chex
import jax
import jax.numpy as jnp
from flax import struct

from rlrec import _repr
from rlrec.envs import spaces
from rlrec.errors import InputError
from rlrec.simulators import choice, dynamics, population

# Steps of history an observation carries by default: every observation and replay buffer grows with it, and the
# deep agents' summary of it decays by 0.8 a step (history_decay), so the oldest step already weighs 0.8^7 = 0.21.
HISTORY_LENGTH = 8


@struct.dataclass
class EnvParams:
    """Everything numeric about an environment; a pytree, so any scalar knob can be vmapped.

    The catalog and the prototype users live here once, shared by every simulated user (never copied per
    user or per step). Shapes fix the catalog size ``N``, the simulator dimension ``d``, the number of
    prototypes ``P`` with ``R`` requests each, and the slate size ``k`` (``position_bias``).
    """

    # catalog
    item_features: jax.Array  # (N, d) unit-norm item embeddings in simulator space
    item_quality: jax.Array  # (N,) standardised quality (Bayesian-average rating)
    item_appeal: jax.Array  # (N,) standardised log-popularity: how tempting an item looks
    # population
    prototype_interests: jax.Array  # (P, d) hidden tastes of the prototype (real) users
    prototype_requests: jax.Array  # (P, R, d) their stated requests, LM-encoded
    prototype_log_weights: jax.Array  # (P,) log sampling weights
    interest_noise: jax.Array = 0.3  # spread of simulated users around their prototype
    # choice: v_i = affinity_weight <u, e_i> + quality_weight q_i + appeal_weight a_i - boredom_i + bias_slot
    affinity_weight: jax.Array = 5.0
    quality_weight: jax.Array = 0.3
    appeal_weight: jax.Array = 0.0
    position_bias: jax.Array = 0.0  # (k,) per-slot bias, highest first by convention
    no_click_logit: jax.Array = 3.0
    temperature: jax.Array = 1.0
    # dynamics
    drift_rate: jax.Array = 0.0
    boredom_weight: jax.Array = 0.0
    boredom_decay: jax.Array = 0.8
    satisfaction_scale: jax.Array = 8.0
    satisfaction_threshold: jax.Array = 0.3
    satisfaction_quality_weight: jax.Array = 0.5
    initial_budget: jax.Array = 1.0
    step_cost: jax.Array = 0.0
    budget_refund: jax.Array = 0.0
    max_steps: jax.Array = 200

    def __repr__(self) -> str:
        """Catalog and population sizes, then the knobs by value (arrays and tracers by shape: safe under jit)."""
        try:
            *batch, items, dim = self.item_features.shape
            prototypes, requests = self.prototype_requests.shape[-3:-1]
        except (AttributeError, ValueError):  # a params-shaped tree of something else (shardings, in_axes, None)
            return _repr.fields_repr(self)
        head = {"items": items, "dim": dim, "prototypes": prototypes, "requests": requests}
        if batch:  # a population of environments stacked for vmap
            head["batch"] = tuple(batch)
        head["max_steps"] = self.max_steps
        shown = ("item_features", "item_quality", "item_appeal", "prototype_interests", "prototype_requests",
                 "prototype_log_weights", "max_steps")
        return _repr.fields_repr(self, head, skip=shown)


@struct.dataclass
class EnvState:
    """One simulated user's hidden state and what has happened so far in the episode."""

    interest: jax.Array  # (d,) hidden, unit-norm
    request: jax.Array  # (d,) observed request embedding
    prototype: jax.Array  # () which prototype the user was drawn around
    memory: jax.Array  # (d,) boredom memory of recent consumption
    budget: jax.Array  # () session budget; the user leaves at <= 0
    step: jax.Array  # () steps taken in this episode
    history_items: jax.Array  # (H, k) item ids shown, most recent last; -1 before the first step
    history_clicks: jax.Array  # (H,) clicked slot per step, -1 for no click (or padding)
    history_feedback: jax.Array  # (H,) satisfaction of the clicked item, 0 without a click

    def __repr__(self) -> str:
        return _repr.fields_repr(self)

    def pushed_history(self, slate: jax.Array, clicked_slot: jax.Array, feedback: jax.Array) -> dict[str, jax.Array]:
        """The ``history_*`` fields after one more step (the oldest entry dropped), for ``state.replace``."""
        return {
            "history_items": jnp.concatenate([self.history_items[1:], slate[None]], axis=0),
            "history_clicks": jnp.concatenate([self.history_clicks[1:], clicked_slot[None]]),
            "history_feedback": jnp.concatenate([self.history_feedback[1:], feedback[None].astype(jnp.float32)]),
        }


class StepInfo(TypedDict):
    """The ``info`` of :meth:`RecEnv.step_env` (every env of rlrec, the probes included), one user.

    ``step`` adds ``final_observation``. Regret terms are NaN and ``oracle_slate`` -1 when ``track_regret`` is off.
    """

    expected_reward: jax.Array  # () expected clicks of the slate shown
    oracle_expected_reward: jax.Array  # () expected clicks of the best slate
    regret: jax.Array  # () their difference
    oracle_slate: jax.Array  # (k,) the best slate
    clicked_slot: jax.Array  # () slot clicked, k for none
    clicked_item: jax.Array  # () item clicked, -1 for none
    satisfaction: jax.Array  # () satisfaction with the clicked item, 0 without a click
    budget: jax.Array  # () the user's budget after the step


def step_info(expected_reward, oracle_expected_reward, regret, oracle_slate, clicked_slot, clicked_item,
              satisfaction, budget) -> StepInfo:
    """A :class:`StepInfo`, its fields in their order."""
    return StepInfo(expected_reward=expected_reward, oracle_expected_reward=oracle_expected_reward, regret=regret,
                    oracle_slate=oracle_slate, clicked_slot=clicked_slot, clicked_item=clicked_item,
                    satisfaction=satisfaction, budget=budget)


def progress(step: jax.Array, max_steps: jax.Array) -> jax.Array:
    """``step / max_steps`` as float32 ``(1,)``, capped at 1 (a Gymnasium user may step past the horizon)."""
    fraction = jnp.asarray(step, jnp.float32) / jnp.asarray(max_steps, jnp.float32)
    return jnp.minimum(fraction, 1.0)[..., None]


def empty_history(history_length: int, slate_size: int) -> dict[str, jax.Array]:
    """The ``history_*`` fields of a user who has seen nothing yet (item ids and clicks -1, feedback 0): the
    layout of the history every observation and env state carries."""
    return {
        "history_items": jnp.full((history_length, slate_size), -1, jnp.int32),
        "history_clicks": jnp.full((history_length,), -1, jnp.int32),
        "history_feedback": jnp.zeros((history_length,), jnp.float32),
    }


def blank_observation(dim: int, history_length: int, slate_size: int) -> dict[str, jax.Array]:
    """An observation of the envs' layout with nothing in it, from shapes alone (e.g. a replay buffer's example;
    :meth:`RecEnv.get_obs` fills the same keys from a state)."""
    return {"request": jnp.zeros((dim,), jnp.float32), **empty_history(history_length, slate_size),
            "progress": jnp.zeros((1,), jnp.float32)}


def bandit_features(env_params: Any) -> jax.Array:
    """``(N, d + 2)`` item features for linear bandits: the item embedding, its quality and its appeal.

    These are exactly the item attributes the simulated user's click utility is built from, so a linear
    model can represent any user (up to the choice model's non-linearity).
    """
    return jnp.concatenate(
        [env_params.item_features, env_params.item_quality[:, None], env_params.item_appeal[:, None]], axis=1
    )


def click_utility(params: EnvParams, match: jax.Array, memory_match: jax.Array, quality: jax.Array,
                  appeal: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(utility, match, boredom)`` of items from their ``match = <u, e_i>``, ``memory_match = <m, e_i>``, quality
    and appeal: ``v_i = affinity_weight match + quality_weight q_i + appeal_weight a_i - boredom_i`` (before
    position bias), with ``boredom_i = boredom_weight relu(memory_match)``; every item's or a slate's alike."""
    boredom = params.boredom_weight * jax.nn.relu(memory_match)
    utility = params.affinity_weight * match + params.quality_weight * quality + params.appeal_weight * appeal - boredom
    return utility, match, boredom


def display_name(default: str) -> Any:
    """The ``name`` field of an env class: shown in tables, left out of ``==`` and ``hash`` (so out of every compiled
    program: the env is a static argument of ``jax.jit``), so envs that differ only in name share programs."""
    return dataclasses.field(default=default, compare=False)


@dataclasses.dataclass(frozen=True)
class RecEnv:
    """A recommendation environment over one simulated user at a time (vmap for a population).

    Static configuration (shapes and code paths) lives on this object; numbers live in :class:`EnvParams`.

    Observation (dict):
        - ``request``: float32 ``(d,)``, the LM embedding of the user's stated request (unit norm).
        - ``history_items``: int32 ``(H, k)``, slates shown in the last ``H`` steps (-1 padding).
        - ``history_clicks``: int32 ``(H,)``, clicked slot per step (-1: no click or padding).
        - ``history_feedback``: float32 ``(H,)``, satisfaction in [0, 1] of each clicked item.
        - ``progress``: float32 ``(1,)``, the share of the horizon used, ``step / max_steps`` in [0, 1] (the
          step count itself is ``state.step``). A vector with bounds, so every client flattens and scales it.
    Action: int32 ``()`` item index when ``slate_size == 1``, else int32 ``(k,)`` distinct item indices (slot
        by slot). A repeated item in the functional core is shown once (later copies are ignored).
    Reward: float32 ``()``: 1 if the user clicked an item of the slate, else 0.
    Termination: the session budget ran out (the user left). Truncation: ``step >= max_steps``.
    Info: ``expected_reward`` (P(click) of the slate), ``oracle_expected_reward`` (the best slate's),
        ``regret`` (their difference, >= 0), ``oracle_slate`` (int32 ``(k,)``, the best slate),
        ``clicked_slot`` (-1 if none), ``clicked_item`` (-1 if none), ``satisfaction``, ``budget``,
        ``final_observation`` (the observation before an auto-reset; set by :meth:`step`, not :meth:`step_env`).
        The observation space is a :class:`spaces.Dict` of bounded 1-d or 2-d boxes, none 0-d, so
        Stable-Baselines3's ``check_env`` and ``MultiInputPolicy`` take it as it is.

    ``track_regret=False`` (for training, where nobody reads the oracle) skips the oracle: a step then costs
    ``O(k d)`` instead of ``O(N d)`` (only the shown items are scored), and ``regret``,
    ``oracle_expected_reward`` are NaN and ``oracle_slate`` is -1. The user's behaviour is identical.
    """

    slate_size: int = 1
    history_length: int = HISTORY_LENGTH
    choice_model: str = choice.MNL
    name: str = display_name("RecEnv")
    track_regret: bool = True
    # The Catalog rlrec.make built the env from (None for params of your own): its popularity and genres feed
    # novelty and genre entropy. Not part of the env's identity (left out of ==, hash and snapshots), so
    # compiled programs never depend on it.
    catalog: Any = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.slate_size < 1:
            raise InputError(f"slate_size must be >= 1, got {self.slate_size}.")
        if self.history_length < 1:
            raise InputError(f"history_length must be >= 1, got {self.history_length}.")
        if self.choice_model not in choice.CHOICE_MODELS:
            raise InputError(f"choice_model must be one of {choice.CHOICE_MODELS}, got {self.choice_model!r}.")

    # -- spaces -------------------------------------------------------------------------------------------

    def num_items(self, params: EnvParams) -> int:
        return int(params.item_features.shape[0])

    def action_space(self, params: EnvParams) -> spaces.Discrete | spaces.Slate:
        if self.slate_size == 1:
            return spaces.Discrete(self.num_items(params))
        return spaces.Slate(self.num_items(params), self.slate_size)

    def observation_space(self, params: EnvParams) -> spaces.Dict:
        dim = int(params.item_features.shape[1])
        history, k = self.history_length, self.slate_size
        return spaces.Dict(
            {
                "request": spaces.Box(-1.0, 1.0, (dim,), jnp.float32),
                "history_items": spaces.Box(-1, self.num_items(params) - 1, (history, k), jnp.int32),
                "history_clicks": spaces.Box(-1, k - 1, (history,), jnp.int32),
                "history_feedback": spaces.Box(0.0, 1.0, (history,), jnp.float32),
                "progress": spaces.Box(0.0, 1.0, (1,), jnp.float32),
            }
        )

    # -- the model ----------------------------------------------------------------------------------------

    def item_utilities(self, state: EnvState, params: EnvParams) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(utility (N,), match (N,), boredom (N,))`` of every item for this user, before position bias."""
        # One pass over the catalog for interest and memory, laid out (2, N): under vmap each user's scores
        # are contiguous, so XLA does not transpose a (N, users x 2) matrix.
        scores = jnp.stack([state.interest, state.memory]) @ params.item_features.T
        return click_utility(params, scores[0], scores[1], params.item_quality, params.item_appeal)

    def slate_utilities(
        self, state: EnvState, slate: jax.Array, params: EnvParams
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """:meth:`item_utilities` of the ``(k,)`` items of ``slate`` only: ``O(k d)`` work."""
        features = params.item_features[slate]
        return click_utility(params, features @ state.interest, features @ state.memory, params.item_quality[slate],
                             params.item_appeal[slate])

    def slot_click_probabilities(self, slate_utility: jax.Array, shown: jax.Array, params: EnvParams) -> jax.Array:
        """``(k,)`` the click probability of each slot of a slate whose items have utilities ``slate_utility``
        (before position bias; ``shown``: False for repeats): the choice model, as :meth:`step_env` draws from it
        and off-policy evaluation's exact truth (:func:`rlrec.ope.truth.slate_value`) reads it."""
        return choice.click_probabilities(
            (slate_utility + self._position_bias(params)) / params.temperature,
            params.no_click_logit / params.temperature,
            self.choice_model,
            shown,
        )

    def oracle_action(self, state: EnvState, params: EnvParams) -> jax.Array:
        """The slate maximising this step's click probability (reads hidden state: for checks and plots)."""
        utility, _, _ = self.item_utilities(state, params)
        slate = choice.oracle_slate(utility, self._position_bias(params))
        return slate[0] if self.slate_size == 1 else slate

    def _position_bias(self, params: EnvParams) -> jax.Array:
        return jnp.broadcast_to(jnp.asarray(params.position_bias, jnp.float32), (self.slate_size,))

    def pin_user(self, params: EnvParams, prototype: jax.Array) -> EnvParams:
        """``params`` whose population is prototype ``prototype`` alone (int32 ``()``, may be traced): every user
        drawn from them, at reset and after each episode, is drawn around it (``rlrec.run(users=...)``).

        A population of one, ``(1, d)`` and ``(1, R, d)``, so a pinned stream's memory does not grow with the
        population's size (sampling weights on one user would: ``P`` per stream). The users drawn are the same,
        number for number, as with all the weight on ``prototype``; their ``state.prototype`` is their index in the
        population of one, 0.
        """
        return params.replace(
            prototype_interests=params.prototype_interests[prototype][None],
            prototype_requests=params.prototype_requests[prototype][None],
            prototype_log_weights=jnp.zeros((1,), params.prototype_log_weights.dtype),
        )

    def reset_env(self, key: chex.PRNGKey, params: EnvParams) -> tuple[dict, EnvState]:
        """A fresh cold-start user drawn from the population: ``(obs, state)``."""
        state = self.initial_state(key, params)
        return self.get_obs(state, params), state

    def initial_state(self, key: chex.PRNGKey, params: EnvParams) -> EnvState:
        """The hidden state of a fresh cold-start user drawn from the population."""
        interest, request, prototype = population.sample_user(
            key,
            params.prototype_interests,
            params.prototype_requests,
            params.prototype_log_weights,
            params.interest_noise,
        )
        dim = params.item_features.shape[1]
        return EnvState(
            interest=interest,
            request=request,
            prototype=prototype.astype(jnp.int32),
            memory=jnp.zeros((dim,), jnp.float32),
            budget=jnp.asarray(params.initial_budget, jnp.float32),
            step=jnp.zeros((), jnp.int32),
            **empty_history(self.history_length, self.slate_size),
        )

    def step_env(
        self, key: chex.PRNGKey, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[dict, EnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """One step without auto-reset."""
        slate = jnp.reshape(jnp.asarray(action, jnp.int32), (self.slate_size,))
        shown = ~choice.mask_repeats(slate)
        position_bias = self._position_bias(params)

        if self.track_regret:
            # Utilities of every item: the shown slate's and the oracle's come from the same numbers.
            utility, match, boredom = self.item_utilities(state, params)
            slate_utility, slate_match, slate_boredom = utility[slate], match[slate], boredom[slate]
            best = choice.oracle_slate(utility, position_bias)
            oracle_expected_reward = choice.expected_clicks(
                utility[best], position_bias, params.no_click_logit, params.temperature, self.choice_model
            )
        else:
            slate_utility, slate_match, slate_boredom = self.slate_utilities(state, slate, params)
            best = jnp.full((self.slate_size,), -1, jnp.int32)
            oracle_expected_reward = jnp.asarray(jnp.nan, jnp.float32)
        probabilities = self.slot_click_probabilities(slate_utility, shown, params)
        expected_reward = jnp.sum(probabilities)
        # The oracle is exact, so regret >= 0 up to float rounding; clip that rounding away (NaN stays NaN).
        regret = jnp.where(self.track_regret, jnp.maximum(oracle_expected_reward - expected_reward, 0.0), jnp.nan)

        # The user's choice.
        clicked_slot = choice.sample_click(key, probabilities)
        clicked = clicked_slot >= 0
        slot = jnp.maximum(clicked_slot, 0)
        item = slate[slot]
        consumed = params.item_features[item]
        satisfied = dynamics.satisfaction(
            slate_match[slot],
            params.item_quality[item],
            slate_boredom[slot],
            params.satisfaction_scale,
            params.satisfaction_threshold,
            params.satisfaction_quality_weight,
        )
        feedback = jnp.where(clicked, satisfied, 0.0)

        # How the user changes.
        budget = dynamics.update_budget(state.budget, satisfied, clicked, params.step_cost, params.budget_refund)
        step = state.step + 1
        next_state = state.replace(
            interest=dynamics.drift(state.interest, consumed, params.drift_rate, clicked),
            memory=dynamics.update_memory(state.memory, consumed, params.boredom_decay, clicked),
            budget=budget,
            step=step,
            **state.pushed_history(slate, clicked_slot, feedback),
        )
        reward = clicked.astype(jnp.float32)
        terminated = budget <= 0.0
        truncated = jnp.logical_and(step >= params.max_steps, ~terminated)
        info = step_info(expected_reward, oracle_expected_reward, regret, best, clicked_slot,
                         jnp.where(clicked, item, -1), feedback, budget)
        return self.get_obs(next_state, params), next_state, reward, terminated, truncated, info

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        """What the recommender sees of ``state`` (see the class docstring; the probes inherit it)."""
        return {
            "request": state.request,
            "history_items": state.history_items,
            "history_clicks": state.history_clicks,
            "history_feedback": state.history_feedback,
            "progress": progress(state.step, params.max_steps),
        }

    # -- gymnax-style entry points --------------------------------------------------------------------------

    def reset(self, key: chex.PRNGKey, params: EnvParams) -> tuple[dict, EnvState]:
        """``(obs, state)`` of a new episode."""
        return self.reset_env(key, params)

    def step(
        self, key: chex.PRNGKey, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[dict, EnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """``(obs, state, reward, terminated, truncated, info)``, auto-resetting a finished episode.

        After termination or truncation the returned ``obs``/``state`` belong to a fresh user and
        ``info["final_observation"]`` holds the last observation of the finished episode. The reset costs
        ``O(d + H k)`` (no catalog-sized work), so paying it every step under ``jnp.where`` is cheap.
        """
        step_key, reset_key = jax.random.split(key)
        obs, next_state, reward, terminated, truncated, info = self.step_env(step_key, state, action, params)
        reset_obs, reset_state = self.reset_env(reset_key, params)
        done = jnp.logical_or(terminated, truncated)
        next_state = jax.tree.map(lambda fresh, old: jnp.where(done, fresh, old), reset_state, next_state)
        info = dict(info, final_observation=obs)
        obs = jax.tree.map(lambda fresh, old: jnp.where(done, fresh, old), reset_obs, obs)
        return obs, next_state, reward, terminated, truncated, info
