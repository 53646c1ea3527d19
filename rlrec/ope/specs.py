"""Policies and estimators by name, without JAX: ``"uniform"``, ``"epsilon-greedy:popularity:0.1"``, ``"ips"``.

The command line and the suites check these names before loading JAX; :func:`rlrec.ope.make_policy` builds
the policies, :mod:`rlrec.ope.estimators` holds the estimators of :data:`ESTIMATOR_TABLE`. A policy's name is
``uniform``, or ``FAMILY:AGENT[:NUMBER]``, or just ``AGENT`` (greedy):

- ``greedy:AGENT``: the agent's top-``k`` items by its :meth:`~rlrec.agents.base.Agent.item_scores`;
- ``epsilon-greedy:AGENT:EPSILON``: those, or with probability ``EPSILON`` (default 0.1) a uniform slate;
- ``softmax:AGENT:TEMPERATURE``: Plackett-Luce over ``scores / TEMPERATURE`` (default 0.05);
- ``sampled:AGENT``: the agent's own random action, probabilities by Monte Carlo (e.g. ``sampled:lints``).

The agents each family takes are read from the agents' table (:mod:`rlrec.agents.names`) when asked. Agents that
declare ``fit_settings`` (the linear bandits) are trained first, then frozen: :func:`rlrec.ope.fitted`.
"""

from __future__ import annotations

import dataclasses

from rlrec.agents.names import agent_names
from rlrec.errors import InputError

UNIFORM = "uniform"
# family: the name of the number it takes and the number's default (None: it takes no number).
FAMILIES = {"greedy": None, "epsilon-greedy": ("epsilon", 0.1), "softmax": ("temperature", 0.05), "sampled": None}
# name: (for slates only: on one item it is IPS, PI with its weights; the assumption that makes it unbiased or
# consistent). Each is the function of its name in rlrec.ope.estimators.
ESTIMATOR_TABLE = {
    "dm": (False, "the reward model is right"),
    "ips": (False, "common support: the behaviour can show every slate the target shows"),
    "snips": (False, "common support; consistent, biased in small samples"),
    "dr": (False, "right propensities or a right reward model"),
    "sndr": (False, "right propensities or model; consistent, biased in small samples"),
    "switch-dr": (False, "the reward model is right where weights exceed the threshold"),
    "iips": (True, "a slot's click depends only on its own item (no interaction)"),
    "rips": (True, "a slot's click depends only on the slots above it (cascade)"),
    "pi": (True, "the slate's expected reward is additive over slot-item pairs"),
}


def policy_agents(family: str) -> tuple[str, ...]:
    """The agents a policy of ``family`` takes: those that act at random for ``sampled``, else those that score.

    Never deep or asking agents: a policy is made by ``make_agent`` and trained here only as ``fit_settings`` says
    (deep agents learn in `rlrec train`), and it shows slates, asking nothing.
    """
    return agent_names("random" if family == "sampled" else "scores", without=("deep", "asks"))


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """A parsed policy name."""

    family: str  # "uniform" or one of FAMILIES
    agent: str | None = None
    number: float | None = None  # epsilon or temperature

    @property
    def label(self) -> str:
        """How tables show it: ``uniform``, ``text-match``, ``epsilon-greedy(popularity, 0.1)``."""
        if self.family == UNIFORM:
            return UNIFORM
        if self.family == "greedy":
            return str(self.agent)
        if self.number is None:
            return f"{self.family}({self.agent})"
        return f"{self.family}({self.agent}, {self.number:g})"


def parse_policy(name: str) -> PolicySpec:
    """The :class:`PolicySpec` of ``name``; ``ValueError`` naming the valid forms otherwise."""
    written = [f"{family}:AGENT" + (f"[:{taken[0].upper()}]" if taken else "") for family, taken in FAMILIES.items()]
    forms = (f"uniform, AGENT (greedy), {', '.join(written[:-1])} or {written[-1]}; scoring agents: "
             f"{', '.join(policy_agents('greedy'))}; sampled agents: {', '.join(policy_agents('sampled'))}")
    text = str(name).strip()
    if text == UNIFORM:
        return PolicySpec(UNIFORM)
    parts = text.split(":")
    if len(parts) == 1:
        parts = ["greedy", parts[0]]
    family, agent, *rest = parts
    if family not in FAMILIES or len(rest) > 1:
        raise InputError(f"Unknown policy {name!r}; a policy is {forms}.")
    pool = policy_agents(family)
    if agent not in pool:
        raise InputError(f"Policy {name!r}: {family} policies take one of {', '.join(pool)}, not {agent!r} ("
                         f"a policy is {forms}).")
    taken = FAMILIES[family]
    number = taken[1] if taken else None
    if rest:
        if taken is None:
            raise InputError(f"Policy {name!r}: {family} policies take no number; write {family}:{agent}.")
        try:
            number = float(rest[0])
        except ValueError:
            raise InputError(f"Policy {name!r}: the {taken[0]} must be a number, got {rest[0]!r}.") \
                from None
    if family == "epsilon-greedy" and not 0.0 < number <= 1.0:
        raise InputError(f"Policy {name!r}: epsilon must be in (0, 1], got {number:g} (epsilon 0 is greedy:{agent}).")
    if family == "softmax" and not number > 0.0:
        raise InputError(f"Policy {name!r}: the temperature must be > 0, got {number:g}.")
    return PolicySpec(family, agent, number)
