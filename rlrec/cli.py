"""The ``rlrec`` command: info, catalog, embed (and later run, train, bench).

Parsing and files live here, at the edge; everything below is plain library calls.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="rlrec",
    help="rlrec: a JAX RL simulation environment for recommender systems with language-model users.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


@app.command()
def info() -> None:
    """Versions, JAX devices, the embedding cache and the default language model."""
    import importlib.metadata as metadata

    import jax

    from rlrec import __version__, lm

    table = Table(title="rlrec", show_header=False)
    table.add_row("rlrec", __version__)
    table.add_row("python", platform.python_version())
    for package in ("jax", "jaxlib", "flax", "optax", "chex", "gymnasium", "numpy", "torch", "transformers"):
        try:
            table.add_row(package, metadata.version(package))
        except metadata.PackageNotFoundError:
            table.add_row(package, "not installed")
    table.add_row("jax backend", jax.default_backend())
    table.add_row("jax devices", ", ".join(str(device) for device in jax.devices()))
    table.add_row("embedding cache", str(lm.default_cache_dir()))
    table.add_row("default model", f"{lm.DEFAULT_MODEL_NAME} at {lm.default_model_path()}")
    console.print(table)


@app.command()
def catalog(
    name: Annotated[str, typer.Argument(help="Built-in catalog: movielens or ggplot2movies.")] = "movielens",
    query: Annotated[
        Optional[str], typer.Option("--query", "-q", help="Show the items nearest to this text.")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="How many nearest items to show.", min=1)] = 5,
    dim: Annotated[
        Optional[int], typer.Option(help="PCA dimension of the simulator space (default: keep the LM's).", min=1)
    ] = None,
    model: Annotated[
        Optional[Path], typer.Option(help="A local transformers model folder (default: all-MiniLM-L6-v2).")
    ] = None,
    samples: Annotated[int, typer.Option(help="How many sample items to list.", min=0)] = 5,
) -> None:
    """Summarise a built-in catalog: size, dimensions, sample items, nearest items to a query."""
    import time

    from rlrec.data import CatalogError, load_catalog
    from rlrec.lm import ModelLoadError, ModelNotFoundError

    start = time.perf_counter()
    try:
        items = load_catalog(name, dim=dim, model_path=str(model) if model else None)
    except (CatalogError, ModelNotFoundError, ModelLoadError) as error:
        _fail(str(error))
    elapsed = time.perf_counter() - start
    summary = Table(title=f"catalog {name}", show_header=False)
    for key, value in items.summary().items():
        summary.add_row(key, "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
    summary.add_row("load time", f"{elapsed:.2f} s")
    console.print(summary)
    if samples:
        sample = Table(title="sample items")
        sample.add_column("item_id")
        sample.add_column("text")
        sample.add_column("popularity", justify="right")
        for i in range(min(samples, len(items))):
            sample.add_row(str(items.item_ids[i]), items.texts[i], f"{items.popularity[i]:.0f}")
        console.print(sample)
    if query:
        nearest = items.nearest(query, k)
        found = Table(title=f"nearest to {query!r}")
        found.add_column("item_id")
        found.add_column("cosine", justify="right")
        found.add_column("text")
        for row in nearest.itertuples():
            found.add_row(str(row.item_id), f"{row.similarity:.3f}", row.text)
        console.print(found)


@app.command()
def embed(
    file: Annotated[Path, typer.Argument(help="CSV, TSV or Parquet file with one text per row.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .npz (ids, embeddings, texts, model).")],
    text_column: Annotated[str, typer.Option(help="Column holding the texts.")] = "text",
    id_column: Annotated[Optional[str], typer.Option(help="Column holding ids (default: row numbers).")] = None,
    model: Annotated[
        Optional[Path], typer.Option(help="A local transformers model folder (default: all-MiniLM-L6-v2).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
) -> None:
    """Encode a column of texts with the LM and save unit-norm embeddings (atomically) to an .npz file."""
    import numpy as np

    from rlrec import lm
    from rlrec.data import CatalogError, read_table

    if out.suffix != ".npz":
        _fail(f"--out must end in .npz, got {out}.")
    try:
        frame = read_table(file)
    except CatalogError as error:
        _fail(str(error))
    for role, column in (("--text-column", text_column), ("--id-column", id_column)):
        if column is not None and column not in frame.columns:
            _fail(f"Column {column!r} ({role}) is not in {file}; its columns are {list(frame.columns)}.")
    texts = frame[text_column]
    if texts.isna().any() or not all(isinstance(text, str) and text.strip() for text in texts):
        bad = next(i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip())
        _fail(f"Row {bad} of column {text_column!r} is empty or not text; every row needs a text to embed.")
    try:
        encoder = lm.TextEncoder(model, batch_size=batch_size, show_progress=True)
    except (lm.ModelNotFoundError, lm.ModelLoadError) as error:
        _fail(str(error))
    vectors = encoder.encode(texts.tolist())
    ids = frame[id_column].to_numpy() if id_column else np.arange(len(frame))
    lm.atomic_save_npz(
        out,
        ids=ids.astype(str) if ids.dtype == object else ids,
        embeddings=vectors,
        texts=np.asarray(texts.tolist(), dtype=str),
        model=np.asarray(encoder.model_id),
    )
    console.print(f"wrote {len(vectors)} embeddings of dim {vectors.shape[1]} ({encoder.model_id}) to {out}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
