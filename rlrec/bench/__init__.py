"""Benchmark suites: envs x agents x seeds of ``rlrec.run`` (:mod:`rlrec.rollout`), their tables and plots."""

from rlrec._lazy import attach
from rlrec.bench.suite import SUITES, Suite, SuiteError, get_suite

# Running suites, their results and the submodules (rlrec.bench.report) on first use: the suites load without
# JAX.
_LAZY = {"SuiteResult": "rlrec.bench.suite_results", "run_suite": "rlrec.bench.suite_run"}
__all__ = ["SUITES", "Suite", "SuiteError", "get_suite", *_LAZY]

__getattr__, __dir__ = attach(__name__, _LAZY, globals(), __all__)
