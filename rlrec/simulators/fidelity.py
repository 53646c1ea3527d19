"""Fidelity: do the LM-derived user preferences predict held-out *real* ratings?

The simulated users of :mod:`rlrec.simulators.population` are only meaningful if a taste vector built from
some of a real user's ratings ranks that user's *other* ratings correctly. This module measures it:

1. :func:`split_ratings` splits each user's ratings at random into train and test.
2. Every predictor is built from the **train** split only (see :func:`predictor_scores`): the LM interest
   ``u = normalise(sum_j (r_uj - mean_u) e_j)`` scored as ``<u, e_j>`` (full LM space and PCA spaces), the
   stated-request embedding (what agents observe), item popularity and item quality (train counts and the
   train Bayesian-average rating), the simulator's own utility ``affinity_weight <u, e_j> + quality_weight
   q_j`` (what simulated users choose by), and random scores.
3. :func:`per_user_auc` computes, per user, the AUC of the scores for liked (rating >= 4) against disliked
   (rating <= 2) test items; :func:`fidelity_report` averages it over users with a 95% confidence interval.

Everything is NumPy/pandas (run once, outside ``jit``); only the request predictor calls the LM encoder (its
texts are cached on disk like every other embedding).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from rlrec.data.builtin import bayesian_average
from rlrec.data.catalog import Catalog, CatalogError
from rlrec.errors import InputError
from rlrec.simulators.population import interests_from_ratings, movielens_population

LIKED_AT = 4.0  # ratings >= this count as liked
DISLIKED_AT = 2.0  # ratings <= this count as disliked; ratings in between are left out of the AUC
# The choice model's default weights (rlrec.envs.recsys.EnvParams; a test checks they still agree).
AFFINITY_WEIGHT = 5.0
QUALITY_WEIGHT = 0.3
REQUIRED_COLUMNS = ("user_id", "item_index", "rating")
Z_95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclasses.dataclass(frozen=True)
class PredictorScores:
    """Scores of one predictor for a list of (user, item) pairs.

    Attributes:
        predictor: what the scores come from (``"LM interest"``, ``"popularity"``, ...).
        space: where they are computed (``"LM 384-d"``, ``"PCA 32-d"``, or ``"-"`` for item statistics).
        scores: ``(M,)`` float64, one per pair; higher means "the user likes it more".
    """

    predictor: str
    space: str
    scores: np.ndarray


# -- splitting ------------------------------------------------------------------------------------------------


def _check_interactions(interactions: pd.DataFrame, label: str = "interactions") -> None:
    if not isinstance(interactions, pd.DataFrame):
        raise CatalogError(f"{label} must be a pandas DataFrame, got {type(interactions).__name__}.")
    missing = [column for column in REQUIRED_COLUMNS if column not in interactions.columns]
    if missing:
        raise CatalogError(
            f"{label} lacks column(s) {missing}; it has {list(interactions.columns)}. An interaction log needs "
            f"columns {list(REQUIRED_COLUMNS)} (timestamp optional)."
        )
    if len(interactions) == 0:
        raise CatalogError(f"{label} is empty: there are no ratings to split or evaluate.")
    ratings = interactions["rating"].to_numpy(np.float64)
    if not np.isfinite(ratings).all():
        raise CatalogError(
            f"{label} has NaN/inf ratings (first at row {int(np.argmax(~np.isfinite(ratings)))}); drop them first."
        )


def split_ratings(
    interactions: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0, min_train_ratings: int = 5
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A per-user random split of an interaction log into train and test.

    Each user with ``n`` ratings puts ``round(test_fraction * n)`` of them, chosen uniformly at random, into
    test, but never so many that fewer than ``min_train_ratings`` stay in train (a user with
    ``n <= min_train_ratings`` ratings keeps them all in train). So every user has train ratings, and their
    test ratings are never seen by a predictor.

    Args:
        interactions: ``(R rows)`` with columns ``user_id, item_index, rating`` (``timestamp`` and others are
            carried along).
        test_fraction: share of each user's ratings held out, in ``(0, 1)``.
        seed: seed of the ``numpy.random.Generator`` that draws the split (same seed, same split).
        min_train_ratings: ratings each user keeps in train at least (>= 1).

    Returns:
        ``(train, test)``: row subsets of ``interactions`` that keep its index; disjoint, and together every row.
    """
    _check_interactions(interactions)
    if not 0.0 < float(test_fraction) < 1.0:
        raise InputError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}.")
    if int(min_train_ratings) < 1:
        raise InputError(f"min_train_ratings must be >= 1 so every user keeps train ratings, got {min_train_ratings}.")
    rng = np.random.default_rng(seed)
    _, user = np.unique(interactions["user_id"].to_numpy(), return_inverse=True)
    counts = np.bincount(user)
    test_counts = np.minimum(np.rint(test_fraction * counts), np.maximum(counts - int(min_train_ratings), 0))
    # Shuffle within each user: sort by (user, random key); a row's position inside its user block is its rank.
    order = np.lexsort((rng.random(len(user)), user))
    sorted_user = user[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_user, sorted_user, side="left")
    in_test = np.zeros(len(user), dtype=bool)
    in_test[order] = rank < test_counts[sorted_user]
    return interactions[~in_test], interactions[in_test]


