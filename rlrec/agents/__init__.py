"""Agents: pure functional ``init / act / update`` (docs/design.md section 6).

The names (:func:`agent_names`, :func:`register_agent`: :mod:`rlrec.agents.names`) load without JAX; the rest
loads on first use (PEP 562), so the command line lists agents without loading JAX.
"""

from __future__ import annotations

from rlrec._lazy import attach
from rlrec.agents.names import agent_names, register_agent

_LAZY = {
    **dict.fromkeys(("Agent", "Frozen", "Hyperparameter", "Transition", "check_hyperparameters", "hyperparameters_of"),
                    "rlrec.agents.base"),
    **dict.fromkeys(("EpsilonGreedy", "LinTS", "LinUCB", "OracleAgent", "PopularityAgent", "RandomAgent",
                     "TextMatchAgent", "UCB1"), "rlrec.agents.bandits"),
    **dict.fromkeys(("AskingLinTS", "AskingLinUCB", "ConUCB"), "rlrec.agents.conversational"),
    "DeepAgent": "rlrec.agents.deep",
    "DQN": "rlrec.agents.dqn",
    "PolicyGradient": "rlrec.agents.policy_gradient",
    **dict.fromkeys(("AGENTS", "hyperparameter_names", "hyperparameter_specs", "make_agent"), "rlrec.agents.registry"),
}
__all__ = ["agent_names", "register_agent", *_LAZY]

__getattr__, __dir__ = attach(__name__, _LAZY, globals(), __all__)
