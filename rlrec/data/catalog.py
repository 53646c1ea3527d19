"""The item catalog: ids, texts, metadata and unit-norm LM embeddings (optionally PCA-projected).

A :class:`Catalog` is plain NumPy/pandas data built outside ``jit``; environments copy its feature matrix
into their params once, shared by every simulated user. Its checks and transforms (vectors, the projection,
tables, per-item columns) are :mod:`rlrec.data.preprocessing`; their names are importable from here too.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rlrec import _repr, lm
from rlrec.data.preprocessing import (
    CatalogError,
    Projection,
    check_vectors,
    multi_hot,
    normalise_rows,
    per_item_values,
    read_table,
    standardise,
)


def _check_embeddings(embeddings: np.ndarray, count: int | None = None) -> np.ndarray:
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2:
        raise CatalogError(f"Embeddings must be a 2-D array (items, dim), got shape {embeddings.shape}.")
    if count is not None and embeddings.shape[0] != count:
        raise CatalogError(
            f"Embeddings have {embeddings.shape[0]} rows but the catalog has {count} items: one row per item."
        )
    if embeddings.shape[1] < 1:
        raise CatalogError("Embeddings have zero columns: give each item a vector of dim >= 1.")
    if not np.issubdtype(embeddings.dtype, np.number):
        raise CatalogError(f"Embeddings must be numeric, got dtype {embeddings.dtype}.")
    return check_vectors(embeddings, "Embeddings")


def _check_ids(item_ids: Sequence) -> np.ndarray:
    ids = np.asarray(item_ids)
    if ids.ndim != 1:
        raise CatalogError(f"Item ids must be one-dimensional, got shape {ids.shape}.")
    if len(ids) == 0:
        raise CatalogError("The catalog is empty: give at least one item.")
    if pd.isna(pd.Series(ids)).any():
        raise CatalogError("Item ids contain missing values: every item needs an id.")
    duplicated = pd.Series(ids).duplicated(keep="first")
    if duplicated.any():
        examples = ", ".join(map(repr, pd.Series(ids)[duplicated].unique()[:5].tolist()))
        raise CatalogError(f"Item ids must be unique; {int(duplicated.sum())} duplicates, e.g. {examples}.")
    return ids


def _check_texts(texts: Sequence, count: int) -> tuple[str, ...]:
    texts = list(texts)
    if len(texts) != count:
        raise CatalogError(f"Got {len(texts)} texts for {count} items: one text per item.")
    empty = [i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()]
    if empty:
        raise CatalogError(
            f"{len(empty)} item texts are empty or not strings (first at row {empty[0]}). Every item needs a "
            "description for the language model."
        )
    return tuple(texts)


@dataclasses.dataclass(frozen=True, eq=False)
class Catalog:
    """Items as text, their LM embeddings and metadata.

    Attributes:
        name: a short label (``"movielens"``, a file name, ...).
        item_ids: ``(N,)`` unique ids as given by the source.
        texts: ``N`` item descriptions, the LM's input.
        embeddings: ``(N, D)`` float32 unit-norm LM embeddings.
        metadata: per-item table (row i describes item i), e.g. title, year, genres.
        popularity: ``(N,)`` float32 interaction counts (ones when unknown): the popularity baseline and novelty.
        quality: ``(N,)`` float32 standardised item quality (mean 0, std 1; zeros when unknown).
        genres: ``(N, G)`` bool multi-hot genre matrix, or ``None``.
        genre_names: the ``G`` genre labels.
        model_id: name of the encoder that made ``embeddings``; ``None`` for bring-your-own arrays.
        model_path: its folder, so user texts can be encoded into the same space.
        projection: optional PCA projection to simulator dim ``d``.
        interactions: optional real interaction log with columns ``user_id, item_index, rating, timestamp``.
    """

    name: str
    item_ids: np.ndarray
    texts: tuple[str, ...]
    embeddings: np.ndarray
    metadata: pd.DataFrame
    popularity: np.ndarray
    quality: np.ndarray
    genres: np.ndarray | None = None
    genre_names: tuple[str, ...] = ()
    model_id: str | None = None
    model_path: str | None = None
    projection: Projection | None = None
    interactions: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.item_ids)

    def __repr__(self) -> str:
        """Sizes and sources only (the arrays ran to half a million characters); no projection is computed."""
        dim = self.projection.dim if self.projection is not None else int(self.embeddings.shape[1])
        return _repr.call(
            "Catalog",
            {
                "name": self.name,
                "items": len(self),
                "dim": dim,
                "model": self.model_id,
                "genres": len(self.genre_names),
                "interactions": 0 if self.interactions is None else len(self.interactions),
                "projection": self.projection,
            },
        )

    @property
    def features(self) -> np.ndarray:
        """``(N, d)`` unit-norm item vectors in simulator space (projected if a projection is set)."""
        if self.projection is None:
            return self.embeddings
        cached = self.__dict__.get("_features")
        if cached is None:
            cached = self.projection(self.embeddings)
            object.__setattr__(self, "_features", cached)
        return cached

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def with_projection(self, dim: int | None) -> Catalog:
        """The same catalog with a PCA projection to ``dim`` fitted on its embeddings (``None``: none)."""
        projection = None if dim is None else Projection.fit(self.embeddings, dim)
        return dataclasses.replace(self, projection=projection)

    def index_of(self, item_ids: Sequence) -> np.ndarray:
        """Positions of the given item ids (raises naming the first unknown id)."""
        position = pd.Index(self.item_ids).get_indexer(list(item_ids))
        if (position < 0).any():
            unknown = list(item_ids)[int(np.argmax(position < 0))]
            raise CatalogError(f"Item id {unknown!r} is not in catalog {self.name!r}.")
        return position

    def encoder(self) -> lm.TextEncoder:
        if self.model_id is None and self.model_path is None:
            raise CatalogError(
                f"Catalog {self.name!r} was built from precomputed embeddings, so it has no language model to "
                "encode new texts. Build it with from_dataframe/from_file, or encode texts yourself and pass "
                "the vectors."
            )
        return lm.get_encoder(self.model_path)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Encodes texts (e.g. user requests) with the catalog's LM into simulator space ``(M, d)``."""
        vectors = self.encoder().encode(texts)
        return self.project(vectors)

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Maps LM-space vectors ``(M, D)`` into simulator space ``(M, d)`` (unit norm)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape[-1] != self.embeddings.shape[1]:
            raise CatalogError(
                f"Vectors of dim {vectors.shape[-1]} do not match catalog {self.name!r} embeddings "
                f"(dim {self.embeddings.shape[1]})."
            )
        return self.projection(vectors) if self.projection is not None else normalise_rows(vectors)

    def nearest(self, query: str | np.ndarray, k: int = 5) -> pd.DataFrame:
        """The ``k`` items most similar (cosine, in simulator space) to a query text or vector."""
        if isinstance(query, str):
            vector = self.embed_texts([query])[0]
        else:
            vector = self.project(np.asarray(query, dtype=np.float32)[None])[0]
        scores = self.features @ vector
        top = np.argsort(-scores, kind="stable")[: min(k, len(self))]
        return pd.DataFrame(
            {"item_id": self.item_ids[top], "similarity": scores[top], "text": [self.texts[i] for i in top]}
        )

    def summary(self) -> dict:
        """Size, dimensions and sources, for `rlrec catalog` and logs."""
        return {
            "name": self.name,
            "items": len(self),
            "embedding_dim": int(self.embeddings.shape[1]),
            "simulator_dim": self.dim,
            "projection_explained_variance": (
                float(self.projection.explained_variance_ratio.sum()) if self.projection is not None else None
            ),
            "model": self.model_id,
            "genres": len(self.genre_names),
            "interactions": 0 if self.interactions is None else len(self.interactions),
            "users": 0 if self.interactions is None else int(self.interactions["user_id"].nunique()),
        }

    # -- constructors -------------------------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        embeddings: np.ndarray,
        *,
        item_ids: Sequence | None = None,
        texts: Sequence[str] | None = None,
        name: str = "arrays",
        popularity: np.ndarray | None = None,
        quality: np.ndarray | None = None,
        metadata: pd.DataFrame | None = None,
        dim: int | None = None,
    ) -> Catalog:
        """A catalog from precomputed item embeddings ``(N, D)`` (normalised to unit rows).

        Texts default to ``"item <id>"``; such a catalog cannot encode new texts (bring vectors instead).
        """
        vectors = _check_embeddings(embeddings)
        count = vectors.shape[0]
        if count == 0:
            raise CatalogError("The catalog is empty: give at least one item.")
        ids = _check_ids(np.arange(count) if item_ids is None else item_ids)
        if len(ids) != count:
            raise CatalogError(f"Got {len(ids)} item ids for {count} embedding rows: one id per row.")
        item_texts = _check_texts([f"item {i}" for i in ids] if texts is None else texts, count)
        catalog = cls(
            name=name,
            item_ids=ids,
            texts=item_texts,
            embeddings=vectors,
            metadata=metadata.reset_index(drop=True) if metadata is not None else pd.DataFrame(index=range(count)),
            popularity=per_item_values(popularity, count, "popularity", default=1.0, minimum=0.0),
            quality=standardise(per_item_values(quality, count, "quality", default=0.0)),
        )
        return catalog.with_projection(dim) if dim is not None else catalog

    @classmethod
    def from_dataframe(
        cls,
        frame: pd.DataFrame,
        *,
        id_column: str = "item_id",
        text_column: str = "text",
        name: str = "dataframe",
        popularity_column: str | None = None,
        quality_column: str | None = None,
        genres_column: str | None = None,
        encoder: lm.TextEncoder | None = None,
        dim: int | None = None,
    ) -> Catalog:
        """A catalog from a table with an id and a text column; other columns become metadata.

        ``genres_column`` may hold ``|``-separated genre labels (MovieLens style).
        """
        if not isinstance(frame, pd.DataFrame):
            raise CatalogError(f"Expected a pandas DataFrame, got {type(frame).__name__}.")
        for role, column in (
            ("id_column", id_column),
            ("text_column", text_column),
            ("popularity_column", popularity_column),
            ("quality_column", quality_column),
            ("genres_column", genres_column),
        ):
            if column is not None and column not in frame.columns:
                raise CatalogError(
                    f"Column {column!r} ({role}) is missing; the table has columns {list(frame.columns)}. "
                    f"Pass {role}= one of them."
                )
        if len(frame) == 0:
            raise CatalogError(f"The table for catalog {name!r} has no rows: the catalog would be empty.")
        frame = frame.reset_index(drop=True)
        ids = _check_ids(frame[id_column].to_numpy())
        texts = _check_texts(frame[text_column].tolist(), len(frame))
        encoder = encoder or lm.get_encoder()
        embeddings = _check_embeddings(encoder.encode(list(texts)), len(frame))
        genres, genre_names = (None, ())
        if genres_column is not None:
            genres, genre_names = multi_hot(frame[genres_column])
        catalog = cls(
            name=name,
            item_ids=ids,
            texts=texts,
            embeddings=embeddings,
            metadata=frame.drop(columns=[text_column]),
            popularity=per_item_values(
                frame[popularity_column].to_numpy() if popularity_column else None, len(frame), "popularity", 1.0,
                minimum=0.0,
            ),
            quality=standardise(
                per_item_values(frame[quality_column].to_numpy() if quality_column else None, len(frame), "quality",
                                0.0)
            ),
            genres=genres,
            genre_names=genre_names,
            model_id=encoder.model_id,
            model_path=str(encoder.model_path),
        )
        return catalog.with_projection(dim) if dim is not None else catalog

    @classmethod
    def from_file(cls, path: str | os.PathLike, **kwargs) -> Catalog:
        """A catalog from a CSV or Parquet file (see :meth:`from_dataframe` for the column arguments)."""
        path = Path(path)
        frame = read_table(path)
        kwargs.setdefault("name", path.stem)
        return cls.from_dataframe(frame, **kwargs)
