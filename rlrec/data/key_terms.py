"""Key-terms and critiques: what a conversational recommender asks about and what users say back, as text.

A **key-term** is a short text a recommender can ask a user about ("war films", "films from the 1980s", "films
like The French Connection"). Each has an embedding in the catalog's simulator space (the same LM and projection
as the items, so ``<u, k>`` compares a user's hidden taste with it) and a set of **related items** (genre or
decade members, or the nearest items in LM space), which agents such as ConUCB use.

A **critique** is what a user says when nothing shown appeals ("something funnier", "more recent"); only its
embedding matters to the simulator (see :mod:`rlrec.envs.conversation`).

Without a language model (a catalog built from arrays) texts cannot be embedded; :meth:`KeyTerms.for_catalog`
and :meth:`Critiques.for_catalog` then build banks from the catalog's own vectors (described where they are).
Everything here is NumPy, built once outside ``jit``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from rlrec import _repr
from rlrec.data.builtin import readable_title
from rlrec.data.catalog import Catalog
from rlrec.data.preprocessing import CatalogError, check_vectors, normalise_rows

# How MovieLens and IMDB genre labels read in a question ("Do you like war films?"); others become "<genre> films".
GENRE_PHRASES = {
    "Action": "action films", "Adventure": "adventure films", "Animation": "animated films",
    "Children": "films for children", "Comedy": "comedies", "Crime": "crime films",
    "Documentary": "documentaries", "Drama": "dramas", "Fantasy": "fantasy films", "Film-Noir": "film noir",
    "Horror": "horror films", "IMAX": "IMAX films", "Musical": "musicals", "Mystery": "mystery films",
    "Romance": "romantic films", "Sci-Fi": "science fiction films", "Thriller": "thrillers", "War": "war films",
    "Western": "westerns", "Short": "short films",
}
# What users say when nothing shown appeals: directions in taste, phrased as people ask for them.
CRITIQUE_TEXTS = (
    "something funnier", "something more serious", "something lighter and feel-good", "something darker",
    "more action", "something calmer", "more romantic", "less romance", "something scarier", "less violent",
    "more suspense", "more recent films", "older classics", "something for the whole family",
    "something for adults", "more science fiction", "more fantasy and magic", "something more realistic",
    "more thought-provoking", "something more popular", "something less mainstream", "an animated film",
    "a documentary", "more drama", "a musical", "a crime story", "a war story", "a western",
)


def _check_texts(texts: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(texts, str):
        raise CatalogError(f"{what} must be a list of strings, got one string {texts!r:.60}; wrap it in a list.")
    texts = tuple(texts)
    if not texts:
        raise CatalogError(f"{what} are empty: give at least one text.")
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()]
    if bad:
        raise CatalogError(f"{what} must be non-empty strings; entry {bad[0]} is {texts[bad[0]]!r}.")
    repeated = pd.Series(texts)[pd.Series(texts).duplicated()].unique().tolist()
    if repeated:
        raise CatalogError(f"{what} must be distinct; {repeated[:3]} appear more than once.")
    return texts


def nearest_items(catalog: Catalog, vectors: np.ndarray, count: int) -> list[np.ndarray]:
    """The ``count`` items nearest (cosine, simulator space) to each of ``vectors`` ``(M, d)``, nearest first."""
    count = min(int(count), len(catalog))
    scores = np.asarray(vectors, np.float32) @ catalog.features.T
    top = np.argpartition(-scores, count - 1, axis=1)[:, :count]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return [row.astype(np.int32) for row in np.take_along_axis(top, order, axis=1)]


@dataclasses.dataclass(frozen=True, eq=False)
class KeyTerms:
    """A bank of key-terms for one catalog.

    Attributes:
        texts: the ``K`` key-terms as a user reads them.
        features: ``(K, d)`` float32 unit-norm embeddings in the catalog's simulator space.
        related: ``K`` int32 arrays of related item indices (non-empty, distinct, in range).
        kinds: what each key-term is (``"genre"``, ``"genre pair"``, ``"decade"``, ``"like title"``, ``"text"``).
    """

    texts: tuple[str, ...]
    features: np.ndarray
    related: tuple[np.ndarray, ...]
    kinds: tuple[str, ...]

    def __post_init__(self):
        texts = _check_texts(self.texts, "Key-terms")
        count = len(texts)
        features = np.asarray(self.features)
        if features.ndim != 2 or features.shape[0] != count:
            raise CatalogError(f"Key-term features must be ({count}, d), one row per key-term; got {features.shape}.")
        if len(self.related) != count or len(self.kinds) != count:
            raise CatalogError(f"Got {count} key-terms but {len(self.related)} related-item lists and "
                               f"{len(self.kinds)} kinds: one of each per key-term.")
        related = []
        for text, items in zip(self.texts, self.related):
            items = np.asarray(items)
            if items.ndim != 1 or items.size == 0 or not np.issubdtype(items.dtype, np.integer):
                raise CatalogError(f"Key-term {text!r} needs a non-empty list of related item indices.")
            if np.unique(items).size != items.size:
                raise CatalogError(f"Key-term {text!r} lists a related item twice.")
            related.append(items.astype(np.int32))
        object.__setattr__(self, "texts", texts)
        object.__setattr__(self, "features", check_vectors(features, "Key-term features", rows="key-terms"))
        object.__setattr__(self, "related", tuple(related))

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        kinds = pd.Series(self.kinds).value_counts(sort=False).to_dict()
        return _repr.call("KeyTerms", {"count": len(self), "dim": int(self.features.shape[1]), "kinds": kinds,
                                       "first": self.texts[0]})

    def check_catalog(self, catalog: Catalog) -> KeyTerms:
        """Raises ``CatalogError`` unless the bank fits ``catalog`` (its dimension and item indices)."""
        if self.features.shape[1] != catalog.dim:
            raise CatalogError(f"Key-terms have dim {self.features.shape[1]} but catalog {catalog.name!r} has dim "
                               f"{catalog.dim}: build them with KeyTerms.from_texts(catalog, texts).")
        largest = max(int(items.max()) for items in self.related)
        if largest >= len(catalog) or min(int(items.min()) for items in self.related) < 0:
            raise CatalogError(f"Key-terms relate item indices outside catalog {catalog.name!r} "
                               f"(0..{len(catalog) - 1}).")
        return self

    def relation(self) -> tuple[np.ndarray, np.ndarray]:
        """The key-term/item relation as two int32 arrays of equal length: ``(items, key_terms)``, pair by pair,
        grouped by key-term."""
        items = np.concatenate(self.related).astype(np.int32)
        key_terms = np.repeat(np.arange(len(self), dtype=np.int32), [len(r) for r in self.related])
        return items, key_terms

    def centroids(self, item_vectors: np.ndarray) -> np.ndarray:
        """``(K, f)`` ConUCB's key-term vectors: each key-term's weighted mean of its related items' vectors
        ``(N, f)``, item ``a`` weighted ``1 / n_a`` (``n_a``: how many key-terms relate to it), so an item that
        belongs to many key-terms counts less toward each (Zhang et al., 2020, section 3)."""
        items, key_terms = self.relation()
        per_item = np.bincount(items, minlength=item_vectors.shape[0]).astype(np.float64)
        weights = 1.0 / per_item[items]
        totals = np.zeros((len(self), item_vectors.shape[1]))
        np.add.at(totals, key_terms, weights[:, None] * np.asarray(item_vectors, np.float64)[items])
        return (totals / np.bincount(key_terms, weights)[:, None]).astype(np.float32)

    @classmethod
    def from_texts(cls, catalog: Catalog, texts: Sequence[str], related: Sequence[Sequence[int]] | None = None,
                   *, nearest: int = 20, kinds: Sequence[str] | None = None) -> KeyTerms:
        """Your own key-terms: ``texts`` embedded by the catalog's LM; related items as given (item indices, one
        list per text) or, by default, the ``nearest`` items to each text in LM space."""
        texts = _check_texts(texts, "Key-terms")
        features = catalog.embed_texts(list(texts))
        if related is None:
            related = nearest_items(catalog, features, nearest)
        elif len(related) != len(texts):
            raise CatalogError(f"Got {len(related)} related-item lists for {len(texts)} key-terms: one per key-term.")
        kinds = tuple(kinds) if kinds is not None else ("text",) * len(texts)
        return cls(texts, features, tuple(np.asarray(r) for r in related), kinds).check_catalog(catalog)

    @classmethod
    def for_catalog(cls, catalog: Catalog, *, titles: int = 200, pairs: int = 40, min_members: int = 20,
                    nearest: int = 20) -> KeyTerms:
        """The default bank of a catalog.

        With a language model: every genre ("war films"), the ``pairs`` most common genre pairs ("comedy
        romance films"), every decade with ``min_members`` films ("films from the 1980s"), and "films like
        <title>" for the ``titles`` most popular items (related: the ``nearest`` items to the phrase). Genres,
        pairs and decades relate their members. Without one (a catalog of arrays): "items like <id>" for the
        ``titles`` most popular items, embedded as the mean of their ``nearest`` items (their related items).
        """
        if catalog.model_id is None and catalog.model_path is None:
            return cls._without_language_model(catalog, titles, nearest)
        texts, related, kinds = [], [], []

        def add(text: str, members: np.ndarray, kind: str) -> None:
            if text not in texts and members.size:
                texts.append(text)
                related.append(members.astype(np.int32))
                kinds.append(kind)

        if catalog.genres is not None:
            genres = np.asarray(catalog.genres, bool)
            phrases = [GENRE_PHRASES.get(name, f"{name.lower()} films") for name in catalog.genre_names]
            for j, phrase in enumerate(phrases):
                if genres[:, j].sum() >= min_members:
                    add(phrase, np.flatnonzero(genres[:, j]), "genre")
            together = genres.T.astype(np.int64) @ genres.astype(np.int64)
            first, second = np.triu_indices(len(phrases), k=1)
            counts = together[first, second]
            for index in np.argsort(-counts, kind="stable")[:pairs]:
                if counts[index] >= min_members:
                    a, b = catalog.genre_names[first[index]], catalog.genre_names[second[index]]
                    add(f"{a.lower()} {b.lower()} films",
                        np.flatnonzero(genres[:, first[index]] & genres[:, second[index]]), "genre pair")
        if "year" in catalog.metadata.columns:
            years = pd.to_numeric(catalog.metadata["year"], errors="coerce").to_numpy()
            decades = np.floor(years / 10) * 10
            for decade in np.unique(decades[np.isfinite(decades)]):
                members = np.flatnonzero(decades == decade)
                if members.size >= min_members:
                    add(f"films from the {int(decade)}s", members, "decade")
        if "title" in catalog.metadata.columns and titles > 0:
            popular = np.argsort(-catalog.popularity, kind="stable")[:titles]
            for item in popular:
                add(f"films like {readable_title(str(catalog.metadata['title'].iloc[item]))}", np.zeros(1),
                    "like title")
        if not texts:
            raise CatalogError(f"Catalog {catalog.name!r} has no genres, years or titles to build key-terms from; "
                               "pass your own: KeyTerms.from_texts(catalog, texts).")
        features = catalog.embed_texts(texts)
        liked = [i for i, kind in enumerate(kinds) if kind == "like title"]
        for i, items in zip(liked, nearest_items(catalog, features[liked], nearest)):
            related[i] = items
        return cls(tuple(texts), features, tuple(related), tuple(kinds)).check_catalog(catalog)

    @classmethod
    def _without_language_model(cls, catalog: Catalog, count: int, nearest: int) -> KeyTerms:
        popular = np.argsort(-catalog.popularity, kind="stable")[: max(1, min(count, len(catalog)))]
        related = nearest_items(catalog, catalog.features[popular], nearest)
        features = normalise_rows(np.stack([catalog.features[items].mean(axis=0) for items in related]))
        texts = tuple(f"items like {catalog.item_ids[item]}" for item in popular)
        return cls(texts, features, tuple(related), ("like item",) * len(texts))


@dataclasses.dataclass(frozen=True, eq=False)
class Critiques:
    """A bank of critiques: ``texts`` and their ``(C, d)`` unit-norm embeddings in the catalog's simulator space."""

    texts: tuple[str, ...]
    features: np.ndarray

    def __post_init__(self):
        texts = _check_texts(self.texts, "Critiques")
        features = np.asarray(self.features)
        if features.ndim != 2 or features.shape[0] != len(texts):
            raise CatalogError(f"Critique features must be ({len(texts)}, d); got {features.shape}.")
        object.__setattr__(self, "texts", texts)
        object.__setattr__(self, "features", check_vectors(features, "Critique features", rows="critiques"))

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        return _repr.call("Critiques", {"count": len(self), "dim": int(self.features.shape[1]), "first": self.texts[0]})

    def check_catalog(self, catalog: Catalog) -> Critiques:
        if self.features.shape[1] != catalog.dim:
            raise CatalogError(f"Critiques have dim {self.features.shape[1]} but catalog {catalog.name!r} has dim "
                               f"{catalog.dim}: build them with Critiques.from_texts(catalog, texts).")
        return self

    @classmethod
    def from_texts(cls, catalog: Catalog, texts: Sequence[str]) -> Critiques:
        """Your own critiques, embedded by the catalog's LM."""
        texts = _check_texts(texts, "Critiques")
        return cls(texts, catalog.embed_texts(list(texts)))

    @classmethod
    def for_catalog(cls, catalog: Catalog) -> Critiques:
        """:data:`CRITIQUE_TEXTS` embedded by the catalog's LM. Without one (a catalog of arrays): "more/less of
        axis j" along each simulator axis (for a PCA projection, its components)."""
        if catalog.model_id is None and catalog.model_path is None:
            axes = np.eye(catalog.dim, dtype=np.float32)
            texts = tuple(f"{word} of axis {j}" for j in range(catalog.dim) for word in ("more", "less"))
            return cls(texts, np.stack([sign * axes[j] for j in range(catalog.dim) for sign in (1.0, -1.0)]))
        return cls.from_texts(catalog, CRITIQUE_TEXTS)
