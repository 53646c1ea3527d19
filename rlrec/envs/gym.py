"""Gymnasium adapters: ``gymnasium.make("rlrec/<id>")`` and a JAX-batched ``gymnasium.make_vec("rlrec/<id>")``.

The adapters hold the functional env, its params and a PRNG key; each step is one jitted call. Actions are
validated here (the functional core cannot raise under ``jit``): out-of-range ids, wrong shape or dtype raise
:class:`InvalidActionError` naming the problem.

Repeated items in a slate: the action space is a ``MultiDiscrete`` (``k`` slots of ``N`` items), so libraries
that sample each slot on its own (Stable-Baselines3's PPO) can produce ``[5, 5, 9]``. As in the functional
core, an item is shown once, in its first slot; a later copy leaves its slot empty (never clicked), which costs
the agent a slot and so shows up in its reward and regret. ``strict_slates=True`` refuses such slates instead
(``InvalidActionError``) for code that should never produce them. Random samples are always distinct.

Flat actions (``flat_action=True``, for libraries without ``Dict`` action spaces, such as Stable-Baselines3):
a conversational env's ``{"slate", "question"}`` action becomes one :class:`GymFlatConversational`, a
``MultiDiscrete([N] * k + [K + 1])``: the slate's ``k`` item ids, then the question plus one (``0`` asks
nothing, ``j + 1`` asks key-term ``j``). The other ids' actions are already flat and do not change, so one
``flat_action=True`` serves every id::

    env = gymnasium.make("rlrec/MovieLens-ConversationalSlate-v0", flat_action=True)
    env.step(np.array([12, 7, 40, 3, 99, 0]))    # slate [12, 7, 40, 3, 99], no question
    env.step(np.array([12, 7, 40, 3, 99, 5]))    # the same slate, and ask key-term 4
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from rlrec.envs.conversation import ConversationalEnv
from rlrec.envs.registry import make
from rlrec.envs.spaces import GymSlate, sample_distinct_slates, slates_are_distinct
from rlrec.errors import InputError


class InvalidActionError(InputError):
    """An action that is not a valid item index or slate (or question) for this environment."""


_ANSWERS = {1.0: "yes", -1.0: "no", 0.0: "none"}


def _to_numpy(tree: Any) -> Any:
    return jax.tree.map(np.asarray, tree)


def validate_actions(
    action: Any, num_items: int, slate_size: int, batch: int | None = None, distinct: bool = True
) -> np.ndarray:
    """Checks one action (``batch=None``) or a batch and returns it as an int32 array.

    Single-item envs take an integer (shape ``()``); slate envs take ``slate_size`` integers, distinct ones
    when ``distinct`` (otherwise a repeat is shown once, see the module docstring).
    """
    expected = (() if slate_size == 1 else (slate_size,)) if batch is None else (
        (batch,) if slate_size == 1 else (batch, slate_size)
    )
    what = "an item index" if slate_size == 1 else f"a slate of {slate_size} item indices"
    try:
        array = np.asarray(action)
    except (ValueError, TypeError, OverflowError) as error:  # ragged lists, objects numpy cannot hold
        raise InvalidActionError(f"Action must be {what} with shape {expected}; {action!r:.80} is not an array "
                                 f"({error}).") from None
    if slate_size == 1 and batch is None and array.shape == (1,):
        array = array.reshape(())  # a 1-item slate written as a list is still one item
    if array.shape != expected:
        raise InvalidActionError(f"Action must be {what} with shape {expected}, got shape {array.shape}.")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise InvalidActionError(f"Action must hold integer item indices, got dtype {array.dtype}.")
    out_of_range = (array < 0) | (array >= num_items)
    if out_of_range.any():
        bad = int(array[out_of_range].flat[0])
        raise InvalidActionError(f"Item index {bad} is out of range: this catalog has items 0..{num_items - 1}.")
    if slate_size > 1 and distinct:
        ordered = np.sort(array, axis=-1)
        repeated = (ordered[..., 1:] == ordered[..., :-1]).any(axis=-1)
        if np.any(repeated):
            row = np.atleast_2d(array)[int(np.flatnonzero(np.atleast_1d(repeated))[0])]
            raise InvalidActionError(f"A slate must show distinct items; {row.tolist()} repeats an item "
                                     "(strict_slates=True; without it a repeat is shown once).")
    return array.astype(np.int32)


def validate_conversational_actions(
    action: Any, num_items: int, slate_size: int, num_key_terms: int, batch: int | None = None, distinct: bool = True
) -> dict[str, np.ndarray]:
    """Checks a conversational action ``{"slate": ..., "question": ...}`` (or a batch of them) and returns it as
    int32 arrays: the slate as :func:`validate_actions` checks it, the question a key-term index or -1 for none."""
    if not isinstance(action, dict) or set(action) != {"slate", "question"}:
        got = sorted(action) if isinstance(action, dict) else type(action).__name__
        raise InvalidActionError(f"Action must be a dict {{'slate': ..., 'question': ...}} (question -1 asks "
                                 f"nothing), got {got}.")
    slate = validate_actions(action["slate"], num_items, slate_size, batch=batch, distinct=distinct)
    expected = () if batch is None else (batch,)
    try:
        question = np.asarray(action["question"])
    except (ValueError, TypeError, OverflowError):
        raise InvalidActionError(
            f"The question must be an integer key-term index or -1, got {action['question']!r:.80}."
        ) from None
    if question.shape != expected or question.dtype == bool or not np.issubdtype(question.dtype, np.integer):
        raise InvalidActionError(f"The question must be an integer with shape {expected} (a key-term index, -1 for "
                                 f"none), got {question.dtype} with shape {question.shape}.")
    bad = (question < -1) | (question >= num_key_terms)
    if bad.any():
        raise InvalidActionError(f"Question {int(question[bad].flat[0])} is out of range: this env has key-terms "
                                 f"0..{num_key_terms - 1}, and -1 asks nothing.")
    return {"slate": slate, "question": question.astype(np.int32)}


def validate_flat_conversational_actions(
    action: Any, num_items: int, slate_size: int, num_key_terms: int, batch: int | None = None, distinct: bool = True
) -> dict[str, np.ndarray]:
    """Checks a flat conversational action (``k`` item ids, then the question plus one; see the module docstring)
    or a batch of them, and returns the ``{"slate", "question"}`` dict the env takes (the question -1 for none)."""
    expected = (slate_size + 1,) if batch is None else (batch, slate_size + 1)
    what = f"{slate_size} item id{'s' if slate_size > 1 else ''} then the question plus one (0 asks nothing)"
    try:
        array = np.asarray(action)
    except (ValueError, TypeError, OverflowError) as error:  # ragged lists, objects numpy cannot hold
        raise InvalidActionError(f"A flat action is {what}, shape {expected}; {action!r:.80} is not an array "
                                 f"({error}).") from None
    if array.shape != expected:
        raise InvalidActionError(f"A flat action is {what}, shape {expected}; got shape {array.shape}.")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise InvalidActionError(f"A flat action must hold integers ({what}), got dtype {array.dtype}.")
    question = array[..., slate_size]
    bad = (question < 0) | (question > num_key_terms)
    if bad.any():
        raise InvalidActionError(f"The flat action's last entry {int(question[bad].flat[0])} is out of range: 0 asks "
                                 f"nothing, 1..{num_key_terms} ask key-terms 0..{num_key_terms - 1}.")
    slate = array[..., 0] if slate_size == 1 else array[..., :slate_size]
    return validate_conversational_actions({"slate": slate, "question": question - 1}, num_items, slate_size,
                                           num_key_terms, batch=batch, distinct=distinct)


class GymFlatConversational(gymnasium.spaces.MultiDiscrete):
    """A conversational action as one ``MultiDiscrete([N] * k + [K + 1])``: ``k`` slots of ``N`` items, then the
    question plus one (``0`` asks nothing). Samples show distinct items and ask uniformly (nothing included).

    ``contains`` requires distinct items when ``distinct`` (``strict_slates``), as :class:`GymSlate` does.
    Batched (``shape (B, k + 1)``) by :func:`gymnasium.vector.utils.batch_space`: each row is its own action.
    """

    def __init__(self, num_items: int, slate_size: int, num_key_terms: int, batch: int | None = None,
                 seed: int | None = None, distinct: bool = True):
        row = [num_items] * slate_size + [num_key_terms + 1]
        super().__init__(np.array(row if batch is None else [row] * batch, dtype=np.int64), seed=seed)
        self.num_items, self.slate_size, self.num_key_terms = num_items, slate_size, num_key_terms
        self.batch, self.distinct = batch, bool(distinct)

    def sample(self, mask=None, probability=None):
        if mask is not None or probability is not None:
            raise NotImplementedError("GymFlatConversational.sample does not take a mask or probabilities.")
        rows = 1 if self.batch is None else self.batch
        actions = np.stack([
            np.append(sample_distinct_slates(self.np_random, self.num_items, self.slate_size, 1)[0],
                      self.np_random.integers(self.num_key_terms + 1))
            for _ in range(rows)
        ]).astype(self.dtype)
        return actions[0] if self.batch is None else actions

    def contains(self, x) -> bool:
        if not super().contains(x):
            return False
        slates = np.asarray(x).reshape(-1, self.slate_size + 1)[:, :self.slate_size]
        return not self.distinct or slates_are_distinct(slates)

    def __repr__(self) -> str:
        batch = "" if self.batch is None else f", batch={self.batch}"
        repeats = "" if self.distinct else ", distinct=False"
        return (f"GymFlatConversational(num_items={self.num_items}, slate_size={self.slate_size}, "
                f"num_key_terms={self.num_key_terms}{batch}{repeats})")

    def __eq__(self, other) -> bool:
        fields = ("num_items", "slate_size", "num_key_terms", "batch", "distinct")
        return isinstance(other, GymFlatConversational) and all(getattr(self, f) == getattr(other, f) for f in fields)


@batch_space.register(GymFlatConversational)
def _batch_flat_conversational(space: GymFlatConversational, n: int = 1) -> GymFlatConversational:
    if space.batch is not None:
        raise InputError("A batched action space cannot be batched again.")
    return GymFlatConversational(space.num_items, space.slate_size, space.num_key_terms, batch=n,
                                 seed=int(space.np_random.integers(2**31)), distinct=space.distinct)


def _gym_action_space(env, params, strict_slates: bool, flat_action: bool) -> gymnasium.spaces.Space:
    if flat_action and isinstance(env, ConversationalEnv):
        return GymFlatConversational(env.num_items(params), env.slate_size, env.num_key_terms(params),
                                     distinct=strict_slates)
    space = env.action_space(params).to_gymnasium()
    if isinstance(space, GymSlate):
        space = GymSlate(space.num_items, space.slate_size, distinct=strict_slates)
    if isinstance(space, gymnasium.spaces.Dict) and isinstance(space["slate"], GymSlate):
        slate = space["slate"]
        space = gymnasium.spaces.Dict({"slate": GymSlate(slate.num_items, slate.slate_size, distinct=strict_slates),
                                       "question": space["question"]})
    return space


def _checked(env, params, action: Any, strict_slates: bool, flat_action: bool, batch: int | None = None) -> Any:
    """An action for ``env`` checked as its kind takes it (a slate, a conversational dict, or its flat form)."""
    if isinstance(env, ConversationalEnv):
        check = validate_flat_conversational_actions if flat_action else validate_conversational_actions
        return check(action, env.num_items(params), env.slate_size, env.num_key_terms(params), batch=batch,
                     distinct=strict_slates)
    return validate_actions(action, env.num_items(params), env.slate_size, batch=batch, distinct=strict_slates)


def _functional(env_id: str | None, functional, overrides: dict):
    if functional is not None:
        if env_id is not None or overrides:
            raise InputError("Pass either env_id (with overrides) or functional=(env, params), not both.")
        return functional
    if env_id is None:
        raise InputError("Pass a registered env_id or functional=(env, params).")
    return make(env_id, **overrides)


class RecGymEnv(gymnasium.Env):
    """One simulated user at a time, as a standard Gymnasium environment (see :class:`~rlrec.envs.RecEnv`)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        env_id: str | None = None,
        render_mode: str | None = None,
        *,
        functional=None,
        strict_slates: bool = False,
        flat_action: bool = False,
        **overrides: Any,
    ):
        """Args: a registered ``env_id`` with overrides, or ``functional=(env, params)`` built elsewhere;
        ``strict_slates=True`` refuses slates that repeat an item (by default a repeat is shown once);
        ``flat_action=True`` takes a conversational action as one integer array (see the module docstring)."""
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise InputError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}."
            )
        self.render_mode = render_mode
        self.strict_slates, self.flat_action = bool(strict_slates), bool(flat_action)
        self.env, self.params = _functional(env_id, functional, overrides)
        self.action_space = _gym_action_space(self.env, self.params, self.strict_slates, self.flat_action)
        self.observation_space = self.env.observation_space(self.params).to_gymnasium()
        self._reset = jax.jit(self.env.reset)
        self._step = jax.jit(self.env.step_env)
        self._key = None
        self._state = None
        self._last: dict[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._key = jax.random.key(int(self.np_random.integers(0, 2**31 - 1)))
        self._key, reset_key = jax.random.split(self._key)
        obs, self._state = self._reset(reset_key, self.params)
        self._last = {}
        return _to_numpy(obs), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("Call reset() before step().")
        action = _checked(self.env, self.params, action, self.strict_slates, self.flat_action)
        self._key, step_key = jax.random.split(self._key)
        obs, self._state, reward, terminated, truncated, info = self._step(step_key, self._state, action, self.params)
        info = {name: value.item() if value.ndim == 0 else value for name, value in _to_numpy(info).items()}
        self._last = dict(info, action=jax.tree.map(lambda a: a.tolist(), action))
        return _to_numpy(obs), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        if self.render_mode != "ansi":
            return None
        if not self._last:
            return "no step taken yet"
        last = self._last
        shown = last["action"]["slate"] if isinstance(last["action"], dict) else last["action"]
        text = (
            f"step {int(self._state.step)}: showed {shown}, clicked slot {last['clicked_slot']} "
            f"(P(click)={last['expected_reward']:.3f}, oracle {last['oracle_expected_reward']:.3f}, "
            f"regret {last['regret']:.3f}), budget {last['budget']:.2f}"
        )
        if last.get("question", -1) >= 0:
            text += f"; asked key-term {last['question']}, answer {_ANSWERS[last['answer']]}"
        if last.get("critique", -1) >= 0:
            text += f"; critique {last['critique']}"
        return text


class RecVectorEnv(gymnasium.vector.VectorEnv):
    """``num_envs`` users stepping in one jitted, vmapped call (auto-reset in the same step).

    ``infos`` holds the per-env info arrays; after an episode ends, ``infos["final_obs"]`` holds the last
    observations of the finished episodes and ``infos["_final_obs"]`` marks which envs they belong to.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        env_id: str | None = None,
        num_envs: int = 1,
        *,
        functional=None,
        strict_slates: bool = False,
        flat_action: bool = False,
        **overrides: Any,
    ):
        if num_envs < 1:
            raise InputError(f"num_envs must be >= 1, got {num_envs}.")
        self.env, self.params = _functional(env_id, functional, overrides)
        self.num_envs = num_envs
        self.strict_slates, self.flat_action = bool(strict_slates), bool(flat_action)
        self.single_action_space = _gym_action_space(self.env, self.params, self.strict_slates, self.flat_action)
        self.single_observation_space = self.env.observation_space(self.params).to_gymnasium()
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._reset = jax.jit(jax.vmap(self.env.reset, in_axes=(0, None)))
        self._step = jax.jit(jax.vmap(self.env.step, in_axes=(0, 0, 0, None)))
        self._key = None
        self._state = None

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if isinstance(seed, (list, tuple)):
            seed = seed[0]
        super().reset(seed=seed)
        self._key = jax.random.key(int(self.np_random.integers(0, 2**31 - 1)))
        self._key, reset_key = jax.random.split(self._key)
        obs, self._state = self._reset(jax.random.split(reset_key, self.num_envs), self.params)
        return _to_numpy(obs), {}

    def step(self, actions):
        if self._state is None:
            raise RuntimeError("Call reset() before step().")
        actions = _checked(self.env, self.params, actions, self.strict_slates, self.flat_action, batch=self.num_envs)
        self._key, step_key = jax.random.split(self._key)
        obs, self._state, rewards, terminated, truncated, info = self._step(
            jax.random.split(step_key, self.num_envs), self._state, actions, self.params
        )
        info = _to_numpy(info)
        final_obs = info.pop("final_observation")
        terminated, truncated = np.asarray(terminated), np.asarray(truncated)
        done = terminated | truncated
        if done.any():
            info["final_obs"] = final_obs
            info["_final_obs"] = done
        return _to_numpy(obs), np.asarray(rewards), terminated, truncated, info
