"""Environments: the functional core (reset/step over params+state pytrees), the registry, Gymnasium adapters."""

from rlrec.envs.recsys import EnvParams, EnvState, RecEnv
from rlrec.envs.registry import REGISTRY, SETTINGS, build_params, make, registered_envs

__all__ = ["REGISTRY", "SETTINGS", "EnvParams", "EnvState", "RecEnv", "build_params", "make", "registered_envs"]
