"""Off-policy evaluation suites, without JAX: envs x behaviour policies x target policies x estimators x log sizes.

``rlrec ope --suite quick`` runs one (:func:`rlrec.ope.suite_run.run_ope_suite`). For each env, behaviour and
seed it logs the largest size once (:func:`rlrec.ope.collect`); the smaller logs are its first rounds. Each
target's exact value on each log (:func:`rlrec.ope.true_value`) is the truth every estimate is scored against:
bias, standard deviation and RMSE over seeds, relative to the truth, with confidence intervals.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from rlrec.bench.suite import (
    MAX_COUNT,
    MAX_SEED,
    check_fields,
    list_problem,
    name_problem,
    repeated_problem,
    whole_number_problem,
)
from rlrec.envs.specs import REGISTRY
from rlrec.errors import InputError
from rlrec.ope.specs import ESTIMATOR_TABLE, parse_policy

# Seed s of a suite with root seed r logs with seed r * SEED_STRIDE + s, so suites of different root seeds share no
# log while they have fewer than SEED_STRIDE seeds. JAX keeps 32 bits of a seed: the last one must stay <= MAX_SEED,
# or it would wrap around onto another seed's users and draws.
SEED_STRIDE = 1_000_003


class OPESuiteError(InputError):
    """A suite that cannot run (its description or its run folder); the message says what to change."""


@dataclasses.dataclass(frozen=True)
class OPESuite:
    """What an OPE suite runs. ``estimators`` empty: every one that applies (see :func:`rlrec.ope.evaluate`)."""

    name: str
    description: str
    envs: tuple[str, ...]
    behaviours: tuple[str, ...]
    targets: tuple[str, ...]
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    seeds: int = 10
    steps_per_user: int = 10
    estimators: tuple[str, ...] = ()
    seed: int = 0
    train_users: int = 128  # the learning targets' training (shared mode) before they are frozen
    train_steps: int = 50

    def validate(self) -> OPESuite:
        """The suite with its lists as tuples and its sizes in order, or :class:`OPESuiteError` naming every
        field that is wrong and what it takes. Checks names and numbers only (nothing is built): cheap, and done
        before any log is collected."""
        problems = [name_problem("name", self.name)]
        if not isinstance(self.description, str):
            problems.append(f"description must be a string, got {self.description!r}")
        lists = {"envs": "a list of env ids", "behaviours": "a list of policy names",
                 "targets": "a list of policy names", "estimators": "a list of estimator names"}
        shapes = [list_problem(field, getattr(self, field), what) for field, what in lists.items()]
        shapes.append(list_problem("sizes", self.sizes, "a list of log sizes", of=None))
        if any(shapes):  # the entries are checked below, once the lists are lists
            raise OPESuiteError(_invalid(self.name, problems + shapes))
        suite = dataclasses.replace(self, envs=tuple(self.envs), behaviours=tuple(self.behaviours),
                                    targets=tuple(self.targets), sizes=tuple(self.sizes),
                                    estimators=tuple(self.estimators))
        problems += [repeated_problem(field, getattr(suite, field)) for field in (*lists, "sizes")]
        unknown = [env for env in suite.envs if env not in REGISTRY]
        if unknown or not suite.envs:
            problems.append(f"Unknown env(s) {unknown or '(none given)'}; see `rlrec envs` for the ids")
        if not suite.behaviours or not suite.targets:
            problems.append("a suite needs at least one behaviour and one target policy")
        for field in ("behaviours", "targets"):
            problems += _policy_problems(field, getattr(suite, field))
        bad = [name for name in suite.estimators if name not in ESTIMATOR_TABLE]
        if bad:
            problems.append(f"Unknown estimator(s) {bad}; choose from {', '.join(ESTIMATOR_TABLE)}")
        numbers = [
            *(whole_number_problem(f"sizes[{index}]", size, 1, MAX_COUNT) for index, size in enumerate(suite.sizes)),
            whole_number_problem("seeds", suite.seeds, 2, MAX_COUNT, "bias and variance are measured over seeds"),
            whole_number_problem("steps_per_user", suite.steps_per_user, 1, MAX_COUNT),
            whole_number_problem("seed", suite.seed, 0, MAX_SEED),
            whole_number_problem("train_users", suite.train_users, 1, MAX_COUNT),
            whole_number_problem("train_steps", suite.train_steps, 1, MAX_COUNT),
        ]
        problems += numbers
        if not any(numbers) and suite.seed * SEED_STRIDE + suite.seeds - 1 > MAX_SEED:
            problems.append(f"seed must be at most {(MAX_SEED - suite.seeds + 1) // SEED_STRIDE} with {suite.seeds} "
                            f"seeds (seed s logs with the 32-bit seed seed * {SEED_STRIDE:_} + s), got {suite.seed}")
        if not suite.sizes:
            problems.append("a suite needs at least one log size")
        elif not any(numbers) and any(size % suite.steps_per_user for size in suite.sizes):
            problems.append(f"log sizes {list(suite.sizes)} must be multiples of steps_per_user "
                            f"({suite.steps_per_user})")
        if any(problems):
            raise OPESuiteError(_invalid(suite.name, problems))
        return dataclasses.replace(suite, sizes=tuple(sorted(suite.sizes)))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OPESuite:
        check_fields(cls, data, ("name", "envs", "behaviours", "targets"), OPESuiteError)
        return cls(**{"description": "", **data}).validate()


def _invalid(name: Any, problems: list[str | None]) -> str:
    """One message for every problem of a suite (``None`` entries: checks that passed)."""
    return f"OPE suite {name!r} is not valid: " + "; ".join(problem for problem in problems if problem) + "."


def _policy_problems(field: str, names: tuple[str, ...]) -> list[str]:
    """What is wrong with a suite's list of policy names: a name that does not parse, or two spellings of one
    policy (``linucb`` and ``greedy:linucb``), which would run and count twice as a repeated name would."""
    problems, spellings = [], {}
    for name in dict.fromkeys(names):
        try:
            spellings.setdefault(parse_policy(name), []).append(name)
        except InputError as error:
            problems.append(str(error).rstrip("."))
    problems += [f"{field} name one policy twice: {' and '.join(map(repr, same))}"
                 for same in spellings.values() if len(same) > 1]
    return problems


QUICK = OPESuite(
    name="quick",
    description="MovieLens single items and slates: uniform and epsilon-greedy (popularity) logging, LinUCB and "
                "text-match targets, every estimator at 1k, 10k and 100k rounds.",
    envs=("MovieLens-Bandit-v0", "MovieLens-BanditSlate-v0"),
    behaviours=("uniform", "epsilon-greedy:popularity:0.1"),
    targets=("linucb", "text-match"),
)

STANDARD = dataclasses.replace(
    QUICK,
    name="standard",
    description="The quick suite on MovieLens and IMDB, with 20 seeds.",
    envs=QUICK.envs + ("IMDB-Bandit-v0", "IMDB-BanditSlate-v0"),
    seeds=20,
)

SUITES: dict[str, OPESuite] = {suite.name: suite for suite in (QUICK, STANDARD)}


def get_suite(name_or_path: str) -> OPESuite:
    """A built-in suite by name, or one described by a JSON file."""
    if name_or_path in SUITES:
        return SUITES[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise OPESuiteError(f"{path} is not valid JSON ({error}).") from None
        return OPESuite.from_dict(data)
    raise OPESuiteError(f"Unknown OPE suite {name_or_path!r}; choose one of {', '.join(SUITES)} or give a .json file "
                        "describing one (`rlrec ope --list` shows the built-in ones).")
