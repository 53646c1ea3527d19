"""Pure JAX user simulation: population, choice model, dynamics (docs/design.md section 4)."""

from rlrec.simulators import choice, dynamics, population

__all__ = ["choice", "dynamics", "population"]
