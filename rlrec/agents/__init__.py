"""Agents: pure functional ``init / act / update`` (docs/design.md section 6).

The names (:data:`AGENT_NAMES`, :data:`DEEP_AGENTS`) load without JAX; the rest loads on first use (PEP 562),
so the command line lists agents without loading JAX.
"""

from __future__ import annotations

from rlrec._lazy import attach
from rlrec.agents.names import AGENT_NAMES, ASKING_AGENTS, DEEP_AGENTS, ROLLOUT_AGENTS

__all__ = [
    "AGENTS",
    "AGENT_NAMES",
    "ASKING_AGENTS",
    "DEEP_AGENTS",
    "ROLLOUT_AGENTS",
    "DQN",
    "Agent",
    "AskingLinTS",
    "AskingLinUCB",
    "ConUCB",
    "DeepAgent",
    "PolicyGradient",
    "hyperparameter_names",
    "hyperparameter_specs",
    "EpsilonGreedy",
    "LinTS",
    "LinUCB",
    "OracleAgent",
    "PopularityAgent",
    "RandomAgent",
    "TextMatchAgent",
    "Transition",
    "UCB1",
    "make_agent",
]
_LAZY = {
    **dict.fromkeys(("Agent", "Hyperparameter", "Transition", "check_hyperparameters", "hyperparameters_of"),
                    "rlrec.agents.base"),
    **dict.fromkeys(("EpsilonGreedy", "LinTS", "LinUCB", "OracleAgent", "PopularityAgent", "RandomAgent",
                     "TextMatchAgent", "UCB1"), "rlrec.agents.bandits"),
    **dict.fromkeys(("AskingLinTS", "AskingLinUCB", "ConUCB"), "rlrec.agents.conversational"),
    "DeepAgent": "rlrec.agents.deep",
    "DQN": "rlrec.agents.dqn",
    "PolicyGradient": "rlrec.agents.policy_gradient",
    **dict.fromkeys(("AGENTS", "hyperparameter_names", "hyperparameter_specs", "make_agent"), "rlrec.agents.registry"),
}

__getattr__, __dir__ = attach(__name__, _LAZY, globals(), __all__)
