"""A logged run of a behaviour policy, round by round, with the propensities off-policy evaluation needs.

:func:`rlrec.ope.collect` writes it; :mod:`rlrec.ope.io` saves and loads it (``.npz`` or Parquet) and exports it
to Open Bandit Pipeline's ``bandit_feedback`` layout. NumPy only: reading a log loads no JAX.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlrec.errors import InputError

# The observation's fields, as the recommender saw them (rlrec.envs.recsys.RecEnv.get_obs).
OBSERVATION_FIELDS = ("request", "history_items", "history_clicks", "history_feedback", "progress")
STATE_PREFIX = "state."  # a hidden state field's name among the log's arrays (and its entry in a file)

# Every array of a log but the states: its shape per round, in the log's own sizes (d: the request's dimension,
# H: the history's length, k: the slate size), and the dtype collect writes (the layout the Log docstring states).
ROUND_LAYOUT = {
    "request": (("d",), np.float32), "history_items": (("H", "k"), np.int32), "history_clicks": (("H",), np.int32),
    "history_feedback": (("H",), np.float32), "progress": ((1,), np.float32), "user": ((), np.int32),
    "step": ((), np.int32), "slate": (("k",), np.int32), "clicks": (("k",), np.float32), "reward": ((), np.float32),
    "propensity": ((), np.float64), "prefix_propensity": (("k",), np.float64),
    "slot_propensity": (("k",), np.float64), "expected_reward": ((), np.float32),
    "behaviour_greedy": (("k",), np.int32),
}
# Arrays of item ids, slots and counters: any integer dtype (the others: any real or boolean dtype).
_INTEGER_FIELDS = ("history_items", "history_clicks", "user", "step", "slate", "behaviour_greedy")
# A probability computed in float32 may pass 1 by rounding (the estimators allow the same).
_PROBABILITY_SLACK = 1e-6
# What to do with a log whose fields cannot be trusted: its numbers came from the simulator, so no edit repairs it.
FIX = "collect the log again (rlrec.ope.collect) rather than editing it"


@dataclasses.dataclass
class Log:
    """Rounds logged under a behaviour policy (NumPy arrays, rounds first; ``n`` rounds, slates of ``k``).

    What the recommender saw:
        request: float32 ``(n, d)``, the user's request embedding.
        history_items, history_clicks, history_feedback, progress: the rest of the observation
            (``(n, H, k)`` int32, ``(n, H)`` int32, ``(n, H)`` float32, ``(n, 1)`` float32).
        user: int32 ``(n,)``, which simulated user stream the round belongs to (0..users-1).
        step: int32 ``(n,)``, the round's step in that stream (0 for the first).

    What was shown and what happened:
        slate: int32 ``(n, k)``, the items shown, slot by slot (``k = 1`` for single items).
        clicks: float32 ``(n, k)``, 1 in the clicked slot.
        reward: float32 ``(n,)``, 1 for a click anywhere in the slate.

    The behaviour policy's probabilities of what it showed (computed as float32 log-probabilities, so exact to a
    relative 1e-5, then stored as float64 so that a slate's 1e-20 keeps its digits):
        propensity: float64 ``(n,)``, of the whole slate (ordered).
        prefix_propensity: float64 ``(n, k)``, of its first ``j + 1`` slots (``[:, -1]`` is ``propensity``).
        slot_propensity: float64 ``(n, k)``, that item ``slate[:, j]`` is in slot ``j`` (the marginal).
        propensity_samples: 0 when every probability is exact, else the Monte Carlo draws per round behind the
            estimated ones: all of them for a sampled policy (e.g. linear Thompson sampling), the slot
            marginals after the first slot for a softmax (Plackett-Luce) slate, whose prefixes stay exact.
        behaviour_greedy: int32 ``(n, k)``, the greedy slate of an epsilon-greedy behaviour (its pseudo-inverse
            weights need it), else ``None``.

    The truth, hidden from every estimator:
        expected_reward: float32 ``(n,)``, the exact expected clicks of the logged slate for that user then.
        states: the env's hidden state of every round (a dict of ``(n, ...)`` arrays by field name:
            ``interest``, ``memory``, ...), from which :func:`rlrec.ope.true_value` computes any target's exact
            value on the same users.
        state_class: the import path of the env's state class (``"rlrec.envs.recsys.EnvState"``).

    Facts:
        env_id, behaviour (the policy's name), behaviour_kind (``"uniform"``, ``"epsilon-greedy"``,
        ``"softmax"``, ``"greedy"``, ``"sampled"``), behaviour_settings (e.g. ``{"epsilon": 0.1}``),
        num_items, slate_size, seed.
        env_fingerprint: what made the env's users behave as they did (its class, static settings and every
            parameter, by :func:`rlrec.ope.collector.env_fingerprint`), so that the log is only ever evaluated on
            that env; ``None`` for a log saved before rlrec recorded it (format 1) or built by hand.

    :meth:`check` validates every field (``rlrec.ope.load`` and every estimate and truth call it).
    """

    env_id: str
    behaviour: str
    behaviour_kind: str
    behaviour_settings: dict[str, Any]
    num_items: int
    slate_size: int
    seed: int
    request: np.ndarray
    history_items: np.ndarray
    history_clicks: np.ndarray
    history_feedback: np.ndarray
    progress: np.ndarray
    user: np.ndarray
    step: np.ndarray
    slate: np.ndarray
    clicks: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray
    prefix_propensity: np.ndarray
    slot_propensity: np.ndarray
    expected_reward: np.ndarray
    states: dict[str, np.ndarray]
    state_class: str = "rlrec.envs.recsys.EnvState"
    propensity_samples: int = 0
    behaviour_greedy: np.ndarray | None = None
    env_fingerprint: dict[str, str] | None = None

    ROUND_FIELDS = ("request", "history_items", "history_clicks", "history_feedback", "progress", "user", "step",
                    "slate", "clicks", "reward", "propensity", "prefix_propensity", "slot_propensity",
                    "expected_reward")

    @property
    def num_rounds(self) -> int:
        return int(self.reward.shape[0])

    def __len__(self) -> int:
        return self.num_rounds

    def observations(self) -> dict[str, np.ndarray]:
        """The observations of every round, as the env's ``get_obs`` lays them out (rounds first)."""
        return {name: getattr(self, name) for name in OBSERVATION_FIELDS}

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the log by name, as NumPy (the states as ``state.<field>``): what a saved log holds."""
        arrays = {name: np.asarray(getattr(self, name)) for name in self.ROUND_FIELDS}
        if self.behaviour_greedy is not None:
            arrays["behaviour_greedy"] = np.asarray(self.behaviour_greedy)
        arrays.update({STATE_PREFIX + name: np.asarray(value) for name, value in self.states.items()})
        return arrays

    def check(self, source: str = "The log") -> None:
        """Raises :class:`~rlrec.errors.InputError` unless every field is one :func:`rlrec.ope.collect` could write.

        The facts' types; every array's shape in the log's own sizes (:func:`check_layout`); item ids in ``[0, N)``
        (``[-1, N)`` in the history); clicks 0 or 1, at most one per round, and the reward equal to them (the
        envs' reward: a click anywhere in the slate); every float finite; the propensities in ``(0, 1]``; the
        expected reward in ``[0, 1]``. An estimate from a log that breaks any of these is wrong without a sign
        (a slate id of 10^6 reads another item's features; rewards times 7 multiply every estimate but the truth).
        The message names the field, the first bad round and its value, and the fix. NumPy passes over the
        arrays: milliseconds per 10^5 rounds.

        Args:
            source: what the message names first (a file's path; ``"The log"`` for a log in memory).
        """
        _check_facts(self, source)
        arrays = self.arrays()
        check_layout({name: (value.shape, value.dtype) for name, value in arrays.items()}, self.slate_size, source)
        _check_values(self, arrays, source)

    def head(self, rounds: int) -> "Log":
        """The first ``rounds`` rounds (a smaller log of the same run: the suites' 1k and 10k logs)."""
        if not 1 <= rounds <= self.num_rounds:
            raise InputError(f"rounds must be in 1..{self.num_rounds} (the log's size), got {rounds}.")
        cut = {name: getattr(self, name)[:rounds] for name in self.ROUND_FIELDS}
        if self.behaviour_greedy is not None:
            cut["behaviour_greedy"] = self.behaviour_greedy[:rounds]
        cut["states"] = {name: value[:rounds] for name, value in self.states.items()}
        return dataclasses.replace(self, **cut)

    def __repr__(self) -> str:
        return (f"Log(env_id={self.env_id!r}, behaviour={self.behaviour!r}, rounds={self.num_rounds:,}, "
                f"slate_size={self.slate_size}, items={self.num_items:,}, seed={self.seed}, "
                f"mean_reward={float(np.mean(self.reward)) if self.num_rounds else float('nan'):.4f})")


def check_layout(layout: Mapping[str, tuple[tuple[int, ...], Any]], slate_size: int, source: str) -> int:
    """Raises :class:`~rlrec.errors.InputError` unless ``layout`` (an array's name -> ``(shape, dtype)``, the
    states as ``state.<field>``) is a log's: rounds first in every array, each field of :data:`ROUND_LAYOUT` in the
    log's own sizes, numbers only. It reads shapes only, so :mod:`rlrec.ope.io` checks a file's headers with it
    before reading any data.

    Returns:
        The number of rounds (the length of ``reward``).
    """
    reward = tuple(layout["reward"][0])
    if len(reward) != 1 or reward[0] < 1:
        raise InputError(f"{source}: reward has shape {reward}; a log holds (rounds,) rewards, at least one; {FIX}.")
    rounds = reward[0]
    request, history = tuple(layout.get("request", ((),))[0]), tuple(layout.get("history_items", ((),))[0])
    sizes = {"k": slate_size, "d": request[1] if len(request) == 2 else "d",
             "H": history[1] if len(history) == 3 else "H"}
    for name, (shape, dtype) in layout.items():
        shape, dtype = tuple(int(size) for size in shape), np.dtype(dtype)
        if name in ROUND_LAYOUT:
            expected = (rounds, *(sizes.get(size, size) for size in ROUND_LAYOUT[name][0]))
            if shape != expected:
                raise InputError(f"{source}: {name} has shape {shape}; a log of {rounds} rounds (the length of "
                                 f"reward) of slates of {slate_size} has {expected} (d: the request's dimension, H: "
                                 f"the history's length); {FIX}.")
            kinds = "iu" if name in _INTEGER_FIELDS else "biuf"
            if dtype.kind not in kinds:
                raise InputError(f"{source}: {name} has dtype {dtype}; it holds "
                                 f"{'integers' if kinds == 'iu' else 'real numbers'}; {FIX}.")
        elif not shape or shape[0] != rounds:
            raise InputError(f"{source}: {name} has shape {shape}; every array of a log has the rounds first "
                             f"({rounds} rounds, the length of reward); {FIX}.")
        if dtype.hasobject:  # never unpickled from a file; refused in memory too, as a file could not hold it
            raise InputError(f"{source}: {name} holds Python objects (dtype object); a log holds numbers only; {FIX}.")
    return rounds


def is_whole_number(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or NumPy), never a bool, a float or a string holding one."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_facts(log: Log, source: str) -> None:
    """The facts' types and ranges (a file's JSON could hold anything)."""
    def refuse(name: str, rule: str, value: Any) -> None:
        raise InputError(f"{source}: {name} must be {rule}, got {value!r}; {FIX}.")

    for name in ("env_id", "behaviour", "behaviour_kind", "state_class"):
        if not isinstance(getattr(log, name), str):
            refuse(name, "a string", getattr(log, name))
    if not isinstance(log.behaviour_settings, dict):
        refuse("behaviour_settings", "a dict", log.behaviour_settings)
    for name, low in (("num_items", 1), ("slate_size", 1), ("propensity_samples", 0), ("seed", -math.inf)):
        value = getattr(log, name)
        if not is_whole_number(value) or value < low:
            refuse(name, "a whole number" + (f" >= {low}" if low > -math.inf else ""), value)
    if log.slate_size > log.num_items:
        refuse("slate_size", f"at most num_items ({log.num_items}): a slate shows distinct items", log.slate_size)
    if not isinstance(log.states, dict) or not all(isinstance(name, str) for name in log.states):
        refuse("states", "a dict of arrays by field name", type(log.states).__name__)
    fingerprint = log.env_fingerprint
    if fingerprint is not None and not (isinstance(fingerprint, dict) and all(
            isinstance(key, str) and isinstance(value, str) for key, value in fingerprint.items())):
        refuse("env_fingerprint", "None or a dict of strings (rlrec.ope.collector.env_fingerprint)", fingerprint)
    if log.behaviour_kind == "epsilon-greedy":  # its pseudo-inverse weights read both
        if log.behaviour_greedy is None:
            refuse("behaviour_greedy", "the greedy slates of the epsilon-greedy behaviour", None)
        epsilon = log.behaviour_settings.get("epsilon")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.number)) or not 0 <= epsilon <= 1:
            refuse("behaviour_settings['epsilon']", "the epsilon-greedy behaviour's epsilon, in [0, 1]", epsilon)


def _refuse(source: str, name: str, rule: str, values: np.ndarray, bad: np.ndarray) -> None:
    """InputError: ``name`` must ``rule``; the first round where ``bad`` (shaped as ``values``) holds, its first bad
    value."""
    rows = bad.reshape(bad.shape[0], -1).any(axis=1)
    index = int(np.argmax(rows))
    value = values[index].reshape(-1)[np.argmax(bad[index].reshape(-1))]
    raise InputError(f"{source}: {name} must {rule}; round {index} has {value.item()!r}; {FIX}.")


def _check_values(log: Log, arrays: dict[str, np.ndarray], source: str) -> None:
    """Ranges and finiteness of every array, the first failing check reported (see :meth:`Log.check`)."""
    items, slots = log.num_items, log.slate_size

    def require(name: str, rule: str, bad: np.ndarray, values: np.ndarray | None = None) -> None:
        if bad.any():
            _refuse(source, name, rule, arrays[name] if values is None else values, bad)

    for name, low, high, what in (
            ("slate", 0, items, f"item ids in [0, {items}) (the log's {items} items)"),
            ("behaviour_greedy", 0, items, f"item ids in [0, {items}) (the log's {items} items)"),
            ("history_items", -1, items, f"item ids in [-1, {items}) (-1: nothing shown yet)"),
            ("history_clicks", -1, slots, f"clicked slots in [-1, {slots}) (-1: no click)")):
        if name in arrays:
            require(name, f"hold {what}", (arrays[name] < low) | (arrays[name] >= high))
    for name in ("user", "step"):
        require(name, "hold indices >= 0 (of the user stream, of the round in it)", arrays[name] < 0)
    clicks, reward = arrays["clicks"], arrays["reward"]
    require("clicks", "be 0 or 1 (1 in the clicked slot)", (clicks != 0) & (clicks != 1))
    counts = clicks.sum(axis=1)
    require("clicks", "have at most one click per round (the choice model clicks one item of a slate, or none; "
            "the value: the round's clicks summed)", counts > 1, counts)
    require("reward", "be 0 or 1 (the envs' reward: 1 for a click anywhere in the slate)",
            (reward != 0) & (reward != 1))
    require("reward", "equal the round's clicks summed over the slate (the envs' reward)", reward != counts)
    for name, value in arrays.items():
        if (name in OBSERVATION_FIELDS or name.startswith(STATE_PREFIX)) and value.dtype.kind == "f":
            require(name, "be finite", ~np.isfinite(value))
    expected = arrays["expected_reward"]
    require("expected_reward", "be finite expected clicks in [0, 1] (one click per slate at most)",
            ~((expected >= 0) & (expected <= 1 + _PROBABILITY_SLACK)))
    for name in ("propensity", "prefix_propensity", "slot_propensity"):
        value = arrays[name]  # NaN fails both comparisons
        require(name, "hold probabilities in (0, 1] (of what the behaviour showed, so never 0)",
                ~((value > 0) & (value <= 1 + _PROBABILITY_SLACK)))
    require("propensity", "equal prefix_propensity[:, -1] (the whole slate's probability)",
            arrays["propensity"] != arrays["prefix_propensity"][:, -1])
