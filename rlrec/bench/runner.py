"""Where ``rlrec.run`` used to live; kept so that existing imports work. It is :mod:`rlrec.rollout` now."""

from rlrec.rollout.runner import RunResult, compile_run, run
from rlrec.rollout.seeds import (
    LOOP_COMPILER_OPTIONS,
    RUNNER_COMPILER_OPTIONS,
    in_seed_blocks,
    seed_block,
    seed_mesh,
)
from rlrec.rollout.modes import MODES, PERSONAL, SHARED
from rlrec.rollout.steps import batch_step

__all__ = [
    "LOOP_COMPILER_OPTIONS",
    "MODES",
    "PERSONAL",
    "RUNNER_COMPILER_OPTIONS",
    "SHARED",
    "RunResult",
    "batch_step",
    "compile_run",
    "in_seed_blocks",
    "run",
    "seed_block",
    "seed_mesh",
]
