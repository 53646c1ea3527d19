"""Compiled programs kept on disk: JAX's persistent compilation cache, under the rlrec cache folder.

Compiling is most of the time of a first result: a benchmark cell's program takes seconds of XLA work on a CPU
and used to be compiled again by every run, notebook and script. With the cache on, a program compiled once is
read back from disk by every later process (same program, same jax/jaxlib, same device kind).

The ``rlrec`` commands turn it on by default (``rlrec --no-compile-cache ...`` or ``RLREC_COMPILATION_CACHE=0`` turn it
off); scripts and notebooks call :func:`enable_compilation_cache`. A folder set with JAX's own
``JAX_COMPILATION_CACHE_DIR`` (or ``jax.config``) is respected.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

OPT_OUT_ENV_VAR = "RLREC_COMPILATION_CACHE"  # "0" turns the cache off for the rlrec commands
JAX_DIR_ENV_VAR = "JAX_COMPILATION_CACHE_DIR"
# Programs that compile faster than this are not worth a file (JAX's default is 1 s, which would leave out
# rlrec's quicker init programs, worth keeping all the same).
MIN_COMPILE_SECONDS = 0.2


def default_compilation_cache_dir() -> Path:
    """``<rlrec cache dir>/xla``: beside the embedding cache (``$RLREC_CACHE_DIR``, else ``~/.cache/rlrec``)."""
    from rlrec.lm import default_cache_dir

    return default_cache_dir() / "xla"


def opted_out() -> bool:
    """Whether ``RLREC_COMPILATION_CACHE`` turns the cache off (``0``, ``false``, ``no``, ``off``)."""
    return os.environ.get(OPT_OUT_ENV_VAR, "").strip().lower() in {"0", "false", "no", "off"}


def _configured_dir() -> str | None:
    """A folder the user already gave JAX (environment or ``jax.config``), if any."""
    if "jax" in sys.modules:
        import jax

        return jax.config.jax_compilation_cache_dir or None
    return os.environ.get(JAX_DIR_ENV_VAR) or None


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keeps compiled XLA programs on disk so later processes skip compiling them; returns the folder.

    Args:
        path: the folder; ``None`` keeps one the user gave JAX (``JAX_COMPILATION_CACHE_DIR``), else
            :func:`default_compilation_cache_dir`.

    Returns:
        The folder used, or ``None`` when it cannot be written (a warning says why; nothing is cached then).

    Works before or after ``jax`` is imported. Entries are a few hundred kB per program (a regret-benchmark cell
    is ~0.2 MB); JAX keys them by the program, the jax/jaxlib version and the device, so an upgrade simply
    compiles again. Delete the folder to reclaim the space.
    """
    folder = Path(path).expanduser() if path is not None else Path(_configured_dir() or default_compilation_cache_dir())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as error:
        warnings.warn(
            f"The compilation cache folder {folder} cannot be written ({error.strerror or error}); programs will be "
            f"compiled in every run. Set {JAX_DIR_ENV_VAR} or RLREC_CACHE_DIR to a writable folder.",
            stacklevel=2,
        )
        return None
    if "jax" in sys.modules:
        import jax

        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    else:  # read by JAX when it is first imported: turning the cache on does not import JAX
        os.environ[JAX_DIR_ENV_VAR] = str(folder)
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", str(MIN_COMPILE_SECONDS))
    return folder


def compilation_cache_size(folder: str | os.PathLike) -> tuple[int, int]:
    """``(files, bytes)`` held by a compilation cache folder (for ``rlrec info``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0, 0
    sizes = [entry.stat().st_size for entry in folder.iterdir() if entry.is_file()]
    return len(sizes), sum(sizes)
