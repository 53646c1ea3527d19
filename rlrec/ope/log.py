"""A logged run of a behaviour policy, round by round, with the propensities off-policy evaluation needs.

:func:`rlrec.ope.collect` writes it; :mod:`rlrec.ope.io` saves and loads it (``.npz`` or Parquet) and exports it
to Open Bandit Pipeline's ``bandit_feedback`` layout. NumPy only: reading a log loads no JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rlrec.errors import InputError

# The observation's fields, as the recommender saw them (rlrec.envs.recsys.RecEnv.get_obs).
OBSERVATION_FIELDS = ("request", "history_items", "history_clicks", "history_feedback", "progress")


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
