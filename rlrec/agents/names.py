"""The agents by name, without JAX: one row per agent, which every list of agents reads when it is asked.

A row holds the agent's class (as ``"module:Class"``, imported on first use, so ``rlrec --help`` lists agents
without loading JAX), its default hyperparameters and its traits: the facts of its class that the command line
and off-policy evaluation's policy names need before loading it. Adding an agent is its class plus one line::

    rlrec.agents.register_agent("my-agent", MyAgent, defaults={"alpha": 0.5})

Given a class, :func:`register_agent` reads the traits off it; a row given as a path states them, and
:func:`rlrec.agents.registry.agent_class` checks them against the class when it loads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from rlrec.errors import InputError

# The traits a row states, each a fact its class declares (rlrec.agents.registry.class_traits reads them).
TRAITS = {
    "deep": "a deep RL agent (a DeepAgent), trained with `rlrec train`",
    "rollouts": "learns only from whole rollouts (learns_from_rollouts): `rlrec train`, not `rlrec run`",
    "asks": "asks questions (asks_questions): conversational envs only",
    "scores": "scores items (defines item_scores): greedy, epsilon-greedy and softmax policies",
    "random": "acts at random (acts_at_random): sampled policies",
    "fits": "learns one state for many users, then frozen serves each (fit_settings)",
}
# A name appears in `--hp AGENT:name=value`, in policy names (`softmax:AGENT:0.1`) and in a suite's file names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class AgentRow(NamedTuple):
    """A registered agent: its class (the class, or ``"module:Class"``), default hyperparameters and traits."""

    cls: type | str
    defaults: Mapping[str, Any]
    traits: frozenset[str]


ROWS: dict[str, AgentRow] = {}  # name -> row, in registration order (the order listings show)


def register_agent(name: str, cls: type | str, *, defaults: Mapping[str, Any] | None = None,
                   traits: Iterable[str] | None = None) -> None:
    """Makes agent ``name`` known to ``make_agent``, ``AGENTS``, the command line and policy names.

    Args:
        name: letters, digits, '.', '_' or '-', starting with a letter or digit; not a registered one.
        cls: the agent class (an :class:`rlrec.agents.base.Agent`), or ``"module:Class"`` to import on first use.
        defaults: hyperparameters that differ from the class's own defaults.
        traits: only with a path: the class's traits (:data:`TRAITS`), checked when the class is loaded. A class
            given itself states its traits by its declarations.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"Agent name {name!r} must be letters, digits, '.', '_' or '-', starting with a letter or "
                         "digit (it is written in --hp AGENT:name=value, policy names and file names).")
    if name in ROWS:
        raise InputError(f"Agent {name!r} is registered already; register yours under another name.")
    if not isinstance(cls, str):
        if traits is not None:
            raise InputError(f"Agent {name!r}: leave traits out when registering a class; they are read off it.")
        from rlrec.agents.registry import class_traits  # given a class, JAX is loaded already

        traits = class_traits(cls)
    elif traits is None:
        raise InputError(f"Agent {name!r}: a class given as {cls!r} needs traits=, its traits among "
                         f"{', '.join(TRAITS)} (or register the class itself).")
    ROWS[name] = AgentRow(cls, dict(defaults or {}), _known(traits))


def agent_names(*traits: str, without: Iterable[str] = ()) -> tuple[str, ...]:
    """The registered agents that have every trait of ``traits`` and none of ``without``, in registration order."""
    traits, without = _known(traits), _known(without)
    return tuple(name for name, row in ROWS.items() if traits <= row.traits and not row.traits & without)


def _known(traits: Iterable[str]) -> frozenset[str]:
    """``traits`` as a set; ``InputError`` naming any that is not one of :data:`TRAITS`."""
    traits = frozenset(traits)
    if traits - TRAITS.keys():
        raise InputError(f"Unknown trait(s) {sorted(traits - TRAITS.keys())}; the traits are {', '.join(TRAITS)}.")
    return traits


# LM-prior variants are the linear agents with a prior along the request embedding; a stronger ridge (regulariser 5)
# lets the prior hold for the first rounds (tuned on MovieLens slates).
_LM_PRIOR = {"prior_scale": 0.5, "regulariser": 5.0}
for _name, _cls, _defaults, _traits in (
    ("random", "bandits:RandomAgent", {}, {"random"}),
    ("popularity", "bandits:PopularityAgent", {}, {"scores"}),
    ("text-match", "bandits:TextMatchAgent", {}, {"scores"}),
    ("epsilon-greedy", "bandits:EpsilonGreedy", {"epsilon": 0.1}, {"scores", "random", "fits"}),
    ("ucb1", "bandits:UCB1", {}, set()),
    ("linucb", "bandits:LinUCB", {}, {"scores", "fits"}),
    ("lints", "bandits:LinTS", {}, {"scores", "random", "fits"}),
    ("lm-linucb", "bandits:LinUCB", _LM_PRIOR, {"scores", "fits"}),
    ("lm-lints", "bandits:LinTS", _LM_PRIOR, {"scores", "random", "fits"}),
    ("oracle", "bandits:OracleAgent", {}, set()),
    # Conversational envs only (they ask about key-terms): ConUCB, and LinUCB / LinTS hearing answers through the
    # LM. ConUCB with the paper's settings (the class defaults) saved nothing over LinUCB on MovieLens slates: a "no"
    # as key-term reward 0 and a weak pull toward the key-term estimate. Answers as +-0.5 (click scale), a stronger
    # pull (lambda 0.3) and narrower bonuses, tuned on seed 1 (32 users x 50 steps; benchmarks/README.md).
    ("conucb", "conversational:ConUCB",
     {"yes_reward": 0.5, "no_reward": -0.5, "arm_weight": 0.3, "alpha": 0.1, "key_term_alpha": 0.0}, {"asks"}),
    ("ask-linucb", "conversational:AskingLinUCB", {}, {"asks", "scores", "fits"}),
    ("ask-lints", "conversational:AskingLinTS", {}, {"asks", "scores", "random", "fits"}),
    ("ask-lm-linucb", "conversational:AskingLinUCB", _LM_PRIOR, {"asks", "scores", "fits"}),
    ("ask-random", "conversational:AskingLinUCB", {"question_selection": "random"}, {"asks", "scores", "fits"}),
    # Deep RL (train with rlrec.train / `rlrec train`); on slate envs DQN is SlateQ.
    ("dqn", "dqn:DQN", {}, {"deep", "random"}),
    ("slateq", "dqn:DQN", {"decomposed": True}, {"deep", "random"}),
    ("ppo", "policy_gradient:PolicyGradient", {}, {"deep", "rollouts", "random"}),
    ("reinforce", "policy_gradient:PolicyGradient",
     {"clip": 0.0, "gae_lambda": 1.0, "epochs": 1, "minibatches": 1, "rollout_length": 32, "learning_rate": 1e-3},
     {"deep", "rollouts", "random"}),
):
    register_agent(_name, f"rlrec.agents.{_cls}", defaults=_defaults, traits=_traits)
