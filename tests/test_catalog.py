import numpy as np
import pandas as pd
import pytest

from rlrec.data import Catalog, CatalogError, Projection, load_catalog
from rlrec.data.builtin import ggplot2movies_table, item_text, readable_title


def test_movielens_counts_and_texts(movielens):
    assert len(movielens) == 9066
    assert movielens.embeddings.shape == (9066, 384)
    np.testing.assert_allclose(np.linalg.norm(movielens.embeddings, axis=1), 1.0, atol=1e-5)
    assert len(movielens.interactions) == 100004
    assert movielens.interactions["user_id"].nunique() == 671
    toy_story = movielens.index_of([1])[0]
    assert movielens.texts[toy_story] == "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy."
    assert movielens.genres.shape == (9066, 19)
    assert "Animation" in movielens.genre_names
    # popularity is the number of ratings; quality is standardised
    assert movielens.popularity.sum() == 100004
    assert abs(movielens.quality.mean()) < 1e-4 and abs(movielens.quality.std() - 1) < 1e-3
    # interactions point at the right items
    assert movielens.interactions["item_index"].dtype.kind == "i"
    assert movielens.item_ids[movielens.interactions["item_index"].iloc[0]] == 31


def test_titles_read_like_a_person_writes_them():
    assert readable_title("Deer Hunter, The") == "The Deer Hunter"
    assert readable_title("City of Lost Children, The (Cité des enfants perdus, La)") == (
        "The City of Lost Children (Cité des enfants perdus, La)"
    )
    assert readable_title("Heat") == "Heat"
    assert item_text("Heat", 1995.0, ["Action", "Crime"]) == "Heat (1995). Genres: Action, Crime."
    assert item_text("Heat", float("nan"), []) == "Heat."


def test_projection_shapes_unit_norm_and_user_texts(movielens):
    projected = movielens.with_projection(32)
    assert projected.features.shape == (9066, 32)
    np.testing.assert_allclose(np.linalg.norm(projected.features, axis=1), 1.0, atol=1e-5)
    assert 0 < projected.projection.explained_variance_ratio.sum() <= 1
    assert np.all(np.diff(projected.projection.explained_variance_ratio) <= 1e-7)
    users = projected.embed_texts(["I love animated comedies", "war documentaries please"])
    assert users.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(users, axis=1), 1.0, atol=1e-5)
    # components are orthonormal
    components = projected.projection.components
    np.testing.assert_allclose(components.T @ components, np.eye(32), atol=1e-4)
    # the original catalog is unchanged (immutable update)
    assert movielens.features.shape == (9066, 384)


def test_projection_is_deterministic(movielens):
    first = Projection.fit(movielens.embeddings[:500], 8)
    second = Projection.fit(movielens.embeddings[:500], 8)
    np.testing.assert_array_equal(first.components, second.components)


def test_nearest_finds_semantically_related_items(movielens):
    nearest = movielens.with_projection(64).nearest("an animated comedy for children", k=10)
    assert len(nearest) == 10
    assert nearest["similarity"].is_monotonic_decreasing
    assert sum("Animation" in text for text in nearest["text"]) >= 5


@pytest.mark.parametrize("dim", [0, 385])
def test_projection_dim_out_of_range(movielens, dim):
    with pytest.raises(CatalogError, match="Projection dim"):
        movielens.with_projection(dim)


def test_load_catalog_unknown_name_lists_valid():
    with pytest.raises(CatalogError, match="ggplot2movies.*movielens"):
        load_catalog("netflix")


def test_ggplot2movies_table_has_all_titles():
    table = ggplot2movies_table()
    assert len(table) == 58788
    assert table["movie_id"].is_unique
    assert table["text"].str.len().min() > 0


# -- bring your own -----------------------------------------------------------------------------------------


def test_from_arrays_normalises_and_projects():
    rng = np.random.default_rng(0)
    catalog = Catalog.from_arrays(rng.normal(size=(20, 6)) * 3, dim=3, item_ids=[f"i{k}" for k in range(20)])
    assert catalog.features.shape == (20, 3)
    np.testing.assert_allclose(np.linalg.norm(catalog.embeddings, axis=1), 1.0, atol=1e-6)
    assert catalog.index_of(["i3", "i0"]).tolist() == [3, 0]
    with pytest.raises(CatalogError, match="precomputed embeddings"):
        catalog.embed_texts(["hello"])
    with pytest.raises(CatalogError, match="'nope' is not in catalog"):
        catalog.index_of(["nope"])


