"""Agents: pure functional ``init / act / update`` (DESIGN.md section 6)."""

from __future__ import annotations

from typing import Any

from rlrec.agents.base import Agent, Transition
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
}


def make_agent(name: str, env: Any, **hyperparameters: Any) -> Agent:
    """An agent by name, sized for ``env`` (its slate size); hyperparameters override the defaults.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or hyperparameter.
    """
    if name not in AGENTS:
        raise ValueError(f"Unknown agent {name!r}; choose one of {', '.join(AGENTS)}.")
    cls, defaults = AGENTS[name]
    settings = dict(defaults, **hyperparameters)
    fields = set(cls.__dataclass_fields__)
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(f"Unknown hyperparameter(s) {unknown} for {name}; it takes {sorted(fields - {'slate_size', 'env', 'label'})}.")
    if name == "oracle":
        settings["env"] = env
    return cls(slate_size=env.slate_size, label=name, **settings)


__all__ = [
    "AGENTS",
    "Agent",
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
