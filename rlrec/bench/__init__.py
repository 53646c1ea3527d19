"""Running agents and benchmark suites: the runner (``rlrec.run``), summaries, tables, plots and suites."""

from rlrec.bench.suite import SUITES, Suite, SuiteError, SuiteResult, get_suite, run_suite

__all__ = ["SUITES", "Suite", "SuiteError", "SuiteResult", "get_suite", "run_suite"]


def __getattr__(name: str):
    """Submodules on first use (``rlrec.bench.runner``, ``rlrec.bench.report``): the suites load without JAX."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(f"{__name__}.{name}") is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return importlib.import_module(f"{__name__}.{name}")
