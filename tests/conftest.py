"""Shared fixtures. Embeddings are cached under .cache/ in the checkout (gitignored) unless
RLREC_CACHE_DIR is already set, so a second test run does not re-encode the MovieLens catalog."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RLREC_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".cache" / "rlrec"))


@pytest.fixture(scope="session")
def encoder():
    from rlrec import lm

    return lm.get_encoder()


@pytest.fixture(scope="session")
def movielens():
    from rlrec.data import load_catalog

    return load_catalog("movielens")