@pytest.mark.parametrize(
    ("embeddings", "kwargs", "message"),
    [
        (np.ones(5), {}, "2-D array"),
        (np.zeros((0, 4)), {}, "empty"),
        (np.array([[1.0, np.nan], [1.0, 0.0]]), {}, "Embeddings: 1 row holds NaN or inf"),
        (np.array([[1.0, np.inf], [1.0, 0.0]]), {}, "NaN or inf"),
        (np.array([[0.0, 0.0], [1.0, 0.0]]), {}, "all zeros"),
        (np.eye(3), {"item_ids": [1, 1, 2]}, "unique"),
        (np.eye(3), {"item_ids": [1, 2]}, "2 item ids for 3"),
        (np.eye(3), {"texts": ["a", "", "c"]}, "empty or not strings"),
        (np.eye(3), {"popularity": np.ones(2)}, "popularity must have one value per item"),
        (np.eye(3), {"quality": np.array([1.0, np.nan, 0.0])}, "quality contains NaN"),
        # log1p(popularity) is the appeal: a count <= -1 made every item's appeal NaN (and every regret NaN).
        (np.eye(3), {"popularity": np.array([3.0, -1.0, 2.0])}, r"popularity must be >= 0.*row 1"),
        (np.eye(3), {"popularity": np.array([3.0, -0.5, 2.0])}, r"popularity must be >= 0"),
        (np.eye(3), {"quality": np.array([1.0, 1e39, 0.0])}, "beyond float32"),
        (np.array([["a", "b"], ["c", "d"]]), {}, "numeric"),
    ],
)
def test_from_arrays_bad_input(embeddings, kwargs, message):
    with pytest.raises(CatalogError, match=message):
        Catalog.from_arrays(embeddings, **kwargs)


def test_from_arrays_accepts_float64_beyond_float32_range():
    # Finite float64 rows of huge or tiny magnitude are normalised before the cast to float32, not overflowed.
    catalog = Catalog.from_arrays(np.array([[3e39, 4e39], [1e-50, 0.0], [0.6, 0.8]]), quality=[1e30, 0.0, -1e30])
    np.testing.assert_allclose(catalog.embeddings, [[0.6, 0.8], [1.0, 0.0], [0.6, 0.8]], rtol=1e-6)
    assert np.isfinite(catalog.quality).all()


def test_normalise_rows_is_exact_power_of_two_scaling():
    # The pre-scaling by powers of two changes no bit of float32 results that did not overflow.
    from rlrec.data.catalog import normalise_rows

    rows = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32) * 0.3
    plain = rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)
    np.testing.assert_array_equal(normalise_rows(rows), plain)


def test_from_file_csv_and_parquet(tmp_path, encoder):
    frame = pd.DataFrame(
        {
            "item_id": [10, 20, 30],
            "text": ["Toy Story (1995). Genres: Animation.", "Heat (1995). Genres: Crime.", "Alien (1979)."],
            "genres": ["Animation|Children", "Crime", ""],
            "plays": [5, 1, 3],
        }
    )
    frame.to_csv(tmp_path / "items.csv", index=False)
    frame.to_parquet(tmp_path / "items.parquet")
    for path in (tmp_path / "items.csv", tmp_path / "items.parquet"):
        catalog = Catalog.from_file(path, genres_column="genres", popularity_column="plays", encoder=encoder)
        assert catalog.name == "items"
        assert catalog.embeddings.shape == (3, 384)
        assert catalog.genre_names == ("Animation", "Children", "Crime")
        assert catalog.genres.tolist() == [[True, True, False], [False, False, True], [False, False, False]]
        assert catalog.popularity.tolist() == [5, 1, 3]
        assert "plays" in catalog.metadata.columns
        np.testing.assert_allclose(catalog.embeddings, encoder.encode(frame["text"].tolist()), atol=1e-6)


def test_from_file_bad_input(tmp_path, encoder):
    with pytest.raises(CatalogError, match="No such file"):
        Catalog.from_file(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(CatalogError, match="is empty"):
        Catalog.from_file(tmp_path / "empty.csv")
    (tmp_path / "items.json").write_text("{}")
    with pytest.raises(CatalogError, match="Unsupported file type"):
        Catalog.from_file(tmp_path / "items.json")
    (tmp_path / "header.csv").write_text("item_id,text\n")
    with pytest.raises(CatalogError, match="no rows"):
        Catalog.from_file(tmp_path / "header.csv", encoder=encoder)
    (tmp_path / "cols.csv").write_text("id,description\n1,hello\n")
    with pytest.raises(CatalogError, match=r"Column 'item_id' \(id_column\) is missing.*'id', 'description'"):
        Catalog.from_file(tmp_path / "cols.csv", encoder=encoder)
    (tmp_path / "dups.csv").write_text("item_id,text\n1,hello\n1,world\n")
    with pytest.raises(CatalogError, match="unique"):
        Catalog.from_file(tmp_path / "dups.csv", encoder=encoder)
    (tmp_path / "blank.csv").write_text("item_id,text\n1,hello\n2,\n")
    with pytest.raises(CatalogError, match="empty or not strings"):
        Catalog.from_file(tmp_path / "blank.csv", encoder=encoder)


def test_from_dataframe_rejects_non_frames():
    with pytest.raises(CatalogError, match="DataFrame"):
        Catalog.from_dataframe({"item_id": [1], "text": ["a"]})
