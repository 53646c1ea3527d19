"""User populations whose hidden tastes come from real ratings in language-model space.

A population is a set of *prototypes* (by default the 671 real MovieLens users). Each prototype has

- a hidden interest vector, built from that user's ratings in LM space:
  ``u = normalise(sum_j (r_uj - mean_u) * e_j)`` (items rated above the user's mean pull toward them, items
  rated below push away);
- a few stated **requests**: texts written from the same tastes (favourite genres, a liked title), encoded
  by the same LM. Agents observe a request embedding, never ``u``.

Simulated users are drawn around prototypes (``interest = normalise(u_p + noise)``) so a population of any
size keeps the real distribution of tastes. Building happens once in NumPy (with the LM, outside ``jit``);
sampling is a pure JAX function.
"""

from __future__ import annotations

import dataclasses
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from rlrec import _repr
from rlrec._lazy import memoised
from rlrec.data.builtin import readable_title
from rlrec.data.catalog import Catalog, CatalogError
from rlrec.data.preprocessing import check_vectors, normalise_rows

# How genres read in a sentence ("I love animated comedies" rather than "Animation Comedy").
GENRE_PHRASES = {
    "Action": "action",
    "Adventure": "adventure",
    "Animation": "animated",
    "Children": "children's",
    "Comedy": "comedy",
    "Crime": "crime",
    "Documentary": "documentary",
    "Drama": "drama",
    "Fantasy": "fantasy",
    "Film-Noir": "film-noir",
    "Horror": "horror",
    "IMAX": "IMAX",
    "Musical": "musical",
    "Mystery": "mystery",
    "Romance": "romance",
    "Sci-Fi": "sci-fi",
    "Thriller": "thriller",
    "War": "war",
    "Western": "western",
    "Short": "short",
}


@dataclasses.dataclass(frozen=True, eq=False)
class Population:
    """Prototype users in LM space (NumPy, built once).

    Attributes:
        interests: ``(P, D)`` unit-norm hidden interest vectors in the catalog's LM space.
        requests: ``(P, R, D)`` unit-norm embeddings of each prototype's ``R`` stated requests.
        request_texts: the ``P x R`` request texts (``None`` for bring-your-own arrays).
        weights: ``(P,)`` sampling weights (sum to 1).
        user_ids: ``(P,)`` ids of the real users behind the prototypes.
        name: where the prototypes come from.
    """

    interests: np.ndarray
    requests: np.ndarray
    request_texts: tuple[tuple[str, ...], ...] | None
    weights: np.ndarray
    user_ids: np.ndarray
    name: str = "population"

    def __len__(self) -> int:
        return int(self.interests.shape[0])

    def __repr__(self) -> str:
        return _repr.call(
            "Population",
            {
                "name": self.name,
                "users": len(self),
                "dim": int(self.interests.shape[1]),
                "requests_per_user": int(self.requests.shape[1]),
                "request_texts": self.request_texts is not None,
            },
        )

    @classmethod
    def from_arrays(
        cls,
        interests: np.ndarray,
        requests: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        name: str = "arrays",
        *,
        request_noise: float | None = None,
        requests_per_user: int = 3,
        seed: int | None = None,
    ) -> Population:
        """Bring-your-own prototypes: hidden interests ``(P, D)`` and what each user says, ``(P, R, D)``.

        Agents observe a request, never the hidden interest, so requests are required: either your own vectors
        (e.g. LM embeddings of texts your users wrote), or derived from the interests through a documented noisy
        view, ``request = normalise(u + request_noise * z / sqrt(D))`` with ``z ~ N(0, I)``, ``requests_per_user``
        of them per prototype, drawn with ``seed``. (``request_noise=0`` hands agents the hidden taste; it is
        allowed, for an upper bound, and warns.)

        Args:
            interests: ``(P, D)`` hidden tastes (any scale; normalised).
            requests: ``(P, R, D)`` or ``(P, D)`` request vectors (normalised), or None with ``request_noise``.
            weights: ``(P,)`` non-negative sampling weights (uniform when None).
            name: a label.
            request_noise: noise scale of derived requests (``requests`` must then be None).
            requests_per_user: how many requests to derive per prototype.
            seed: the seed of the derived requests' noise (required with ``request_noise``).

        Raises:
            CatalogError: naming the bad input and the fix.
        """
        interests = check_vectors(_two_d(interests, "interests"), "interests")
        count = interests.shape[0]
        if requests is None:
            if request_noise is None:
                raise CatalogError(
                    "Population.from_arrays needs the users' requests (what they say they want; agents observe "
                    "them, never the hidden interests). Pass requests=(users, R, dim) vectors, or derive noisy ones "
                    "with request_noise=0.5, seed=0."
                )
            noise = float(request_noise)
            if not np.isfinite(noise) or noise < 0:
                raise CatalogError(f"request_noise must be a finite number >= 0, got {request_noise!r}.")
            if seed is None:
                raise CatalogError(
                    "Deriving requests draws noise: pass seed= (an integer) so the population is reproducible."
                )
            if (isinstance(requests_per_user, bool) or not isinstance(requests_per_user, (int, np.integer))
                    or requests_per_user < 1):
                raise CatalogError(f"requests_per_user must be a positive integer, got {requests_per_user!r}.")
            dim = interests.shape[1]
            z = np.random.default_rng(seed).normal(size=(count, int(requests_per_user), dim))
            requests = interests[:, None, :].astype(np.float64) + noise * z / np.sqrt(dim)
        elif request_noise is not None:
            raise CatalogError("Pass either requests or request_noise (to derive them), not both.")
        requests = np.asarray(requests)
        if requests.ndim == 2:
            requests = requests[:, None, :]
        if requests.ndim != 3 or requests.shape[0] != count or requests.shape[-1] != interests.shape[1]:
            raise CatalogError(
                f"requests must have shape (users, R, dim) = ({count}, R, {interests.shape[1]}), got {requests.shape}."
            )
        requests = check_vectors(requests, "requests", rows="request vectors")
        if np.allclose(requests, interests[:, None, :], atol=1e-6):
            warnings.warn(
                "The requests equal the hidden interests: agents that read the request (text-match, the LM-prior "
                "bandits, deep agents) are handed the answer, and their regret means nothing. Pass requests that "
                "are a partial view of the interests (your users' own texts, or request_noise > 0).",
                UserWarning,
                stacklevel=2,
            )
        if weights is None:
            weights = np.full(count, 1.0 / count)
        try:
            weights = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError):
            raise CatalogError(f"weights must be {count} numbers.") from None
        if weights.shape != (count,) or not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise CatalogError(f"weights must be ({count},) finite, non-negative numbers with a positive sum.")
        return cls(
            interests=interests,
            requests=requests,
            request_texts=None,
            weights=(weights / weights.sum()).astype(np.float32),
            user_ids=np.arange(count),
            name=name,
        )


