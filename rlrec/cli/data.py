"""The commands that show what rlrec works with: ``info`` (versions, devices, caches, the default model),
``catalog`` (a built-in catalog and the items nearest a query), ``embed`` (texts into LM vectors, an .npz file)
and ``envs`` (the environments, or one env's settings)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from rlrec.cli import output
from rlrec.cli.output import fail, print_settings
from rlrec.envs.specs import REGISTRY


def info() -> None:
    """Versions, JAX devices, the embedding cache and the default language model."""
    import importlib.metadata as metadata

    import jax

    from rlrec import __version__, compilation, lm

    # Plain "name  value" lines, not a table: a path is printed whole (a terminal narrower than it wraps it,
    # nothing is cut).
    rows = [("rlrec", __version__), ("python", platform.python_version())]
    for package in ("jax", "jaxlib", "flax", "optax", "chex", "gymnasium", "numpy", "torch", "transformers"):
        try:
            rows.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            rows.append((package, "not installed"))
    rows.append(("jax backend", jax.default_backend()))
    rows.append(("jax devices", ", ".join(str(device) for device in jax.devices())))
    rows.append(("embedding cache", str(lm.default_cache_dir())))
    folder = jax.config.jax_compilation_cache_dir
    if folder:
        files, size = compilation.compilation_cache_size(folder)
        rows.append(("compilation cache", f"{folder} ({files} programs, {size / 2**20:.1f} MiB)"))
    else:
        rows.append(("compilation cache", "off"))
    rows.append(("default model", lm.DEFAULT_MODEL_NAME))
    rows.append(("model folder", str(lm.default_model_path())))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        output.console.print(f"{name:<{width}}  {escape(value)}", soft_wrap=True, highlight=False)


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
        fail(str(error))
    elapsed = time.perf_counter() - start
    summary = Table(title=f"catalog {name}", show_header=False)
    for key, value in items.summary().items():
        summary.add_row(key, "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
    summary.add_row("load time", f"{elapsed:.2f} s")
    output.console.print(summary)
    if samples:
        sample = Table(title="sample items")
        sample.add_column("item_id", no_wrap=True)
        sample.add_column("text")
        sample.add_column("popularity", justify="right", no_wrap=True)
        for i in range(min(samples, len(items))):
            sample.add_row(str(items.item_ids[i]), items.texts[i], f"{items.popularity[i]:.0f}")
        output.console.print(sample)
    if query:
        nearest = items.nearest(query, k)
        found = Table(title=f"nearest to {query!r}")
        found.add_column("item_id", no_wrap=True)
        found.add_column("cosine", justify="right", no_wrap=True)
        found.add_column("text")
        for row in nearest.itertuples():
            found.add_row(str(row.item_id), f"{row.similarity:.3f}", row.text)
        output.console.print(found)


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
    from rlrec.files import atomic_save_npz

    if out.suffix != ".npz":
        fail(f"--out must end in .npz, got {out}.")
    try:
        frame = read_table(file)
    except CatalogError as error:
        fail(str(error))
    for role, column in (("--text-column", text_column), ("--id-column", id_column)):
        if column is not None and column not in frame.columns:
            fail(f"Column {column!r} ({role}) is not in {file}; its columns are {list(frame.columns)}.")
    texts = frame[text_column]
    if texts.isna().any() or not all(isinstance(text, str) and text.strip() for text in texts):
        bad = next(i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip())
        fail(f"Row {bad} of column {text_column!r} is empty or not text; every row needs a text to embed.")
    try:
        encoder = lm.TextEncoder(model, batch_size=batch_size, show_progress=True)
    except (lm.ModelNotFoundError, lm.ModelLoadError) as error:
        fail(str(error))
    vectors = encoder.encode(texts.tolist())
    ids = frame[id_column].to_numpy() if id_column else np.arange(len(frame))
    atomic_save_npz(
        out,
        ids=ids.astype(str) if ids.dtype == object else ids,
        embeddings=vectors,
        texts=np.asarray(texts.tolist(), dtype=str),
        model=np.asarray(encoder.model_id),
    )
    output.console.print(f"wrote {len(vectors)} embeddings of dim {vectors.shape[1]} ({encoder.model_id}) to {out}")


def envs(
    knobs: Annotated[
        Optional[str],
        typer.Option("--knobs", metavar="ID", help="List what `--set name=value` (rlrec.make(ID, name=value)) "
                     "changes in env ID: every name with its default, valid values and meaning."),
    ] = None,
) -> None:
    """List the registered environments (gymnasium id: rlrec/<id>), or one env's settings with --knobs ID."""
    if knobs is None:
        listing = Table(box=None, show_header=False, pad_edge=False)
        listing.add_column(no_wrap=True)
        listing.add_column(overflow="fold")
        for env_id in sorted(REGISTRY):
            listing.add_row(env_id, REGISTRY[env_id].description)
        output.console.print(listing)
        output.console.print("gymnasium ids: rlrec/<id>; `rlrec envs --knobs ID` lists an env's settings",
                             highlight=False)
        return
    from rlrec.envs.registry import overrides_of

    rows = [(row.name, str(row.default), row.valid, row.meaning) for row in overrides_of(knobs)]
    output.console.print(f"[bold]{escape(knobs)}[/]: `--set name=value`, or rlrec.make(id, name=value)")
    print_settings(rows)
