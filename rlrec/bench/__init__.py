"""Running agents and benchmark suites: the runner (``rlrec.run``), summaries, tables, plots and suites."""

from rlrec.bench.suite import SUITES, Suite, SuiteError, SuiteResult, get_suite, run_suite

__all__ = ["SUITES", "Suite", "SuiteError", "SuiteResult", "get_suite", "run_suite"]