def _two_d(array, what: str) -> np.ndarray:
    try:
        array = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise CatalogError(f"{what} must be a numeric (users, dim) array.") from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise CatalogError(f"{what} must be a non-empty (users, dim) array, got shape {array.shape}.")
    return array


def interests_from_ratings(
    embeddings: np.ndarray, item_index: np.ndarray, ratings: np.ndarray, user_index: np.ndarray, num_users: int
) -> np.ndarray:
    """``u = normalise(sum_j (r_uj - mean_u) e_j)`` for each user (rows of ``num_users``).

    A user whose ratings are all equal has no contrast; they fall back to the mean of what they rated.
    """
    ratings = np.asarray(ratings, dtype=np.float64)
    counts = np.bincount(user_index, minlength=num_users).astype(np.float64)
    means = np.bincount(user_index, weights=ratings, minlength=num_users) / np.maximum(counts, 1)
    centred = ratings - means[user_index]
    dim = embeddings.shape[1]
    interests = np.zeros((num_users, dim))
    np.add.at(interests, user_index, centred[:, None] * embeddings[item_index])
    flat = np.linalg.norm(interests, axis=1) < 1e-9
    if flat.any():
        fallback = np.zeros((num_users, dim))
        np.add.at(fallback, user_index, embeddings[item_index].astype(np.float64))
        interests[flat] = fallback[flat]
    return normalise_rows(interests)


def _phrase(genres: list[str]) -> str:
    words = [GENRE_PHRASES.get(g, g.lower()) for g in genres]
    return " and ".join(words)


def request_texts_for_user(liked_genres: list[str], liked_title: str | None) -> tuple[str, str, str]:
    """Three ways a user might say what they want, from their hidden tastes.

    No negations ("but nothing horror"): sentence encoders place "nothing horror" near horror, so a
    negated request would point away from the user's taste.
    """
    favourite = _phrase(liked_genres[:2]) or "good"
    first = f"I love {favourite} movies."
    second = f"Something like {liked_title}, please." if liked_title else f"Show me some great {favourite} films."
    third = f"Recommend me some {favourite} films" + (f" like {liked_title}." if liked_title else ".")
    return first, second, third


