"""Environments: the functional core (reset/step over params+state pytrees), the registry, Gymnasium adapters.

The ids (:data:`REGISTRY`, :func:`registered_envs`) load without JAX; the rest loads on first use.
"""

from __future__ import annotations

from rlrec._lazy import attach
from rlrec.envs.specs import REGISTRY, SETTINGS, registered_envs

_LAZY = {
    "EnvParams": "rlrec.envs.recsys",
    "EnvState": "rlrec.envs.recsys",
    "RecEnv": "rlrec.envs.recsys",
    "build_params": "rlrec.envs.registry",
    "make": "rlrec.envs.registry",
}
__all__ = ["REGISTRY", "SETTINGS", "registered_envs", *_LAZY]

# JAX-backed names load on first use, so `rlrec envs` and `--help` stay fast.
__getattr__, __dir__ = attach(__name__, _LAZY, globals(), __all__)
