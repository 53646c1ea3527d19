"""The teaching notebooks (notebooks/*.ipynb) run top to bottom at their default sizes, and are stored stripped.

Each notebook is executed with nbclient in a fresh ``python3`` kernel (the current interpreter's ipykernel),
from a copy in a temporary folder (nothing is written into the repository). The kernel inherits this process's
environment, so it reuses the embedding cache under ``RLREC_CACHE_DIR`` and the compilation cache under
``JAX_COMPILATION_CACHE_DIR`` (both set in conftest.py; each notebook calls ``rlrec.enable_compilation_cache()``,
which keeps that folder): notebooks that compile the same programs (and reruns) skip the compile.
Each test has its own kernel and folder, so the tests are safe to run in parallel (pytest-xdist).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = ("00_quickstart", "01_simulated_users", "02_bandits_and_regret", "03_deep_rl", "04_diversity",
           "05_conversation")
CELL_TIMEOUT_S = 600  # per cell; the slowest cell takes ~1-2 min on a busy 2-core CPU
# Executed in CI's slow step (`pytest -m slow`): 03 compiles eight programs (two trainers, four evaluations),
# ~3 min of CPU on 2 cores, too much for the default run's budget.
SLOW_NOTEBOOKS = {"03_deep_rl"}
ALLOWED_NOTEBOOK_METADATA = {"kernelspec", "language_info"}


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def executable_notebooks() -> list:
    return [
        pytest.param(path, id=path.stem, marks=[pytest.mark.slow] if path.stem in SLOW_NOTEBOOKS else [])
        for path in notebook_paths()
    ]


def test_every_lesson_is_there():
    missing = set(LESSONS) - {path.stem for path in notebook_paths()}
    assert not missing, f"missing notebooks: {sorted(missing)}"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda path: path.stem)
def test_notebook_is_stripped(path):
    """No outputs, no execution counts, no cell metadata, minimal notebook metadata: clean diffs."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert set(notebook.metadata) <= ALLOWED_NOTEBOOK_METADATA, f"{path.name}: extra metadata {set(notebook.metadata)}"
    for index, cell in enumerate(notebook.cells):
        where = f"{path.name} cell {index}"
        assert not cell.get("metadata"), f"{where} has metadata {dict(cell.metadata)}"
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{where} has outputs: strip them (python notebooks/build.py)"
            assert cell.execution_count is None, f"{where} has an execution count"


def test_notebooks_match_their_sources():
    """notebooks/build.py --check: each .ipynb is exactly what its notebooks/src/*.py source generates."""
    completed = subprocess.run(
        [sys.executable, str(NOTEBOOKS_DIR / "build.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize("path", executable_notebooks())
def test_notebook_runs(path, tmp_path):
    """Every cell of the notebook runs without an error at its default sizes."""
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    notebook = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}", pytrace=False)
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, errors
