"""Environments: the functional core (reset/step over params+state pytrees), the registry, Gymnasium adapters.

The ids (:data:`REGISTRY`, :func:`registered_envs`) load without JAX; the rest loads on first use.
"""

from __future__ import annotations

import importlib
import importlib.util

from rlrec.envs.specs import REGISTRY, SETTINGS, registered_envs

__all__ = ["REGISTRY", "SETTINGS", "EnvParams", "EnvState", "RecEnv", "build_params", "make", "registered_envs"]

_LAZY = {
    "EnvParams": "rlrec.envs.recsys",
    "EnvState": "rlrec.envs.recsys",
    "RecEnv": "rlrec.envs.recsys",
    "build_params": "rlrec.envs.registry",
    "make": "rlrec.envs.registry",
}


def __getattr__(name: str):
    """Loads JAX-backed names on first use (PEP 562), so ``rlrec envs`` and ``--help`` stay fast."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule, e.g. rlrec.envs.registry
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
