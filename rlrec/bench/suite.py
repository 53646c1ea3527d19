"""Regret benchmark suites: a grid of environments x agents x seeds x horizon, run cell by cell, resumable.

This module defines a suite (:class:`Suite`), the built-in ones (:data:`SUITES`) and :func:`get_suite`, and
loads without JAX or the plotting libraries, so ``rlrec bench --list`` answers at once. Running a suite into a
run folder is :mod:`rlrec.bench.suite_run` (:func:`run_suite`); its results read back are
:mod:`rlrec.bench.suite_results` (:class:`SuiteResult`, :class:`Cell`). Both import this module, never the reverse.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

from rlrec.errors import InputError

_FILE_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]*")  # a suite's or a variant's name names a folder or a file

# The integers a suite (and the commands' options) take. Counts and sizes become int32 arrays and loop bounds in
# JAX; a root seed becomes jax.random.key(seed), which keeps 32 bits (key(2**32) is key(0), key(-3) is
# key(2**32 - 3)), so a seed outside [0, MAX_SEED] would silently run another seed's users.
MAX_COUNT = 2**31 - 1
MAX_SEED = 2**32 - 1


class SuiteError(InputError):
    """A suite that cannot run as asked (bad config, or a folder holding a different suite)."""


@dataclasses.dataclass(frozen=True)
class Suite:
    """A benchmark grid. Every cell uses the same root ``seed``, so agents meet the same simulated users.

    Attributes:
        name: the suite's name (recorded, and used in titles).
        envs: registered environment ids.
        agents: agent names (see ``rlrec.agents.AGENTS``); agents that learn from whole rollouts (PPO,
            REINFORCE) are trained with ``rlrec train`` instead.
        seeds: independent seeds per cell (vmapped, sharded over devices).
        steps: steps per seed (the horizon of the regret curves).
        mode: ``personal`` (one learner per user, cold start) or ``shared`` (one learner per batch of users).
        users: users per seed in shared mode (personal mode: one per seed; left out of the suite's JSON).
        accuracy_k: size of each user's true top set for precision/recall/NDCG@k.
        seed: root random seed.
        env_overrides: ``{env_id: {name: value}}`` passed to :func:`rlrec.make` (e.g. a longer ``max_steps``).
        hyperparameters: ``{agent: {name: value}}`` passed to :func:`rlrec.agents.make_agent`.
        variants: ``{name: {"agent": registered agent, name: value, ...}}``: named configurations of a registered
            agent (e.g. one agent at several question rates) that ``agents`` may list like registered names.
        description: one line for humans.
    """

    name: str
    envs: tuple[str, ...]
    agents: tuple[str, ...]
    seeds: int
    steps: int
    mode: str = "personal"
    users: int = 64
    accuracy_k: int = 10
    seed: int = 0
    env_overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    hyperparameters: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "envs", tuple(e.removeprefix("rlrec/") for e in self.envs))
        object.__setattr__(self, "agents", tuple(self.agents))

    def agent_settings(self, name: str) -> tuple[str, dict[str, Any]]:
        """``(registered agent, hyperparameters)`` of an agent of the suite: a registered name or a variant."""
        variant = dict(self.variants.get(name, {"agent": name}))
        return variant.pop("agent"), {**variant, **self.hyperparameters.get(name, {})}

    @property
    def cells(self) -> list[tuple[str, str]]:
        """``(env, agent)`` pairs in run order (env by env)."""
        return [(env, agent) for env in self.envs for agent in self.agents]

    def validate(self) -> Suite:
        """Checks names and sizes without building anything (cheap); raises :class:`SuiteError`."""
        from rlrec.agents import AGENTS
        from rlrec.agents.base import check_hyperparameters
        from rlrec.envs.registry import REGISTRY, check_overrides
        from rlrec.rollout.modes import MODES

        problems = [name_problem("name", self.name)]
        if not isinstance(self.description, str):
            problems.append(f"description must be a string, got {self.description!r}")
        if not self.envs or not self.agents:
            problems.append("a suite needs at least one env and one agent")
        problems += [whole_number_problem(name, getattr(self, name), low, high) for name, low, high in (
            ("seeds", 1, MAX_COUNT), ("steps", 1, MAX_COUNT), ("users", 1, MAX_COUNT), ("accuracy_k", 0, MAX_COUNT),
            ("seed", 0, MAX_SEED))]
        if not isinstance(self.mode, str) or self.mode not in MODES:
            problems.append(f"mode must be one of {MODES}, got {self.mode!r}")
        problems += [repeated_problem("envs", self.envs), repeated_problem("agents", self.agents)]
        problems = [problem for problem in problems if problem]
        unknown_envs = [env for env in self.envs if env not in REGISTRY]
        if unknown_envs:
            problems.append(f"unknown env(s) {unknown_envs}; registered: {', '.join(sorted(REGISTRY))}")
        for name, variant in self.variants.items():
            if name in AGENTS:
                problems.append(f"variant {name!r} has the name of a registered agent; give it its own")
            elif name_problem("variant name", name):
                problems.append(name_problem("variant name", name))
            if variant.get("agent") not in AGENTS:
                problems.append(f"variant {name!r} needs \"agent\": one of {', '.join(AGENTS)}")
        unknown_agents = [agent for agent in self.agents if agent not in AGENTS and agent not in self.variants]
        if unknown_agents:
            problems.append(f"unknown agent(s) {unknown_agents}; choose from {', '.join(AGENTS)} or define variants")
        for agent in self.agents:
            base = self.variants.get(agent, {}).get("agent", agent)
            if base in AGENTS and AGENTS[base][0].learns_from_rollouts:
                problems.append(f"{agent} learns from whole rollouts: train it with `rlrec train`, not in a suite")
        for env, overrides in self.env_overrides.items():
            if env not in self.envs:
                problems.append(f"env_overrides names {env!r}, which is not one of the suite's envs")
            try:
                check_overrides(env, overrides)
            except ValueError as error:
                problems.append(str(error).rstrip("."))
        for agent in self.hyperparameters:
            if agent not in self.agents:
                problems.append(f"hyperparameters names {agent!r}, which is not one of the suite's agents")
        for agent in self.agents:
            base, settings = self.agent_settings(agent) if agent in self.variants or agent in AGENTS else (None, {})
            if base in AGENTS and (settings or agent in self.variants):
                try:
                    check_hyperparameters(AGENTS[base][0], dict(AGENTS[base][1], **settings), agent=agent)
                except ValueError as error:
                    problems.append(str(error).rstrip("."))
        if problems:
            raise SuiteError(f"Suite {self.name!r} is not valid: " + "; ".join(problems) + ".")
        return self

    def to_json(self) -> dict[str, Any]:
        """The suite as JSON reads it back (tuples become lists), so saved and asked suites compare equal.

        ``users`` is left out in personal mode: each seed is then one user, and the field would mean nothing;
        ``variants`` when there are none.
        """
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        if self.mode == "personal":
            del data["users"]
        if not self.variants:  # folders written before variants existed still resume
            del data["variants"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Suite:
        """A suite from its JSON fields. The containers are checked here, before the suite holds them; every
        field's value (names, numbers, ranges) by :meth:`validate`."""
        check_fields(cls, data, ("name", "envs", "agents", "seeds", "steps"), SuiteError)
        wrong = [list_problem(name, data[name], what) for name, what in (
            ("envs", "a list of env ids"), ("agents", "a list of agent names")) if name in data]
        wrong += [
            f"{name} must be {kind}, got {data[name]!r}"
            for name, kind in (
                ("env_overrides", "an object {env: {name: value}}"),
                ("hyperparameters", "an object {agent: {name: value}}"),
                ("variants", 'an object {name: {"agent": agent, name: value}}'),
            )
            if name in data
            and not (isinstance(data[name], dict) and all(isinstance(v, dict) for v in data[name].values()))
        ]
        wrong = [problem for problem in wrong if problem]
        if wrong:
            raise SuiteError("Suite JSON: " + "; ".join(wrong) + ".")
        return cls(**data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Suite:
        """A suite from a JSON file with the fields of :class:`Suite`."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise SuiteError(f"Cannot read a suite from {path}: {error}") from None
        if not isinstance(data, dict):
            raise SuiteError(f"{path} must hold a JSON object with the fields of a suite.")
        return cls.from_json(data)


_BANDITS = ("random", "popularity", "epsilon-greedy", "ucb1", "linucb", "lints", "lm-linucb", "lm-lints")
# The LM-native asking LinUCB at several question rates (share of steps that ask): regret vs questions asked.
# Rate 0 is its silent twin (it still hears critiques), against which a question's own worth is measured; conucb-0
# is ConUCB's (rlrec.bench.questions).
_QUESTION_RATES = {
    f"ask-linucb-{rate:g}": {"agent": "ask-linucb", "question_schedule": "linear", "question_scale": rate}
    for rate in (0, 0.1, 0.2, 0.5, 1.0)
}
_SILENT = {"conucb-0": {"agent": "conucb", "question_schedule": "never"}}

SUITES: dict[str, Suite] = {
    "quick": Suite(
        name="quick",
        description=(
            "Bandits on MovieLens, one item and slates of 5, 8 cold-start users x 200 steps (minutes on a laptop CPU)."
        ),
        envs=("MovieLens-Bandit-v0", "MovieLens-BanditSlate-v0"),
        agents=_BANDITS,
        seeds=8,
        steps=200,
    ),
    "standard": Suite(
        name="standard",
        description=(
            "Every bandit (and the text-match and oracle references) on MovieLens bandit, drift and session "
            "slates and the 58,788-title IMDB catalog; 32 cold-start users x 500 steps."
        ),
        envs=(
            "MovieLens-Bandit-v0",
            "MovieLens-BanditSlate-v0",
            "MovieLens-DriftSlate-v0",
            "MovieLens-SessionSlate-v0",
            "IMDB-BanditSlate-v0",
        ),
        agents=("random", "popularity", "text-match", *_BANDITS[2:], "oracle"),
        seeds=32,
        steps=500,
        # Users stay for the whole horizon in the bandit and drift settings (default 200 steps), so each curve
        # is one learner on one user; session users still leave when unsatisfied.
        env_overrides={
            env: {"max_steps": 500}
            for env in (
                "MovieLens-Bandit-v0", "MovieLens-BanditSlate-v0", "MovieLens-DriftSlate-v0", "IMDB-BanditSlate-v0"
            )
        },
    ),
    "conversational": Suite(
        name="conversational",
        description=(
            "Asking vs only showing on MovieLens slates, bandit and session settings: never-asking LinUCB (and "
            "with the LM prior), asking at random, ConUCB, the LM-native asking LinUCB (and with the LM prior), "
            "and that agent asking at five rates (0: hearing critiques only); 64 cold-start users x 50 steps."
        ),
        envs=("MovieLens-ConversationalSlate-v0", "MovieLens-ConversationalSessionSlate-v0"),
        agents=("linucb", "lm-linucb", "ask-random", "conucb", "ask-linucb", "ask-lm-linucb", *_SILENT,
                *_QUESTION_RATES),
        variants={**_SILENT, **_QUESTION_RATES},
        seeds=64,
        steps=50,
    ),
}


# -- checks both kinds of suite share (regret suites here, OPE suites in rlrec.ope.suite) ----------------------------


def whole_number_problem(name: str, value: Any, low: int, high: int, why: str = "") -> str | None:
    """What is wrong with a suite's integer field, or ``None`` when ``value`` is a whole number in ``[low, high]``.

    Only a Python ``int`` is one: ``True``, ``2.0``, ``2.5`` and ``"3"`` are refused, never coerced, so what runs
    is what the suite says.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        because = f" ({why})" if why else ""
        return f"{name} must be a whole number in [{low}, {high}]{because}, got {value!r}"
    return None


def list_problem(name: str, value: Any, what: str, of: type | None = str) -> str | None:
    """What is wrong with a suite's list field, or ``None`` when ``value`` is a list (a tuple in Python) whose
    entries are all ``of`` (any type for ``None``); ``what`` says what it should be, e.g. ``a list of env ids``."""
    if isinstance(value, (list, tuple)) and (of is None or all(isinstance(entry, of) for entry in value)):
        return None
    return f"{name} must be {what}, got {value!r}"


def repeated_problem(name: str, values: tuple | list) -> str | None:
    """What is wrong with a suite's list of names or sizes, or ``None`` when no entry is listed twice (a repeated
    entry would run twice and count twice in the tables)."""
    repeated = []
    for value in values:  # by equality, not hashing: a JSON list may hold unhashable entries
        if values.count(value) > 1 and value not in repeated:
            repeated.append(value)
    return f"{name} listed twice: {repeated}" if repeated else None


def name_problem(what: str, name: Any) -> str | None:
    """What is wrong with the name of a suite or a variant, or ``None``: a name becomes a folder's or a file's
    name (``runs/bench-NAME``, ``cells/ENV__VARIANT.npz``), so it is never a path (no separator, no leading dot,
    not empty)."""
    if not isinstance(name, str):
        return f"{what} must be a string, got {name!r}"
    if not _FILE_SAFE.fullmatch(name):
        return (f"{what} {name!r} must be letters, digits, '.', '_', '=' or '-', starting with a letter or digit "
                "(it names a folder or a file, never a path)")
    return None


def check_fields(cls: type, data: dict[str, Any], required: tuple[str, ...], error: type[Exception]) -> None:
    """Raises ``error`` when a suite description ``data`` has a field the dataclass ``cls`` lacks, or lacks one of
    ``required`` (the regret suites' and the OPE suites' JSON files)."""
    fields = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise error(f"Unknown suite field(s) {unknown}; a suite has {sorted(fields)}.")
    missing = sorted(name for name in required if name not in data)
    if missing:
        raise error(f"A suite needs the field(s) {missing}.")


def get_suite(name_or_path: str | os.PathLike) -> Suite:
    """A built-in suite by name, or one loaded from a JSON file."""
    if str(name_or_path) in SUITES:
        return SUITES[str(name_or_path)]
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        return Suite.load(path)
    raise SuiteError(f"Unknown suite {str(name_or_path)!r}; built-in suites are {sorted(SUITES)}, or pass a JSON file.")

