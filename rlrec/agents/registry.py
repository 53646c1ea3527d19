"""Agents by name: ``make_agent(name, env, **hyperparameters)``, each name's class and declared hyperparameters.

The names, default hyperparameters and traits live in one table, :mod:`rlrec.agents.names` (without JAX); this
module loads the classes it names and checks each row's traits against its class.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from rlrec.agents import names
from rlrec.agents.base import Agent, Hyperparameter, check_hyperparameters, env_settings, hyperparameters_of
from rlrec.agents.deep import DeepAgent
from rlrec.errors import InputError


def class_traits(cls: type) -> frozenset[str]:
    """The traits (:data:`rlrec.agents.names.TRAITS`) of agent class ``cls``, read off what it declares."""
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise InputError(f"{cls!r} is not an agent class: an agent subclasses rlrec.agents.base.Agent.")
    facts = {
        "deep": issubclass(cls, DeepAgent),
        "rollouts": cls.learns_from_rollouts,
        "asks": cls.asks_questions,
        "scores": cls.item_scores is not Agent.item_scores,
        "random": cls.acts_at_random,
        "fits": cls.fit_settings is not None,
    }
    return frozenset(trait for trait, fact in facts.items() if fact)


def agent_class(name: str) -> tuple[type, Mapping[str, Any]]:
    """``(class, default hyperparameters)`` of agent ``name``; a class registered as a path is imported here and
    its row's traits checked against it."""
    row = names.ROWS.get(name)
    if row is None:
        raise InputError(f"Unknown agent {name!r}; choose one of {', '.join(names.ROWS)}.")
    if not isinstance(row.cls, str):
        return row.cls, row.defaults
    module, _, attribute = row.cls.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise InputError(f"Agent {name!r}: cannot load its class {row.cls!r} ({error}); register it as "
                         "'module:Class' or as the class itself.") from None
    declared = class_traits(cls)
    if declared != row.traits:
        raise InputError(f"Agent {name!r} is registered with traits {sorted(row.traits)}, but its class {row.cls} "
                         f"declares {sorted(declared)}: state those in its row (or register the class itself).")
    return cls, row.defaults


class _Agents(Mapping):
    """``AGENTS[name]``: ``(class, default hyperparameters)``, read from the table when asked, so an agent
    registered at run time is in it."""

    def __getitem__(self, name: str) -> tuple[type, Mapping[str, Any]]:
        if name not in names.ROWS:
            raise KeyError(name)
        return agent_class(name)

    def __contains__(self, name: object) -> bool:  # without loading the class
        return name in names.ROWS

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(names.ROWS))

    def __len__(self) -> int:
        return len(names.ROWS)


AGENTS: Mapping[str, tuple[type, Mapping[str, Any]]] = _Agents()


def hyperparameter_names(name: str) -> list[str]:
    """The hyperparameters agent ``name`` takes (declared on its class; fields set from the env are not)."""
    return sorted(hyperparameters_of(agent_class(name)[0]))


def hyperparameter_specs(name: str) -> dict[str, tuple[Any, Hyperparameter]]:
    """``{hyperparameter: (default for agent name, spec)}``: what ``--list-hp`` and help show."""
    cls, defaults = agent_class(name)
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
    cls, defaults = agent_class(name)
    settings = check_hyperparameters(cls, dict(defaults, **hyperparameters), agent=name)
    return cls(label=name, **{**env_settings(cls, env), **settings})
