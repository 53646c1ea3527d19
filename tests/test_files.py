"""File helpers: atomic writes and the folder lock that keeps two processes out of one run folder."""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from rlrec.files import LOCK_NAME, OWNER_NAME, FolderInUseError, FolderLock, atomic_write_text

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from rlrec.files import FolderLock
    lock = FolderLock(sys.argv[1], "test folder").acquire()  # kept: a dropped lock is released
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def hold_folder_lock(folder, seconds: float = 120.0) -> subprocess.Popen:
    """Another process that holds ``folder``'s lock for ``seconds`` (returns once it holds it)."""
    process = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), str(seconds)], stdout=subprocess.PIPE,
                               text=True)
    line = process.stdout.readline()
    assert line.strip() == "locked", f"the lock holder did not start (exit code {process.poll()})"
    return process


def test_a_second_process_is_refused_and_told_who_holds_the_folder(tmp_path):
    holder = hold_folder_lock(tmp_path / "run")
    try:
        with pytest.raises(FolderInUseError, match=rf"in use by another rlrec process \(pid {holder.pid} on .*, "
                                                   r"started .*: .*\). Wait for it.*or choose another folder"):
            FolderLock(tmp_path / "run", "test folder").acquire()
    finally:
        holder.kill()
        holder.wait()
    # The operating system released the killed holder's lock: the folder can be taken, and the owner is updated.
    with FolderLock(tmp_path / "run", "test folder"):
        owner = json.loads((tmp_path / "run" / OWNER_NAME).read_text())
        assert owner["pid"] == os.getpid()


def test_waiting_lock_gets_the_folder_when_the_holder_leaves(tmp_path):
    held, leave = threading.Event(), threading.Event()

    def holder():  # another thread (filelock refuses to wait on a lock its own thread holds: a deadlock)
        with FolderLock(tmp_path, "cache"):
            held.set()
            leave.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    threading.Timer(0.5, leave.set).start()
    told = []
    started = time.perf_counter()
    with FolderLock(tmp_path, "cache", timeout=None, on_wait=told.append):
        assert time.perf_counter() - started >= 0.4
    thread.join()
    assert len(told) == 1 and f"pid {os.getpid()}" in told[0]


def test_lock_errors_for_files_and_bounded_waits(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        FolderLock(tmp_path / "a-file").acquire()
    held = FolderLock(tmp_path / "held").acquire()
    with pytest.raises(FolderInUseError, match="stayed in use .* for 0.2 s"):
        FolderLock(tmp_path / "held", timeout=0.2).acquire()
    held.release()
    assert (tmp_path / "held" / LOCK_NAME).exists()  # the lock file stays (it is only a lock), harmlessly


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
