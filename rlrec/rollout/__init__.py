"""Rolling agents out on environments: the layer below benchmarks (``rlrec.bench``) and training (``rlrec.train``).

- :mod:`rlrec.rollout.seeds`: per-seed keys, the device mesh, seed blocks, gathering results.
- :mod:`rlrec.rollout.steps`: one env step and the transition it teaches; personal and shared steps.
- :mod:`rlrec.rollout.driver`: the chunk loop with its progress bar.
- :mod:`rlrec.rollout.runner`: :func:`run` (``rlrec.run``), :func:`compile_run` and :class:`RunResult`.
- :mod:`rlrec.rollout.modes`: the learning modes, JAX-free.
"""

from rlrec._lazy import attach
from rlrec.rollout.modes import MODES, PERSONAL, SHARED

# The runner loads JAX: on first use, so the modes can be read without it.
_LAZY = dict.fromkeys(("RunResult", "compile_run", "run"), "rlrec.rollout.runner")
__all__ = ["MODES", "PERSONAL", "SHARED", *_LAZY]

__getattr__, __dir__ = attach(__name__, _LAZY, globals(), __all__)