def movielens_population(catalog: Catalog, ratings: pd.DataFrame | None = None) -> Population:
    """Prototypes from the real MovieLens users of ``catalog`` (LM space, before any projection).

    Args:
        catalog: the MovieLens catalog (its ``interactions`` are used unless ``ratings`` is given).
        ratings: optional subset of the interactions (``user_id, item_index, rating``), e.g. a training split.
    """
    ratings = catalog.interactions if ratings is None else ratings
    if ratings is None or len(ratings) == 0:
        raise CatalogError(f"Catalog {catalog.name!r} has no interactions to derive users from.")
    if catalog.genres is None:
        raise CatalogError(f"Catalog {catalog.name!r} has no genres; request texts need them.")
    user_ids, user_index = np.unique(ratings["user_id"].to_numpy(), return_inverse=True)
    item_index = ratings["item_index"].to_numpy()
    values = ratings["rating"].to_numpy(np.float64)
    interests = interests_from_ratings(catalog.embeddings, item_index, values, user_index, len(user_ids))

    counts = np.bincount(user_index, minlength=len(user_ids))
    means = np.bincount(user_index, weights=values, minlength=len(user_ids)) / np.maximum(counts, 1)
    centred = values - means[user_index]
    genre_matrix = catalog.genres.astype(np.float64)
    genre_taste = np.zeros((len(user_ids), genre_matrix.shape[1]))
    np.add.at(genre_taste, user_index, centred[:, None] * genre_matrix[item_index])
    genre_count = np.zeros_like(genre_taste)
    np.add.at(genre_count, user_index, genre_matrix[item_index])
    titles = catalog.metadata["title"].to_numpy() if "title" in catalog.metadata else np.array(catalog.texts)
    # Each user's best-loved title: highest rating, then most popular *within these ratings* (so a training
    # split never sees held-out data), preferring titles of the user's favourite genre so the request reads
    # consistently ("a thriller like <a thriller>").
    popularity_here = np.bincount(item_index, minlength=len(catalog)).astype(np.float64)

    texts = []
    for u in range(len(user_ids)):
        seen = genre_count[u] >= 2  # tastes need some evidence
        liked = [catalog.genre_names[g] for g in np.argsort(-genre_taste[u]) if seen[g] and genre_taste[u, g] > 0]
        rows = np.flatnonzero(user_index == u)
        candidates = item_index[rows]
        if liked:
            favourite = catalog.genre_names.index(liked[0])
            in_genre = catalog.genres[candidates, favourite]
            if in_genre.any():
                rows, candidates = rows[in_genre], candidates[in_genre]
        best = np.lexsort((-popularity_here[candidates], -values[rows]))[0]
        texts.append(request_texts_for_user(liked, readable_title(str(titles[candidates[best]]))))
    encoder = catalog.encoder()
    flat = [text for triple in texts for text in triple]
    requests = encoder.encode(flat).reshape(len(user_ids), 3, -1)
    return Population(
        interests=interests,
        requests=requests,
        request_texts=tuple(texts),
        weights=np.full(len(user_ids), 1.0 / len(user_ids), dtype=np.float32),
        user_ids=user_ids,
        name=f"{catalog.name}-users",
    )


@memoised(maxsize=4)
def default_population(model_path: str | None = None) -> Population:
    """The 671 real MovieLens users as prototypes (memoised; request embeddings use the on-disk cache)."""
    from rlrec.data import load_catalog

    return movielens_population(load_catalog("movielens", model_path=model_path))


# -- pure JAX sampling --------------------------------------------------------------------------------------


def sample_user(
    key: chex.PRNGKey,
    interests: jax.Array,
    requests: jax.Array,
    log_weights: jax.Array,
    interest_noise: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Draws one simulated user around a prototype.

    Args:
        key: PRNG key.
        interests: ``(P, d)`` prototype interests (simulator space).
        requests: ``(P, R, d)`` prototype request embeddings.
        log_weights: ``(P,)`` log sampling weights.
        interest_noise: scale of the isotropic perturbation; 0 reproduces the prototypes exactly.

    Returns:
        ``(interest (d,), request (d,), prototype ())``, interest unit-norm.
    """
    prototype_key, noise_key, request_key = jax.random.split(key, 3)
    # Inverse-CDF sampling: one uniform draw instead of the P Gumbel draws of jax.random.categorical (this
    # runs at every auto-reset, i.e. every step, so it matters).
    cumulative = jnp.cumsum(jax.nn.softmax(log_weights))
    prototype = jnp.minimum(
        jnp.searchsorted(cumulative, jax.random.uniform(prototype_key) * cumulative[-1], side="right"),
        log_weights.shape[0] - 1,
    )
    dim = interests.shape[-1]
    noise = jax.random.normal(noise_key, (dim,)) / jnp.sqrt(dim)
    interest = interests[prototype] + interest_noise * noise
    interest = interest / jnp.maximum(jnp.linalg.norm(interest), 1e-12)
    request = requests[prototype, jax.random.randint(request_key, (), 0, requests.shape[1])]
    return interest, request, prototype
