"""Rolling agents out on environments: the layer below benchmarks (``rlrec.bench``) and training (``rlrec.train``).

- :mod:`rlrec.rollout.seeds`: per-seed keys, the device mesh, seed blocks, gathering results.
- :mod:`rlrec.rollout.steps`: one env step and the transition it teaches; personal and shared steps.
- :mod:`rlrec.rollout.driver`: the chunk loop with its progress bar.
- :mod:`rlrec.rollout.runner`: :func:`run` (``rlrec.run``), :func:`compile_run` and :class:`RunResult`.
"""

from rlrec.rollout.runner import RunResult, compile_run, run
from rlrec.rollout.steps import MODES, PERSONAL, SHARED

__all__ = ["MODES", "PERSONAL", "SHARED", "RunResult", "compile_run", "run"]
