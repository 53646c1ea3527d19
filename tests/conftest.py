"""Shared fixtures. Embeddings and compiled programs are cached under .cache/ in the checkout (gitignored) unless
RLREC_CACHE_DIR is already set, so a second test run neither re-encodes the MovieLens catalog nor recompiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RLREC_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".cache" / "rlrec"))
# Compiled programs are shared between test files, workers and runs, as the rlrec commands share them
# (rlrec.enable_compilation_cache); set before JAX is imported. RLREC_COMPILATION_CACHE=0 turns it off.
if os.environ.get("RLREC_COMPILATION_CACHE", "").strip().lower() not in {"0", "false", "no", "off"}:
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(os.environ["RLREC_CACHE_DIR"]) / "xla"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")


@pytest.fixture(scope="session")
def encoder():
    from rlrec import lm

    return lm.get_encoder()


@pytest.fixture(scope="session")
def movielens():
    from rlrec.data import load_catalog

    return load_catalog("movielens")


# Synthetic stand-ins for the MovieLens envs (tests/synthetic.py: the sizes UNIT, built in milliseconds, no language
# model): the unit tests of envs, agents, runner and trainer use these; tests of MovieLens itself use `movielens`.
def _unit_env(env_id: str):
    from synthetic import UNIT, synthetic_env

    return synthetic_env(env_id, **UNIT)


@pytest.fixture(scope="session")
def bandit_env():
    """``MovieLens-Bandit-v0`` on the synthetic unit world."""
    return _unit_env("MovieLens-Bandit-v0")


@pytest.fixture(scope="session")
def slate_bandit():
    """``MovieLens-BanditSlate-v0`` (slates of 5) on the synthetic unit world."""
    return _unit_env("MovieLens-BanditSlate-v0")


@pytest.fixture(scope="session")
def session_env():
    """``MovieLens-Session-v0`` on the synthetic unit world."""
    return _unit_env("MovieLens-Session-v0")


@pytest.fixture(scope="session")
def session_slate_env():
    """``MovieLens-SessionSlate-v0`` (slates of 5) on the synthetic unit world."""
    return _unit_env("MovieLens-SessionSlate-v0")
