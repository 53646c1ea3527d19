"""Time to a first result: encoding, the quick suite cold and warm, the notebooks, and (optionally) the tests.

What a newcomer waits for, each measured as its own fresh process, in one run of this script:

* **encode**: ``rlrec.make("MovieLens-Bandit-v0")`` with an empty embedding cache (model load + the whole
  catalog + the users' stated requests), and the largest difference from the embeddings already in your cache;
* **quick suite, cold**: ``rlrec bench --suite quick`` with the embeddings cached and an *empty* compilation
  cache; **warm**: the same again, reading every program back from that cache. Both must give the same table
  (every per-seed number equal), which the script checks;
* **notebooks**: each teaching notebook executed with nbclient (cold, then warm), ``--notebooks`` to choose;
* **tests** (``--tests``): ``python -m pytest`` with an empty compilation cache, as CI runs it (minutes).

Wall times on a shared CPU drift from run to run; compare the figures of one run with each other. Run from the
repository root::

    python benchmarks/first_run.py                      # encode, quick suite cold/warm, notebooks (~8 min, 2 cores)
    python benchmarks/first_run.py --notebooks none --tests
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("00_quickstart", "01_simulated_users", "02_bandits_and_regret", "03_deep_rl", "04_diversity")

ENCODE = textwrap.dedent(
    """
    import sys, time, numpy as np
    started = time.perf_counter()
    import rlrec
    env, params = rlrec.make("MovieLens-Bandit-v0")
    print(f"seconds {time.perf_counter() - started:.2f}")
    np.savez(sys.argv[1], items=np.asarray(params.item_features), requests=np.asarray(params.prototype_requests))
    """
)


class Lines(list):
    """Figures printed as soon as they are measured."""

    def append(self, line: str) -> None:
        super().append(line)
        print(line, flush=True)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return wall, done


def per_seed_numbers(folder: Path) -> list[dict]:
    """The suite's per-seed results without the timing columns (which differ between any two runs)."""
    rows = json.loads((folder / "results.json").read_text())
    return [{key: value for key, value in row.items() if not key.startswith("cell_")} for row in rows]


def same(a: list[dict], b: list[dict]) -> bool:
    def equal(x, y):
        return x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))

    return len(a) == len(b) and all(row.keys() == other.keys() and all(equal(row[k], other[k]) for k in row)
                                    for row, other in zip(a, b))


def cache_size(folder: Path) -> tuple[int, float]:
    files = [path for path in folder.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--notebooks", default="00_quickstart,01_simulated_users,02_bandits_and_regret,04_diversity",
                        help="comma-separated notebook names, 'all' or 'none'")
    parser.add_argument("--tests", action="store_true", help="also time the default test run (python -m pytest)")
    parser.add_argument("--skip-encode", action="store_true", help="do not time the first encoding")
    args = parser.parse_args(argv)
    notebooks = {"all": list(NOTEBOOKS), "none": []}.get(args.notebooks, [n for n in args.notebooks.split(",") if n])

    work = Path(tempfile.mkdtemp(prefix="rlrec-first-run-"))
    xla = work / "xla"
    base = {key: value for key, value in os.environ.items() if key not in {"JAX_COMPILATION_CACHE_DIR"}}
    base.setdefault("RLREC_CACHE_DIR", str(Path.home() / ".cache" / "rlrec"))
    env = {**base, "JAX_COMPILATION_CACHE_DIR": str(xla), "TQDM_DISABLE": "1"}
    lines = Lines()
    lines.append(f"{os.cpu_count()} CPUs (affinity {len(os.sched_getaffinity(0))}), embeddings from "
             f"{base['RLREC_CACHE_DIR']}, scratch {work}")
    try:
        if not args.skip_encode:
            cold_cache = {**env, "RLREC_CACHE_DIR": str(work / "empty-cache"),
                          "JAX_COMPILATION_CACHE_DIR": str(work / "x0")}
            wall, done = timed([sys.executable, "-c", ENCODE, str(work / "cold.npz")], cold_cache)
            inside = float(done.stdout.split()[-1])
            _, _ = timed([sys.executable, "-c", ENCODE, str(work / "cached.npz")], env)
            import numpy as np

            cold_vectors, cached_vectors = np.load(work / "cold.npz"), np.load(work / "cached.npz")
            diff = max(float(np.abs(cold_vectors[k] - cached_vectors[k]).max()) for k in ("items", "requests"))
            lines.append(f"encode MovieLens, empty embedding cache  {wall:7.1f} s  (make() {inside:.1f} s; max |diff| "
                         f"vs your cached embeddings {diff:.1e})")

        quick = [sys.executable, "-m", "rlrec.cli", "bench", "--suite", "quick", "--out"]
        cold, _ = timed(quick + [str(work / "cold")], env)
        files, megabytes = cache_size(xla)
        warm, _ = timed(quick + [str(work / "warm")], env)
        identical = same(per_seed_numbers(work / "cold"), per_seed_numbers(work / "warm"))
        lines.append(f"quick suite, empty compilation cache     {cold:7.1f} s")
        lines.append(f"quick suite, warm compilation cache      {warm:7.1f} s  (cold/warm {cold / warm:.1f}x; "
                     f"per-seed results {'identical' if identical else 'DIFFER'})")
        lines.append(f"compilation cache after the cold suite   {files} files, {megabytes:.1f} MB")

        if notebooks:
            import nbclient
            import nbformat

            nb_xla = work / "xla-notebooks"
            for name in notebooks:
                times = []
                for _ in ("cold", "warm"):
                    notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
                    folder = work / f"nb-{name}"
                    folder.mkdir(exist_ok=True)
                    os.environ.update({"JAX_COMPILATION_CACHE_DIR": str(nb_xla), "TQDM_DISABLE": "1"})
                    started = time.perf_counter()
                    nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                            resources={"metadata": {"path": str(folder)}}).execute()
                    times.append(time.perf_counter() - started)
                lines.append(f"notebook {name:<24}         {times[0]:7.1f} s cold, {times[1]:5.1f} s warm")

        if args.tests:
            tests_env = {**base, "JAX_COMPILATION_CACHE_DIR": str(work / "xla-tests")}
            wall, done = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tests_env)
            summary = (done.stdout.strip().splitlines() or ["?"])[-1]
            lines.append(f"python -m pytest, empty compilation cache {wall:6.1f} s  ({summary.strip('= ')})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
