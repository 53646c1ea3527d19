"""Checks and transforms behind a catalog: unit-norm vectors, the PCA projection, tables and per-item columns.

Normalising and checking vectors, fitting the projection from LM space to simulator space, reading CSV/Parquet
tables, multi-hot genres, and checking or standardising per-item values (popularity, quality). Plain
NumPy/pandas, used by :class:`rlrec.data.catalog.Catalog` (which re-exports these names), the user
population (its vectors) and the registry (standardised appeal). Every problem is a :class:`CatalogError`.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from rlrec import _repr
from rlrec.errors import InputError


class CatalogError(InputError):
    """A catalog's input is unusable; the message names the problem and the fix."""


def normalise_rows(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32).

    Each row is first multiplied by the power of two that brings its largest entry into ``[0.5, 1)``: exact in
    floating point (the result is bit-for-bit what float32 arithmetic gives where it does not overflow), and it
    keeps rows of huge or tiny float64 values (``1e39``, ``1e-50``) from overflowing or vanishing in float32.
    """
    vectors = np.asarray(vectors)
    if not np.issubdtype(vectors.dtype, np.floating):
        vectors = vectors.astype(np.float64)
    with np.errstate(invalid="ignore"):
        _, exponent = np.frexp(np.max(np.abs(vectors), axis=-1, keepdims=True))
    vectors = np.ldexp(vectors, -exponent).astype(np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, eps)


def _count(count: int, rows: str, verbs: tuple[str, str] = ("is", "are")) -> str:
    """``count`` rows and the verb that agrees: ``"1 row is"``, ``"3 rows are"``."""
    return f"1 {rows.removesuffix('s')} {verbs[0]}" if count == 1 else f"{count} {rows} {verbs[1]}"


def check_vectors(vectors, what: str, *, rows: str = "rows") -> np.ndarray:
    """Unit-norm float32 rows of ``vectors`` (any float/int dtype), or a :class:`CatalogError` naming the first
    row that is not finite or is all zeros (it has no direction to normalise)."""
    try:
        vectors = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError):
        raise CatalogError(f"{what} must be numeric arrays.") from None
    flat = vectors.reshape(-1, vectors.shape[-1]) if vectors.ndim >= 1 and vectors.size else vectors.reshape(0, 1)
    bad = ~np.isfinite(flat).all(axis=1)
    if bad.any():
        raise CatalogError(
            f"{what}: {_count(int(bad.sum()), rows, ('holds', 'hold'))} NaN or inf "
            f"(first at row {int(np.argmax(bad))}). Fix or drop them."
        )
    zero = ~np.any(flat != 0, axis=1)
    if zero.any():
        raise CatalogError(
            f"{what}: {_count(int(zero.sum()), rows)} all zeros (first at row {int(np.argmax(zero))}); a zero vector "
            "has no direction to normalise. Fix or drop them."
        )
    return normalise_rows(vectors)


@dataclasses.dataclass(frozen=True, eq=False)
class Projection:
    """A PCA projection from LM space (D) to simulator space (d), fitted on catalog embeddings.

    ``project(x) = normalise((x - mean) @ components)``: rows come out unit-norm so that inner products stay
    cosine similarities, the scale the simulator's utility expects.
    """

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (D, d), orthonormal columns
    explained_variance_ratio: np.ndarray  # (d,)

    def __repr__(self) -> str:
        return _repr.call(
            "Projection",
            {
                "input_dim": self.input_dim,
                "dim": self.dim,
                "explained_variance": round(float(self.explained_variance_ratio.sum()), 3),
            },
        )

    @property
    def input_dim(self) -> int:
        return int(self.components.shape[0])

    @property
    def dim(self) -> int:
        return int(self.components.shape[1])

    @classmethod
    def fit(cls, embeddings: np.ndarray, dim: int) -> Projection:
        """Principal components of ``embeddings (N, D)``, keeping the top ``dim``."""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        count, input_dim = embeddings.shape
        if not 1 <= dim <= min(count, input_dim):
            raise CatalogError(
                f"Projection dim must be between 1 and min(items, embedding dim) = {min(count, input_dim)}, "
                f"got {dim}."
            )
        mean = embeddings.mean(axis=0)
        _, singular_values, right_vectors = np.linalg.svd(embeddings - mean, full_matrices=False)
        variance = singular_values**2
        components = right_vectors[:dim].T
        # Fix the sign of each component (largest entry positive) so fits are reproducible across LAPACKs.
        signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(dim)])
        components = components * np.where(signs == 0, 1.0, signs)
        return cls(
            mean=mean.astype(np.float32),
            components=components.astype(np.float32),
            explained_variance_ratio=(variance[:dim] / variance.sum()).astype(np.float32),
        )

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape[-1] != self.input_dim:
            raise CatalogError(
                f"Cannot project vectors of dim {vectors.shape[-1]}: this projection expects {self.input_dim}. "
                "Encode the texts with the catalog's own model."
            )
        return normalise_rows((vectors - self.mean) @ self.components)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Reads a CSV or Parquet file, with clear errors for a missing, unknown, empty or ragged file."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"No such file: {path}. Give the path of a CSV or Parquet file.")
    suffix = path.suffix.lower()
    try:
        if suffix in {".csv", ".tsv", ".txt"}:
            separator = "\t" if suffix == ".tsv" else ","
            check_field_counts(path, separator)
            # index_col=False: pandas would take the first column as the index of rows one field longer than the
            # header (every column shifted); the check above refuses such rows, and this keeps pandas from guessing.
            return pd.read_csv(path, sep=separator, index_col=False)
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path)
    except pd.errors.EmptyDataError as error:
        raise CatalogError(f"{path} is empty: it needs a header row and at least one item.") from error
    except pd.errors.ParserError as error:  # e.g. a quote opened and never closed
        raise CatalogError(f"{path} is not a readable CSV file ({error}). Close every double quote you open; "
                           "write a quote inside a quoted field as two (\"\").") from error
    except ImportError as error:
        raise CatalogError(f"Reading {path} needs a Parquet engine: `pip install pyarrow`.") from error
    raise CatalogError(f"Unsupported file type {suffix!r} for {path}: use .csv, .tsv or .parquet.")


def check_field_counts(path: Path, separator: str = ",") -> None:
    """Raises a :class:`CatalogError` naming the first line of a CSV file whose field count differs from the
    header's, and the fix.

    pandas does not refuse them: a row with one field too many makes it take the first column as the index (every
    column shifts: ids read "Action"), a short row is filled with NaN, a long row later on is a bare
    ``ParserError``. The ``csv`` module splits fields as pandas' default dialect does (double quotes, doubled
    inside a field) and counts physical lines, as an editor shows them.
    """
    name = {",": "comma", "\t": "tab"}.get(separator, repr(separator))
    header = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=separator)
            end = 0
            for row in reader:
                start, end = end + 1, reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):  # a blank line, which pandas skips too
                    continue
                if header is None:
                    header = len(row)
                elif len(row) != header:
                    fix = (f"a field that contains a {name} (a title such as \"Face, The\") must be in double quotes"
                           if len(row) > header else "give every row one value per column (an empty value is "
                           f"nothing between two {name}s)")
                    raise CatalogError(f"{path}, line {start}: {len(row)} fields where the header has {header} "
                                       f"({row!r:.120}); {fix}.")
    except UnicodeDecodeError as error:
        raise CatalogError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); save it as "
                           "UTF-8.") from None
    except csv.Error as error:
        raise CatalogError(f"{path}, line {reader.line_num}: {error}; save it as a plain-text CSV file.") from None


def multi_hot(labels: pd.Series, separator: str = "|") -> tuple[np.ndarray, tuple[str, ...]]:
    """``(N, G)`` bool matrix and sorted labels from ``separator``-joined label strings."""
    split = labels.fillna("").astype(str).str.split(separator)
    names = sorted({label.strip() for row in split for label in row if label.strip()})
    column = {label: j for j, label in enumerate(names)}
    matrix = np.zeros((len(labels), len(names)), dtype=bool)
    for i, row in enumerate(split):
        for label in row:
            if label.strip():
                matrix[i, column[label.strip()]] = True
    return matrix, tuple(names)


def per_item_values(values, count: int, label: str, default: float, minimum: float | None = None) -> np.ndarray:
    """``(count,)`` float32 values, checked as float32 holds them (finite, and ``>= minimum`` when given)."""
    if values is None:
        return np.full(count, default, dtype=np.float32)
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise CatalogError(f"{label} must be numbers, one per item.") from None
    if values.shape != (count,):
        raise CatalogError(f"{label} must have one value per item, shape ({count},); got {values.shape}.")
    with np.errstate(over="ignore"):
        used = values.astype(np.float32)
    if not np.isfinite(used).all():
        raise CatalogError(
            f"{label} contains NaN, inf or values beyond float32's range (first at row "
            f"{int(np.argmax(~np.isfinite(used)))})."
        )
    if minimum is not None and (used < minimum).any():
        first = int(np.argmax(used < minimum))
        raise CatalogError(
            f"{label} must be >= {minimum:g} (it counts interactions); row {first} is {float(values[first]):g}."
        )
    return used


def standardise(values: np.ndarray) -> np.ndarray:
    """Mean 0, standard deviation 1 (just centred when all values are equal), float32.

    Computed in the input's dtype, and again in float64 if that overflowed (float32 values near its largest).
    """
    values = np.asarray(values)
    with np.errstate(over="ignore", invalid="ignore"):
        spread = values.std()
        result = ((values - values.mean()) / spread if spread > 0 else values - values.mean()).astype(np.float32)
    if not np.isfinite(result).all() and np.isfinite(values).all():
        return standardise(values.astype(np.float64))
    return result
