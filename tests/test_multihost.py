"""Multi-host runs through ``jax.distributed``, proved on one machine.

The README promises that ``rlrec.run`` and ``rlrec.bench.run_suite`` work unchanged across processes: call
``jax.distributed.initialize()`` in each, the seed axis is sharded over every process's devices, every process
gets all results and only process 0 writes files. Here two local processes join one ``jax.distributed`` job
(coordinator on 127.0.0.1 at a free port; CPU collectives over gloo, JAX's default) with one CPU device each,
and both run ``tests/multihost_worker.py``: LinUCB on a small synthetic env in personal and shared mode (4 seeds,
so 2 per process) and a two-cell benchmark suite. The same script also runs as one ordinary process. The test
asserts that every per-step array, suite cell and summary of both workers is bitwise equal to that reference,
that only process 0 wrote the suite's files and that those match the reference's, and that the seed mesh gives
each process an equal share of the seeds (refusing seed counts that do not split).

All three processes get the same environment, and none is pinned to a core or limited to one XLA thread: XLA's
CPU results depend on the threads it may use (``--xla_cpu_multi_thread_eigen=false``, or pinning a process to
one core, changes the last bit of some shared-mode means and suite metrics), so the reference and the workers
must have the same thread settings. Compilation dominates: the reference takes 65-115 s and the pair 115-140 s on
a 2-core CPU (3-4 minutes in all), so this runs in the slow step.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("multihost_worker.py")
ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600  # per group of processes; the pair takes about 140 s on an idle 2-core CPU
LOG_TAIL = 4000  # characters of each process's log shown when it fails


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it for a socket bound to port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def worker_environment() -> dict[str, str]:
    """The same environment for every process: one CPU device each, one BLAS thread, the test's cache."""
    return dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=1",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        RLREC_CACHE_DIR=os.environ["RLREC_CACHE_DIR"],  # set by conftest.py
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )


def start(folder: Path, index: int, options: list[str]) -> subprocess.Popen:
    """Starts worker ``index`` writing ``folder/result-<index>.npz``, its suite to ``folder/suite-<index>``."""
    command = [sys.executable, str(WORKER), str(folder / f"result-{index}.npz"), str(folder / f"suite-{index}"),
               *options]
    with open(folder / f"log-{index}.txt", "w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=worker_environment(), cwd=ROOT)


def logs(folder: Path, count: int) -> str:
    tails = [f"--- process {i} ---\n{(folder / f'log-{i}.txt').read_text()[-LOG_TAIL:]}" for i in range(count)]
    return "\n".join(tails)


def wait_all(processes: list[subprocess.Popen], folder: Path) -> None:
    """Waits for every process; on a failure, the timeout or an interrupt kills the rest (failing with logs)."""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while None in (codes := [p.poll() for p in processes]):
            if any(code not in (None, 0) for code in codes) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    codes = [p.returncode for p in processes]
    assert codes == [0] * len(processes), f"exit codes {codes} (timeout {TIMEOUT_S} s)\n{logs(folder, len(processes))}"


def run_processes(folder: Path, count: int) -> list[dict[str, np.ndarray]]:
    """Runs the worker as ``count`` processes of one job (1: an ordinary process); returns their results."""
    folder.mkdir()
    if count == 1:
        options = [[]]
    else:
        job = ["--coordinator", f"127.0.0.1:{free_port()}", "--processes", str(count)]
        options = [[*job, "--process-id", str(i)] for i in range(count)]
    started = time.perf_counter()
    processes = [start(folder, index, option) for index, option in enumerate(options)]
    wait_all(processes, folder)
    print(f"{count} process(es): {time.perf_counter() - started:.0f} s")
    return [load(folder / f"result-{i}.npz") for i in range(count)]


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def meta(result: dict[str, np.ndarray], name: str):
    value = result[f"meta/{name}"]
    return json.loads(str(value)) if value.dtype.kind == "U" else value.item()


def assert_same_results(got: dict[str, np.ndarray], want: dict[str, np.ndarray], label: str) -> None:
    """Every ``run/`` and ``suite/`` array of ``got`` equals ``want``'s, bit for bit (NaN where NaN)."""
    compared = sorted(key for key in want if not key.startswith("meta/"))
    assert sorted(key for key in got if not key.startswith("meta/")) == compared
    for prefix in ("run/personal/", "run/shared/", "suite/cell/", "suite/summary/"):
        assert any(key.startswith(prefix) for key in compared), prefix
    for key in compared:
        np.testing.assert_array_equal(got[key], want[key], err_msg=f"{label}: {key}", strict=True)


def assert_same_cell_files(got: Path, want: Path) -> None:
    """The suite folders hold the same files, and their cells the same arrays."""
    assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*")) == sorted(
        p.relative_to(want).as_posix() for p in want.rglob("*")
    )
    cells = sorted((want / "cells").glob("*.npz"))
    assert len(cells) == 2
    for path in cells:
        ours, theirs = load(got / "cells" / path.name), load(path)
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            if key != "info":  # holds wall times and devices
                np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{path.name}: {key}", strict=True)
        assert len(json.loads(str(ours["info"]))["devices"]) == 2


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    [reference] = run_processes(tmp_path / "single", 1)
    workers = run_processes(tmp_path / "distributed", 2)

    assert meta(reference, "process_count") == 1 and meta(reference, "devices/shared") == ["cpu:0"]
    for index, result in enumerate(workers):
        assert meta(result, "process_count") == 2 and meta(result, "process_index") == index
        for mode in ("personal", "shared"):
            assert len(meta(result, f"devices/{mode}")) == 2  # the seeds were sharded over both processes
        meshes = meta(result, "mesh")
        assert meshes["2"] == meshes["4"] == [0, 1]
        assert "multiple of 2" in meshes["1"] and "multiple of 2" in meshes["3"]
        assert_same_results(result, reference, f"process {index}")

    distributed = tmp_path / "distributed"
    assert not (distributed / "suite-1").exists(), "only process 0 writes the suite's files"
    assert_same_cell_files(distributed / "suite-0", tmp_path / "single" / "suite-0")