# -- AUC ------------------------------------------------------------------------------------------------------


def like_labels(
    ratings: np.ndarray, liked_at: float = LIKED_AT, disliked_at: float = DISLIKED_AT
) -> tuple[np.ndarray, np.ndarray]:
    """Which ratings take part in the AUC, and whether each is a "like".

    Args:
        ratings: ``(M,)`` ratings.
        liked_at: ratings ``>= liked_at`` are liked.
        disliked_at: ratings ``<= disliked_at`` are disliked (must be below ``liked_at``).

    Returns:
        ``(kept, liked)``: two ``(M,)`` bool arrays; ``kept`` is False for ratings strictly in between.
    """
    if not disliked_at < liked_at:
        raise InputError(f"disliked_at ({disliked_at}) must be below liked_at ({liked_at}).")
    ratings = np.asarray(ratings, dtype=np.float64)
    liked = ratings >= liked_at
    return liked | (ratings <= disliked_at), liked


def per_user_auc(
    scores: np.ndarray, labels: np.ndarray, user_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user ROC AUC of ``scores`` for positives (``labels`` True) against negatives.

    The AUC is the Mann-Whitney statistic: the probability that a random positive of the user scores above a
    random negative of the same user, a tie counting 1/2. It is computed with within-user mid-ranks,
    ``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``, in ``O(M log M)``.

    Args:
        scores: ``(M,)`` finite scores.
        labels: ``(M,)`` bool (or 0/1): True for a liked item.
        user_index: ``(M,)`` integer user of each entry (any ids; they need not be contiguous).

    Returns:
        ``(users, auc)``: the users that have both a positive and a negative (sorted, ``(U,)``), and their AUC
        ``(U,)`` float64. Users with a single class have no AUC and are left out.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    user_index = np.asarray(user_index)
    if scores.ndim != 1 or labels.shape != scores.shape or user_index.shape != scores.shape:
        raise InputError(
            f"scores, labels and user_index must be 1-D of the same length; got shapes {scores.shape}, "
            f"{labels.shape}, {user_index.shape}."
        )
    if not np.isfinite(scores).all():
        raise InputError(f"scores contain NaN or inf (first at {int(np.argmax(~np.isfinite(scores)))}).")
    if labels.dtype != bool:
        if not np.isin(labels, (0, 1)).all():
            raise InputError("labels must be bool or 0/1 (True = liked); binarise ratings with like_labels().")
        labels = labels.astype(bool)
    if len(scores) == 0:
        return user_index[:0], np.zeros(0)
    users, user = np.unique(user_index, return_inverse=True)
    order = np.lexsort((scores, user))
    sorted_scores, sorted_user, sorted_labels = scores[order], user[order], labels[order]
    count = len(order)
    # Tie groups: runs of equal score inside one user; every member gets the group's mid-rank.
    starts_group = np.ones(count, dtype=bool)
    starts_group[1:] = (sorted_user[1:] != sorted_user[:-1]) | (sorted_scores[1:] != sorted_scores[:-1])
    group = np.cumsum(starts_group) - 1
    group_first = np.flatnonzero(starts_group)
    group_last = np.append(group_first[1:], count) - 1
    user_first = np.searchsorted(sorted_user, sorted_user, side="left")
    rank = (group_first[group] + group_last[group]) / 2.0 - user_first + 1.0  # 1-based, within the user
    positives = np.bincount(sorted_user, weights=sorted_labels, minlength=len(users))
    negatives = np.bincount(sorted_user, minlength=len(users)) - positives
    positive_rank_sum = np.bincount(sorted_user, weights=rank * sorted_labels, minlength=len(users))
    both = (positives > 0) & (negatives > 0)
    auc = (positive_rank_sum[both] - positives[both] * (positives[both] + 1) / 2) / (positives[both] * negatives[both])
    return users[both], auc


def mean_with_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95% normal-approximation confidence interval ``mean +- 1.96 sd / sqrt(n)``.

    Args:
        values: ``(n,)`` per-user values (n >= 2 for an interval; with n = 1 the interval is the point).

    Returns:
        ``(mean, ci_low, ci_high)``; NaNs when ``values`` is empty.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    half = Z_95 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, mean - half, mean + half


# -- predictors -----------------------------------------------------------------------------------------------


def _space(dim: int | None, lm_dim: int) -> str:
    return f"LM {lm_dim}-d" if dim is None else f"PCA {dim}-d"


def _score_in_spaces(
    spaces: dict[int | None, Catalog], name: str, user_vectors: np.ndarray, user: np.ndarray, item: np.ndarray
) -> list[PredictorScores]:
    """``<v_user, e_item>`` for each pair ``(user (M,), item (M,))`` in each space.

    Args:
        spaces: dim -> the catalog in that space (no projection for ``None``, a fitted PCA otherwise).
        name: the predictor's name.
        user_vectors: ``(U, D)`` user vectors in LM space, mapped into each space with ``Catalog.project``
            (unit rows), exactly as the simulator maps its users.
        user: ``(M,)`` row of ``user_vectors`` for each pair.
        item: ``(M,)`` catalog index for each pair.
    """
    results = []
    for dim, space in spaces.items():
        vectors = space.project(user_vectors)[user].astype(np.float64)
        scores = np.einsum("md,md->m", vectors, space.features[item].astype(np.float64))
        results.append(PredictorScores(name, _space(dim, space.embeddings.shape[1]), scores))
    return results


def _can_state_requests(catalog: Catalog) -> bool:
    return catalog.genres is not None and (catalog.model_id is not None or catalog.model_path is not None)


def predictor_scores(
    catalog: Catalog,
    train: pd.DataFrame,
    pairs: pd.DataFrame,
    dims: Sequence[int | None] = (None, 32),
    seed: int = 0,
    requests: bool | None = None,
    affinity_weight: float = AFFINITY_WEIGHT,
    quality_weight: float = QUALITY_WEIGHT,
) -> list[PredictorScores]:
    """Scores of every predictor for the ``(user_id, item_index)`` pairs, built from ``train`` alone.

    Only ``pairs[["user_id", "item_index"]]`` is read, so test ratings cannot leak in; nor are the catalog's
    own ``popularity``, ``quality`` or ``interactions`` used (they are computed from *all* ratings).

    Predictors:

    - ``LM interest``: ``u = interests_from_ratings(train)``; score ``<u, e_j>`` in each space of ``dims``.
    - ``LM request``: the mean of the user's 3 stated-request embeddings, written from the train ratings by
      :func:`~rlrec.simulators.population.movielens_population` (what an agent observes); same scoring.
    - ``simulator utility``: ``affinity_weight <u, e_j> + quality_weight q_j``, ``q`` the train quality
      standardised over items: the ranking a simulated user (at zero noise, before boredom and position bias)
      chooses by, in each space of ``dims``.
    - ``popularity``: number of train ratings of the item.
    - ``item quality``: the item's train Bayesian-average rating (:func:`~rlrec.data.builtin.bayesian_average`).
    - ``random``: uniform scores (a sanity check: AUC ~ 0.5).

    Args:
        catalog: items with LM embeddings (``(N, D)``); its projection, if any, is ignored (see ``dims``).
        train: training ratings, columns ``user_id, item_index, rating``.
        pairs: ``M`` rows with ``user_id, item_index`` to score; every user must have train ratings.
        dims: spaces for the vector predictors: ``None`` for the full LM space, an int ``d`` for the catalog's
            PCA to ``d`` dims.
        seed: seed of the random predictor.
        requests: include ``LM request``: ``None`` when the catalog can (genres and an LM), True to require it.
        affinity_weight: weight of ``<u, e_j>`` in the simulator utility (``EnvParams.affinity_weight``).
        quality_weight: weight of the standardised quality in it (``EnvParams.quality_weight``).

    Returns:
        One :class:`PredictorScores` per predictor and space, each with ``(M,)`` scores aligned with ``pairs``.
    """
    _check_interactions(train, "train")
    missing = [column for column in ("user_id", "item_index") if column not in pairs.columns]
    if missing:
        raise CatalogError(f"pairs lacks column(s) {missing}; it needs user_id and item_index.")
    pairs = pairs[["user_id", "item_index"]]  # ratings of the pairs are never read
    dims = list(dict.fromkeys(dims))  # unique, in order
    if not dims:
        raise InputError("dims is empty: give at least one space (None for the full LM space, or a PCA dim).")
    bad = [d for d in dims if d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer)))]
    if bad:
        raise InputError(f"dims must be None (full LM space) or positive ints (PCA dims), got {bad}.")
    num_items = len(catalog)
    train_item = train["item_index"].to_numpy()
    pair_item = pairs["item_index"].to_numpy()
    for label, items in (("train", train_item), ("pairs", pair_item)):
        if len(items) and (items.min() < 0 or items.max() >= num_items):
            raise CatalogError(f"{label} has item_index outside [0, {num_items}) for catalog {catalog.name!r}.")
    user_ids, train_user = np.unique(train["user_id"].to_numpy(), return_inverse=True)
    pair_user = np.searchsorted(user_ids, pairs["user_id"].to_numpy())
    pair_user = np.minimum(pair_user, len(user_ids) - 1)
    unknown = user_ids[pair_user] != pairs["user_id"].to_numpy()
    if unknown.any():
        raise CatalogError(
            f"{int(unknown.sum())} pairs belong to users with no train ratings (e.g. user "
            f"{pairs['user_id'].to_numpy()[int(np.argmax(unknown))]!r}); split with split_ratings() so every "
            "user keeps train ratings."
        )
    train_rating = train["rating"].to_numpy(np.float64)
    results: list[PredictorScores] = []

    interests = interests_from_ratings(catalog.embeddings, train_item, train_rating, train_user, len(user_ids))
    spaces = {dim: catalog.with_projection(dim) for dim in dims}  # PCA fitted on item embeddings only
    interest_scores = _score_in_spaces(spaces, "LM interest", interests, pair_user, pair_item)
    results += interest_scores

    train_counts = np.bincount(train_item, minlength=num_items).astype(np.float64)
    totals = np.bincount(train_item, weights=train_rating, minlength=num_items)
    quality = bayesian_average(totals, train_counts)
    spread = quality.std()
    standard_quality = (quality - quality.mean()) / (spread if spread > 0 else 1.0)  # as Catalog.quality
    if requests is None:
        requests = _can_state_requests(catalog)
        if not requests:
            warnings.warn(
                f"Catalog {catalog.name!r} has no genres or no language model, so users cannot state requests; "
                "the 'LM request' predictor is left out.",
                stacklevel=2,
            )
    if requests:
        # movielens_population breaks ties between a user's top-rated titles by catalog.popularity, which counts
        # test ratings too: give it the train counts instead.
        train_catalog = dataclasses.replace(
            catalog, popularity=train_counts.astype(np.float32), projection=None, interactions=train
        )
        population = movielens_population(train_catalog, ratings=train)
        if not np.array_equal(population.user_ids, user_ids):  # pragma: no cover - same np.unique of the same ids
            raise RuntimeError("population users do not match the train users")
        stated = population.requests.astype(np.float64).mean(axis=1)
        results += _score_in_spaces(spaces, "LM request", stated, pair_user, pair_item)

    for interest in interest_scores:
        utility = affinity_weight * interest.scores + quality_weight * standard_quality[pair_item]
        results.append(PredictorScores("simulator utility", interest.space, utility))
    results.append(PredictorScores("popularity", "-", train_counts[pair_item]))
    results.append(PredictorScores("item quality", "-", quality[pair_item]))
    random_scores = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,))).random(len(pairs))
    results.append(PredictorScores("random", "-", random_scores))
    return results


