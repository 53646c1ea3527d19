"""The options `rlrec run` and `rlrec train` share: the env id, ``--set`` env overrides and ``--hp`` agent
hyperparameters, and the reading of their ``name=value`` pairs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer
import typer.core

from rlrec.cli.output import fail
from rlrec.envs.specs import CATALOG_PREFIXES, REGISTRY, setting_names

# Options shared by `run` and `train`; the help lists the valid names (they load without JAX).
ENV_HELP = (
    f"Environment id: {' or '.join(CATALOG_PREFIXES)}, then {', '.join(setting_names()[:-1])} or "
    f"{setting_names()[-1]}, then v0, joined by hyphens (`rlrec envs` describes all {len(REGISTRY)})."
)
EnvOverrides = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Env override name=value (repeatable); `rlrec envs --knobs ID` lists every name "
                 "with its default, valid values and meaning."),
]
Hyperparameters = Annotated[
    Optional[list[str]],
    typer.Option("--hp", help="Agent hyperparameter name=value (repeatable); `rlrec train --agent NAME --list-hp` "
                 "lists an agent's."),
]


class ListsAgents(typer.core.TyperCommand):
    """A command whose ``--agent`` help, ``agent_help()`` of its subclass, is written each time typer builds the
    command (at every call of the app): it lists the agents registered then, one registered at run time too."""

    agent_help: Callable[[], str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if "--agent" in param.opts:
                param.help = self.agent_help()


def whole_number_option(help: str, low: int, high: int) -> Any:
    """A typer option for a whole number in ``[low, high]``: the help shows the range, and a value outside it is
    refused as one error line naming the value and the range (typer's own ``min``/``max`` name neither)."""

    def check(value: int | None) -> int | None:  # None: the option was not given
        if value is not None and not low <= value <= high:
            raise typer.BadParameter(f"must be a whole number in [{low}, {high}], got {value}")
        return value

    # "<int range>": typer's metavar for a bounded integer (click's wrapping of the help depends on its width).
    return typer.Option(help=f"{help}  [{low}<=x<={high}]", callback=check, metavar="<int range>")


def parse_assignments(pairs: list[str] | None, what: str) -> dict:
    """``["alpha=0.5", "context=request-item"]`` -> ``{"alpha": 0.5, "context": "request-item"}``."""
    import ast

    parsed = {}
    for pair in pairs or []:
        name, equals, raw = pair.partition("=")
        if not equals or not name.strip():
            fail(f"{what} {pair!r} must look like name=value.")
        if name.strip() in parsed:
            fail(f"{what} sets {name.strip()!r} twice; give each name once.")
        try:
            parsed[name.strip()] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed[name.strip()] = raw.strip()
    return parsed


def hyperparameters_for(agents: list[str], pairs: list[str] | None) -> dict[str, dict]:
    """``--hp`` settings per agent: ``name=value`` goes to every listed agent that takes ``name``,
    ``AGENT:name=value`` to that agent only. A name no listed agent takes is an error (a typo is never
    silently dropped); values are checked against each agent's declared range by ``make_agent``."""
    from rlrec.agents import hyperparameter_names

    per_agent: dict[str, dict] = {agent: {} for agent in agents}
    for name, value in parse_assignments(pairs, "--hp").items():
        target, colon, field = name.rpartition(":")
        if colon:
            if target not in per_agent:
                fail(f"--hp {name}=...: {target!r} is not one of the agents of this command ({', '.join(agents)}).")
            if field not in hyperparameter_names(target):
                fail(f"--hp {name}=...: {target} has no hyperparameter {field!r}; it takes "
                      f"{', '.join(hyperparameter_names(target)) or 'none'}.")
            per_agent[target][field] = value
            continue
        takers = [agent for agent in agents if name in hyperparameter_names(agent)]
        if not takers:
            taken = {agent: hyperparameter_names(agent) for agent in agents}
            listed = "; ".join(f"{agent}: {', '.join(names) or 'none'}" for agent, names in taken.items())
            fail(f"--hp {name}=...: no agent of this command takes {name!r} ({listed}).")
        for agent in takers:
            per_agent[agent][name] = value
    return per_agent
