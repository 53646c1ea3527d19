"""Running agents and benchmark suites: the runner (``rlrec.run``), summaries, tables, plots and suites."""

from rlrec._lazy import attach
from rlrec.bench.suite import SUITES, Suite, SuiteError, SuiteResult, get_suite, run_suite

__all__ = ["SUITES", "Suite", "SuiteError", "SuiteResult", "get_suite", "run_suite"]

# Submodules (rlrec.bench.runner, rlrec.bench.report) on first use: the suites load without JAX.
__getattr__, __dir__ = attach(__name__, {}, globals(), __all__)