# -- the report -----------------------------------------------------------------------------------------------


def fidelity_report(
    catalog: Catalog,
    dims: Sequence[int | None] = (None, 32),
    seed: int = 0,
    test_fraction: float = 0.2,
    min_train_ratings: int = 5,
    liked_at: float = LIKED_AT,
    disliked_at: float = DISLIKED_AT,
    requests: bool | None = None,
    affinity_weight: float = AFFINITY_WEIGHT,
    quality_weight: float = QUALITY_WEIGHT,
) -> pd.DataFrame:
    """How well each predictor, built from train ratings, ranks each user's held-out liked vs disliked items.

    Args:
        catalog: a catalog with real ``interactions`` (e.g. ``load_catalog("movielens")``).
        dims: spaces for the LM predictors: ``None`` is the full LM space, an int a PCA space of that dim.
        seed: seed of the split (and of the random predictor).
        test_fraction: share of each user's ratings held out.
        min_train_ratings: ratings every user keeps in train at least.
        liked_at: held-out ratings ``>= liked_at`` are positives.
        disliked_at: held-out ratings ``<= disliked_at`` are negatives; those in between are left out.
        requests: include the stated-request predictor (``None``: when the catalog can write requests).
        affinity_weight: weight of ``<u, e_j>`` in the ``simulator utility`` predictor.
        quality_weight: weight of the standardised train quality in it.

    Returns:
        One row per predictor and space, with columns ``predictor, space, mean_auc, ci_low, ci_high, users``
        (mean per-user AUC, its 95% CI over users, users evaluated: those with both a liked and a disliked
        held-out item). ``report.attrs`` records the split: ``seed, test_fraction, train_ratings,
        test_ratings, labelled_test_ratings, users``.
    """
    if catalog.interactions is None or len(catalog.interactions) == 0:
        raise CatalogError(
            f"Catalog {catalog.name!r} has no interactions (real ratings) to check the users against. Use "
            "load_catalog('movielens'), or attach a log with dataclasses.replace(catalog, interactions=frame), "
            "frame having columns user_id, item_index, rating[, timestamp]."
        )
    train, test = split_ratings(catalog.interactions, test_fraction, seed, min_train_ratings)
    kept, liked = like_labels(test["rating"].to_numpy(), liked_at, disliked_at)
    labelled = test[kept]
    liked = liked[kept]
    rows = []
    pairs = labelled[["user_id", "item_index"]]
    for result in predictor_scores(
        catalog, train, pairs, dims, seed, requests, affinity_weight=affinity_weight, quality_weight=quality_weight
    ):
        users, auc = per_user_auc(result.scores, liked, labelled["user_id"].to_numpy())
        mean, low, high = mean_with_ci(auc)
        rows.append(
            {
                "predictor": result.predictor,
                "space": result.space,
                "mean_auc": mean,
                "ci_low": low,
                "ci_high": high,
                "users": len(users),
            }
        )
    report = pd.DataFrame(rows)
    report.attrs.update(
        seed=seed,
        test_fraction=test_fraction,
        train_ratings=len(train),
        test_ratings=len(test),
        labelled_test_ratings=len(labelled),
        users=int(catalog.interactions["user_id"].nunique()),
    )
    return report
