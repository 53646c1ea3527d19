"""Adding an agent is one class plus one registration line; every package exports exactly what it lists."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import jax.numpy as jnp
import pytest
from typer.testing import CliRunner

import rlrec
from rlrec.agents import AGENTS, LinTS, agent_names, hyperparameter_names, make_agent, names, register_agent
from rlrec.agents.base import Agent, hyperparameter, top_k_slate
from rlrec.agents.registry import agent_class, class_traits
from rlrec.cli import app
from rlrec.ope.specs import parse_policy, policy_agents

ENV = type("Env", (), {"slate_size": 3, "history_length": 8})()  # what make_agent reads of an env


class Steady(Agent):
    """A test agent: the first items of the catalog, every time."""

    shift: float = hyperparameter(0.0, "added to every score", low=-1.0, high=1.0)

    def act(self, key, state, obs, env_params):
        return top_k_slate(self.item_scores(state, obs, env_params), self.slate_size)

    def item_scores(self, state, obs, env_params):
        return self.shift - jnp.arange(env_params.item_features.shape[0], dtype=jnp.float32)


@pytest.fixture
def table(monkeypatch):
    """The agents' table for one test: what it registers is gone after it, so other tests see the built-ins."""
    monkeypatch.setattr(names, "ROWS", dict(names.ROWS))
    return names.ROWS


def _help(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_one_line_registers_an_agent_everywhere(table):
    assert "steady" not in _help("run")
    register_agent("steady", Steady, defaults={"shift": 0.5})  # the one line
    assert agent_names()[-1] == "steady" and "steady" in agent_names("scores") and "steady" not in agent_names("deep")
    assert AGENTS["steady"] == (Steady, {"shift": 0.5}) and "steady" in AGENTS and list(AGENTS)[-1] == "steady"
    agent = make_agent("steady", ENV)
    assert type(agent) is Steady and agent.shift == 0.5 and agent.label == "steady" and agent.slate_size == 3
    assert hyperparameter_names("steady") == ["shift"]
    assert "dqn, slateq, steady (ppo, reinforce: `rlrec train`)" in _help("run")  # in registration order
    assert "steady" in _help("train")
    assert "steady" in policy_agents("greedy") and parse_policy("softmax:steady:0.1").agent == "steady"
    assert "steady" not in policy_agents("sampled")  # it does not act at random


def test_a_class_states_its_traits_itself(table):
    register_agent("my-lints", LinTS, defaults={"prior_scale": 0.2})
    assert table["my-lints"].traits == {"scores", "random", "fits"}
    assert "my-lints" in policy_agents("sampled") and "my-lints" not in agent_names("asks")


def test_every_built_in_row_states_its_class_traits():
    for name, row in names.ROWS.items():
        cls, defaults = agent_class(name)  # loads the class, and refuses a row whose traits it contradicts
        assert isinstance(row.cls, str) and row.traits == class_traits(cls) and defaults == row.defaults, name


@pytest.mark.parametrize(("call", "message"), [
    (lambda: register_agent("linucb", Steady), "'linucb' is registered already; register yours under another"),
    (lambda: register_agent("my:agent", Steady), r"must be letters, digits.*--hp AGENT:name=value"),
    (lambda: register_agent("", Steady), "Agent name '' must be letters"),
    (lambda: register_agent("mine", "rlrec.agents.bandits:LinTS"), r"needs traits=, its traits among deep"),
    (lambda: register_agent("mine", "rlrec.agents.bandits:LinTS", traits={"greedy"}),
     r"Unknown trait\(s\) \['greedy'\]; the traits are deep, rollouts"),
    (lambda: register_agent("mine", Steady, traits={"scores"}), "leave traits out when registering a class"),
    (lambda: register_agent("mine", dict), "is not an agent class: an agent subclasses rlrec.agents.base.Agent"),
    (lambda: agent_names("clever"), r"Unknown trait\(s\) \['clever'\]; the traits are deep, rollouts"),
])
def test_bad_registrations_are_refused(table, call, message):
    rows = dict(table)
    with pytest.raises(ValueError, match=message):
        call()
    assert names.ROWS == rows  # nothing half-registered


@pytest.mark.parametrize(("path", "traits", "message"), [
    ("rlrec.agents.bandits:LinTS", {"scores"}, r"registered with traits \['scores'\], but its class "
     r"rlrec.agents.bandits:LinTS declares \['fits', 'random', 'scores'\]: state those"),
    ("rlrec.agents.bandits:Nope", set(), r"cannot load its class 'rlrec.agents.bandits:Nope'"),
    ("rlrec.nowhere:Agent", set(), r"cannot load its class 'rlrec.nowhere:Agent' \(No module named"),
])
def test_a_path_row_is_checked_when_its_class_loads(table, path, traits, message):
    register_agent("mine", path, traits=traits)
    assert "mine" in agent_names() and "mine" in AGENTS  # listed without loading the class
    with pytest.raises(ValueError, match=message):
        make_agent("mine", ENV)


# Packages without __all__: the command (rlrec.cli: `rlrec`) and the metrics (a module of functions, all public).
NO_ALL = {"rlrec.cli", "rlrec.metrics"}


@pytest.mark.parametrize("package", sorted(
    {"rlrec"} | {f"rlrec.{info.name}" for info in pkgutil.iter_modules(rlrec.__path__) if info.ispkg}))
def test_all_lists_exactly_what_a_package_exports(package):
    module = importlib.import_module(package)
    if package in NO_ALL:
        assert not hasattr(module, "__all__")
        return
    listed = set(module.__all__)
    assert len(listed) == len(module.__all__), "a name listed twice"
    lazy = set(getattr(module, "_LAZY", {}))
    assert lazy <= listed, f"{package} loads {sorted(lazy - listed)} on first use but __all__ omits them"
    eager = {name for name, value in vars(module).items() if not name.startswith("_")
             and not inspect.ismodule(value) and name not in ("annotations", "attach")}  # attach: the lazy loader
    assert eager - lazy <= listed, f"{package} exports {sorted(eager - lazy - listed)} but __all__ omits them"
    for name in listed:
        getattr(module, name)  # every listed name resolves
