"""Agents by name: ``make_agent(name, env, **hyperparameters)`` and each name's declared hyperparameters."""

from __future__ import annotations

from typing import Any

from rlrec.agents.base import Agent, Hyperparameter, Transition, check_hyperparameters, env_settings, hyperparameters_of
from rlrec.agents.bandits import (
    EpsilonGreedy,
    LinTS,
    LinUCB,
    OracleAgent,
    PopularityAgent,
    RandomAgent,
    TextMatchAgent,
    UCB1,
)
from rlrec.agents.conversational import AskingLinTS, AskingLinUCB, ConUCB
from rlrec.agents.dqn import DQN
from rlrec.agents.policy_gradient import PolicyGradient
from rlrec.agents.names import AGENT_NAMES, ASKING_AGENTS, DEEP_AGENTS, ROLLOUT_AGENTS  # noqa: F401  (re-exported)
from rlrec.errors import InputError

# name -> (class, default hyperparameters). LM-prior variants are the linear agents with a prior along the
# request embedding.
AGENTS: dict[str, tuple[type, dict[str, Any]]] = {
    "random": (RandomAgent, {}),
    "popularity": (PopularityAgent, {}),
    "text-match": (TextMatchAgent, {}),
    "epsilon-greedy": (EpsilonGreedy, {"epsilon": 0.1}),
    "ucb1": (UCB1, {}),
    "linucb": (LinUCB, {}),
    "lints": (LinTS, {}),
    # A stronger ridge (regulariser 5) lets the prior hold for the first rounds (tuned on MovieLens slates).
    "lm-linucb": (LinUCB, {"prior_scale": 0.5, "regulariser": 5.0}),
    "lm-lints": (LinTS, {"prior_scale": 0.5, "regulariser": 5.0}),
    "oracle": (OracleAgent, {}),
    # Conversational envs only (they ask about key-terms): ConUCB, and LinUCB / LinTS hearing answers through the LM.
    # ConUCB with the paper's settings (the class defaults) saved nothing over LinUCB on MovieLens slates: a "no"
    # as key-term reward 0 and a weak pull toward the key-term estimate. Answers as +-0.5 (click scale), a stronger
    # pull (lambda 0.3) and narrower bonuses, tuned on seed 1 (32 users x 50 steps; benchmarks/README.md).
    "conucb": (ConUCB, {"yes_reward": 0.5, "no_reward": -0.5, "arm_weight": 0.3, "alpha": 0.1, "key_term_alpha": 0.0}),
    "ask-linucb": (AskingLinUCB, {}),
    "ask-lints": (AskingLinTS, {}),
    "ask-lm-linucb": (AskingLinUCB, {"prior_scale": 0.5, "regulariser": 5.0}),
    "ask-random": (AskingLinUCB, {"question_selection": "random"}),
    # Deep RL (train with rlrec.train / `rlrec train`); on slate envs DQN is SlateQ.
    "dqn": (DQN, {}),
    "slateq": (DQN, {"decomposed": True}),
    "ppo": (PolicyGradient, {}),
    "reinforce": (
        PolicyGradient,
        {"clip": 0.0, "gae_lambda": 1.0, "epochs": 1, "minibatches": 1, "rollout_length": 32, "learning_rate": 1e-3},
    ),
}
assert tuple(AGENTS) == AGENT_NAMES, "rlrec.agents.AGENT_NAMES lists the agents of AGENTS, in order"
assert ROLLOUT_AGENTS == tuple(name for name, (cls, _) in AGENTS.items() if cls.learns_from_rollouts)
assert ASKING_AGENTS == tuple(name for name, (cls, _) in AGENTS.items() if cls.asks_questions)


def hyperparameter_names(name: str) -> list[str]:
    """The hyperparameters agent ``name`` takes (declared on its class; fields set from the env are not)."""
    if name not in AGENTS:
        raise InputError(f"Unknown agent {name!r}; choose one of {', '.join(AGENTS)}.")
    return sorted(hyperparameters_of(AGENTS[name][0]))


def hyperparameter_specs(name: str) -> dict[str, tuple[Any, Hyperparameter]]:
    """``{hyperparameter: (default for agent name, spec)}``: what ``--list-hp`` and help show."""
    cls, defaults = AGENTS[name]
    fields = cls.__dataclass_fields__
    return {
        field: (defaults.get(field, fields[field].default), spec) for field, spec in hyperparameters_of(cls).items()
    }


def make_agent(name: str, env: Any, **hyperparameters: Any) -> Agent:
    """An agent by name, sized for ``env`` (its slate size); hyperparameters override the defaults.

    Raises:
        ValueError: unknown name (the message lists the valid ones), unknown hyperparameter, or a value outside
            the hyperparameter's declared range (the message names it and the range).
    """
    if name not in AGENTS:
        raise InputError(f"Unknown agent {name!r}; choose one of {', '.join(AGENTS)}.")
    cls, defaults = AGENTS[name]
    settings = check_hyperparameters(cls, dict(defaults, **hyperparameters), agent=name)
    return cls(label=name, **{**env_settings(cls, env), **settings})
