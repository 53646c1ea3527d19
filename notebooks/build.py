"""Writes the teaching notebooks from the cell sources in ``notebooks/src/*.py`` (outputs stripped).

Each source file defines ``CELLS``: a list of ``("markdown", text)`` / ``("code", text)`` pairs. Keeping the
lessons as plain Python strings makes them easy to review and diff; the ``.ipynb`` files are what students
open. Edit a source file, then::

    python notebooks/build.py            # rewrite every notebook
    python notebooks/build.py --check    # exit 1 if a notebook differs from its source (what the tests run)

Notebooks are written with no outputs, ``execution_count`` null, stable cell ids and minimal metadata.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}


def load_cells(source: Path) -> list[tuple[str, str]]:
    spec = importlib.util.spec_from_file_location(f"_notebook_{source.stem}", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CELLS


def build(source: Path) -> nbformat.NotebookNode:
    """The notebook of one source file: stripped, with cell ids ``<stem>-<index>`` (stable across builds)."""
    notebook = nbformat.v4.new_notebook(metadata=dict(METADATA))
    for index, (kind, text) in enumerate(load_cells(source)):
        text = text.strip("\n")
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(text)
        elif kind == "code":
            cell = nbformat.v4.new_code_cell(text)
        else:
            raise ValueError(f"{source.name}: cell {index} has unknown kind {kind!r} (markdown or code).")
        cell.id = f"c{index:02d}"
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the notebooks match their sources")
    args = parser.parse_args(argv)
    stale = []
    for source in sorted(SOURCES.glob("[0-9][0-9]_*.py")):
        target = HERE / f"{source.stem}.ipynb"
        text = render(build(source))
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(HERE.parent)}")
    if stale:
        print(f"out of date with notebooks/src: {', '.join(stale)}; run `python notebooks/build.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
