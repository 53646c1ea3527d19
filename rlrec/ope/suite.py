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

from rlrec.bench.suite import check_fields
from rlrec.envs.specs import REGISTRY
from rlrec.errors import InputError
from rlrec.ope.specs import parse_policy

# The estimators' names (rlrec.ope.estimators.ESTIMATORS, kept equal by a test) and those for slates only.
ESTIMATOR_NAMES = ("dm", "ips", "snips", "dr", "sndr", "switch-dr", "iips", "rips", "pi")
SLATE_ONLY = ("iips", "rips", "pi")


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
        """The suite with its lists as tuples, or :class:`OPESuiteError` naming the problem and the fix."""
        suite = dataclasses.replace(self, envs=tuple(self.envs), behaviours=tuple(self.behaviours),
                                    targets=tuple(self.targets), sizes=tuple(sorted(int(s) for s in self.sizes)),
                                    estimators=tuple(self.estimators))
        unknown = [env for env in suite.envs if env not in REGISTRY]
        if unknown or not suite.envs:
            raise OPESuiteError(f"Unknown env(s) {unknown or '(none given)'}; see `rlrec envs` for the ids.")
        for name in suite.behaviours + suite.targets:
            try:
                parse_policy(name)
            except ValueError as error:
                raise OPESuiteError(str(error)) from None
        if not suite.behaviours or not suite.targets:
            raise OPESuiteError("A suite needs at least one behaviour and one target policy.")
        bad = [name for name in suite.estimators if name not in ESTIMATOR_NAMES]
        if bad:
            raise OPESuiteError(f"Unknown estimator(s) {bad}; choose from {', '.join(ESTIMATOR_NAMES)}.")
        if suite.seeds < 2:
            raise OPESuiteError(f"seeds must be >= 2 (bias and variance are measured over seeds), got {suite.seeds}.")
        if suite.steps_per_user < 1 or any(size < 1 or size % suite.steps_per_user for size in suite.sizes):
            raise OPESuiteError(f"Log sizes {list(suite.sizes)} must be positive multiples of steps_per_user "
                                f"({suite.steps_per_user}).")
        if not suite.sizes:
            raise OPESuiteError("A suite needs at least one log size.")
        if suite.train_users < 1 or suite.train_steps < 1:
            raise OPESuiteError("train_users and train_steps must be >= 1.")
        return suite

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OPESuite:
        check_fields(cls, data, ("name", "envs", "behaviours", "targets"), OPESuiteError)
        return cls(**{"description": "", **data}).validate()


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
