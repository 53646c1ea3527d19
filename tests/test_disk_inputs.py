"""What rlrec reads from disk is checked on the way in: env snapshots, embedding cache shards, CSV catalogs, and
the key-term and critique banks that become env params (issue 30, items 4 to 6).

Everything here is model-free and small: snapshots of the synthetic world, a fake encoder (a model folder holding
only a config.json, and ``_run_model`` replaced by a deterministic function), CSV files of a few lines.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from synthetic import synthetic_catalog, synthetic_env

from rlrec import lm
from rlrec.data import Catalog, read_table
from rlrec.data.key_terms import Critiques, KeyTerms
from rlrec.envs.snapshot import load_env, save_env
from rlrec.errors import InputError

# -- snapshots ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain():
    return synthetic_env("MovieLens-BanditSlate-v0", items=12, dim=4, users=3)


@pytest.fixture(scope="module")
def talking():
    return synthetic_env("MovieLens-ConversationalSlate-v0", items=12, dim=4, users=3)


def _edited(tmp_path, env_and_params, *, config=None, **arrays):
    """A snapshot of ``env_and_params`` saved, then edited as a user could: ``config`` entries replaced (``None``
    values removed) and ``params.<name>`` arrays replaced by ``arrays``."""
    path = save_env(tmp_path / "env.npz", *env_and_params)
    with np.load(path) as contents:
        entries = {name: contents[name] for name in contents.files}
    stored = json.loads(str(entries["config"]))
    for name, value in (config or {}).items():
        if value is None:
            stored.pop(name, None)
        else:
            stored[name] = value
    entries["config"] = np.asarray(json.dumps(stored))
    entries.update({f"params.{name}": np.asarray(value) for name, value in arrays.items()})
    np.savez(path, **entries)
    return path


@pytest.mark.parametrize("knob, value", [("temperature", -1.0), ("temperature", np.nan), ("drift_rate", np.inf),
                                         ("max_steps", 2.5), ("position_bias", [0.0, np.nan])])
def test_snapshot_knobs_are_checked_as_make_checks_them(tmp_path, plain, knob, value):
    path = _edited(tmp_path, plain, **{knob: np.asarray(value, np.float32)})
    with pytest.raises(InputError, match=rf"env\.npz.*{knob} must be"):
        load_env(path)


def test_snapshot_conversation_knobs_are_checked(tmp_path, talking):
    path = _edited(tmp_path, talking, answer_noise=np.float32(1.5))
    with pytest.raises(InputError, match=r"env\.npz.*answer_noise must be in \[0, 1\]"):
        load_env(path)


def test_snapshot_with_an_unknown_kind_names_the_file_and_the_fix(tmp_path, plain):
    path = _edited(tmp_path, plain, config={"kind": "bogus"})
    with pytest.raises(InputError, match=r"env\.npz.*kind 'bogus'.*'plain' or 'conversational'.*save_env"):
        load_env(path)


@pytest.mark.parametrize("config, message", [
    ({"env": None}, r"no 'env' entry"),
    ({"env": {"slate_size": 2, "colour": "red"}}, r"missing \[.*unknown \['colour'\]"),
    ({"env": {"slate_size": 0, "history_length": 8, "choice_model": "mnl", "name": "x", "track_regret": True}},
     r"slate_size must be a positive whole number"),
    ({"env": {"slate_size": 2, "history_length": 8, "choice_model": "nope", "name": "x", "track_regret": True}},
     r"choice_model must be one of"),
])
def test_snapshot_env_settings_are_checked(tmp_path, plain, config, message):
    path = _edited(tmp_path, plain, config=config)
    with pytest.raises(InputError, match=rf"env\.npz.*{message}"):
        load_env(path)


def test_snapshot_that_is_not_json_or_not_npz_is_refused(tmp_path, plain):
    path = save_env(tmp_path / "env.npz", *plain)
    with np.load(path) as contents:
        entries = {name: contents[name] for name in contents.files}
    np.savez(path, **{**entries, "config": np.asarray("{not json")})
    with pytest.raises(InputError, match=r"env\.npz.*config"):
        load_env(path)
    path.write_text("hello")
    with pytest.raises(InputError, match=r"env\.npz is not an rlrec environment snapshot \(not an \.npz file"):
        load_env(path)
    np.savez(path, config=np.asarray(entries["config"]), **{"params.temperature": np.array([{"x": 1}], object)})
    with pytest.raises(InputError, match=r"env\.npz is not an rlrec environment snapshot: an entry is not a plain"):
        load_env(path)
    whole = save_env(tmp_path / "whole.npz", *plain).read_bytes()
    path.write_bytes(whole[:-200])
    with pytest.raises(InputError, match=r"env\.npz is not an rlrec environment snapshot \(.*a truncated one\)"):
        load_env(path)
    middle = len(whole) // 2
    path.write_bytes(whole[:middle] + bytes(64) + whole[middle + 64:])  # damaged bytes inside an entry
    with pytest.raises(InputError, match=r"env\.npz is damaged or truncated"):
        load_env(path)


@pytest.mark.parametrize("field, value, message", [
    ("item_features", lambda p: np.where(np.arange(4) == 2, np.nan, np.asarray(p.item_features)),
     r"item_features holds NaN or inf \(first at \[0, 2\]\)"),
    ("item_quality", lambda p: np.asarray(p.item_quality)[:-1], r"item_quality has shape \(11,\).*\(12,\)"),
    ("prototype_interests", lambda p: np.ones((3, 7), np.float32),
     r"prototype_interests has shape \(3, 7\).*\(3, 4\)"),
    ("prototype_requests", lambda p: np.asarray(p.prototype_requests) * np.inf, r"prototype_requests.*NaN or inf"),
    ("prototype_log_weights", lambda p: np.asarray(p.prototype_log_weights).astype(str),
     r"prototype_log_weights must be numbers"),
])
def test_snapshot_arrays_are_checked(tmp_path, plain, field, value, message):
    path = _edited(tmp_path, plain, **{field: value(plain[1])})
    with pytest.raises(InputError, match=rf"env\.npz.*{message}"):
        load_env(path)


@pytest.mark.parametrize("field, value, message", [
    ("key_term_features", lambda p: np.asarray(p.key_term_features) * np.nan, r"key_term_features.*NaN or inf"),
    ("critique_features", lambda p: np.asarray(p.critique_features)[:, :3], r"critique_features has shape"),
    ("key_term_items", lambda p: np.asarray(p.key_term_items) + 1000, r"key_term_items.*item indices in \[0, 12\)"),
])
def test_snapshot_banks_are_checked(tmp_path, talking, field, value, message):
    path = _edited(tmp_path, talking, **{field: value(talking[1])})
    with pytest.raises(InputError, match=rf"env\.npz.*{message}"):
        load_env(path)


def test_checked_snapshot_still_round_trips_bit_for_bit(tmp_path, talking):
    env, params = talking
    loaded_env, loaded = load_env(save_env(tmp_path / "env.npz", env, params))
    assert loaded_env == env
    for name in params.__dataclass_fields__:
        original, back = np.asarray(getattr(params, name)), np.asarray(getattr(loaded, name))
        assert original.dtype == back.dtype, name
        np.testing.assert_array_equal(original, back)


# -- embedding cache shards ---------------------------------------------------------------------------------------

DIM = 5
TEXTS = ["Heat (1995)", "Up (2009)", "Alien (1979)"]


def _fake_vectors(texts):
    """Deterministic unit vectors of dim DIM, one per text (stands in for the language model)."""
    rows = [np.random.default_rng(int.from_bytes(lm._text_key(text)[:8], "little")).normal(size=DIM) for text in texts]
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def fake_encoder(tmp_path, monkeypatch):
    """A ``TextEncoder`` of a DIM-d model folder that holds only a config.json, its model a deterministic fake."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": DIM}))

    def make():
        encoder = lm.TextEncoder(model, cache_dir=tmp_path / "cache")

        def run_model(texts):
            encoder.texts_encoded += len(texts)
            return _fake_vectors(texts)

        monkeypatch.setattr(encoder, "_run_model", run_model)
        return encoder

    return make


def _bad_shard(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``(keys, vectors)`` of a shard holding TEXTS that is wrong in the way ``kind`` names."""
    keys = np.array([lm._text_key(text) for text in TEXTS], dtype="S64")
    good = _fake_vectors(TEXTS)
    rng = np.random.default_rng(0)
    wrong_dim = rng.normal(size=(len(TEXTS), 7))
    return {
        "wrong-dim": (keys, (wrong_dim / np.linalg.norm(wrong_dim, axis=1, keepdims=True)).astype(np.float32)),
        "nan": (keys, np.where(np.arange(DIM) == 1, np.nan, good).astype(np.float32)),
        "count": (keys, good[:2]),
        "not-unit": (keys, good * 3.0),
        "integers": (keys, np.ones((len(TEXTS), DIM), np.int64)),
        "one-d": (keys, good.reshape(-1)),
        "keys-2d": (keys.reshape(1, -1), good),
    }[kind]


@pytest.mark.parametrize("kind", ["wrong-dim", "nan", "count", "not-unit", "integers", "one-d", "keys-2d"])
def test_bad_cache_shard_is_a_miss_warned_once_and_replaced(fake_encoder, kind):
    encoder = fake_encoder()
    encoder.cache.directory.mkdir(parents=True)
    keys, vectors = _bad_shard(kind)
    shard = encoder.cache.directory / "shard-edited.npz"
    np.savez(shard, keys=keys, vectors=vectors)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoded = encoder.encode(TEXTS)
    about_it = [str(w.message) for w in caught if "shard-edited.npz" in str(w.message)]
    assert len(about_it) == 1 and "re-encoded" in about_it[0], [str(w.message) for w in caught]
    assert encoded.shape == (len(TEXTS), DIM) and encoder.texts_encoded == len(TEXTS)
    np.testing.assert_array_equal(encoded, _fake_vectors(TEXTS))
    # The bad shard is gone (replaced by the fresh one): a new process reads the texts without a word or a re-encoding.
    fresh = fake_encoder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(fresh.encode(TEXTS), encoded)
    assert fresh.texts_encoded == 0
    assert not shard.exists()


def test_shards_of_two_dimensions_no_longer_end_in_a_numpy_error(fake_encoder):
    encoder = fake_encoder()
    encoder.encode(TEXTS[:2])  # a good shard
    keys, vectors = _bad_shard("wrong-dim")
    np.savez(encoder.cache.directory / "shard-mixed.npz", keys=keys[2:], vectors=vectors[2:])
    fresh = fake_encoder()
    with pytest.warns(UserWarning, match=r"shard-mixed\.npz.*dimension 7.*model's 5"):
        encoded = fresh.encode(TEXTS)
    np.testing.assert_array_equal(encoded, _fake_vectors(TEXTS))
    assert fresh.texts_encoded == 1


def test_good_shards_are_served_as_before(fake_encoder):
    first = fake_encoder()
    vectors = first.encode(TEXTS)
    second = fake_encoder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(second.encode(TEXTS[::-1]), vectors[::-1])
    assert second.texts_encoded == 0


def test_a_catalog_from_a_bad_shard_has_the_model_dimension(fake_encoder):
    # The case: a shard of 7-d vectors for the catalog's texts built a (N, 7) catalog without a word.
    encoder = fake_encoder()
    encoder.cache.directory.mkdir(parents=True)
    keys, vectors = _bad_shard("wrong-dim")
    np.savez(encoder.cache.directory / "shard-edited.npz", keys=keys, vectors=vectors)
    import pandas as pd

    frame = pd.DataFrame({"item_id": [1, 2, 3], "text": TEXTS})
    with pytest.warns(UserWarning, match="re-encoded"):
        catalog = Catalog.from_dataframe(frame, encoder=encoder, dim=2)
    assert catalog.embeddings.shape == (3, DIM) and catalog.features.shape == (3, 2)


# -- CSV catalogs -------------------------------------------------------------------------------------------------


QUOTE = "must be in double quotes"


@pytest.mark.parametrize("body, line, fields, fix", [
    ("item_id,title,genres\n1,Face, The,Comedy\n2,Heat,Action\n", 2, 4, QUOTE),  # was: column 1 made the index
    ("item_id,title,genres\n1,Heat,Action\n2,Heat\n3,Up,Drama\n", 3, 2, "one value per column"),  # was: NaN-filled
    ("item_id,title,genres\n1,Heat,Action\n2,Face, The,Comedy\n", 3, 4, QUOTE),  # was: a bare pandas ParserError
    ('item_id,title,genres\n1,"Heat\nPart 2",Action\n\n2,Face, The,Comedy\n', 5, 4, QUOTE),  # lines as an editor shows
])
def test_ragged_csv_names_the_first_bad_line_and_the_fix(tmp_path, body, line, fields, fix):
    path = tmp_path / "items.csv"
    path.write_text(body)
    with pytest.raises(InputError, match=rf"items\.csv, line {line}: {fields} fields where the header has 3.*{fix}"):
        read_table(path)
    with pytest.raises(InputError, match=rf"line {line}"):
        Catalog.from_file(path, text_column="title")


def test_ragged_tsv_is_refused_too(tmp_path):
    path = tmp_path / "items.tsv"
    path.write_text("item_id\ttitle\n1\tHeat\textra\n")
    with pytest.raises(InputError, match=r"items\.tsv, line 2: 3 fields where the header has 2"):
        read_table(path)


def test_unclosed_quote_and_non_utf8_csv_name_the_file_and_the_fix(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text('item_id,title\n1,"Heat\n2,Up\n')  # was: a bare pandas ParserError
    with pytest.raises(InputError, match=r"items\.csv is not a readable CSV file.*Close every double quote"):
        read_table(path)
    path.write_bytes("item_id,title\n1,Am\xe9lie\n".encode("latin-1"))  # was: a bare UnicodeDecodeError
    with pytest.raises(InputError, match=r"items\.csv is not UTF-8 text.*save it as UTF-8"):
        read_table(path)


def test_quoted_commas_and_blank_lines_still_read(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text('item_id,title,genres\n1,"Face, The",Comedy\n\n2,Heat,Action\n')
    frame = read_table(path)
    assert frame["item_id"].tolist() == [1, 2] and frame["title"].tolist() == ["Face, The", "Heat"]


# -- key-term and critique banks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_key_terms_with_non_finite_features_are_refused(bad):
    features = np.eye(3, 4)
    features[1, 2] = bad
    with pytest.raises(InputError, match=r"Key-term features: 1 key-term holds NaN or inf \(first at row 1\)"):
        KeyTerms(("a", "b", "c"), features, (np.array([0]), np.array([1]), np.array([2])), ("text",) * 3)


def test_critiques_with_non_finite_features_are_refused():
    features = np.eye(2, 4)
    features[1, 0] = np.nan
    with pytest.raises(InputError, match=r"Critique features: 1 critique holds NaN or inf \(first at row 1\)"):
        Critiques(("more x", "less x"), features)


@pytest.mark.parametrize("texts", [("a", ""), ("a", "  "), ("a", None)])
def test_banks_with_empty_texts_are_refused(texts):
    with pytest.raises(InputError, match=r"Key-terms must be non-empty strings; entry 1"):
        KeyTerms(texts, np.eye(2, 4), (np.array([0]), np.array([1])), ("text",) * 2)
    with pytest.raises(InputError, match=r"Critiques must be non-empty strings; entry 1"):
        Critiques(texts, np.eye(2, 4))


def test_banks_of_the_wrong_dimension_are_refused_by_make():
    catalog = synthetic_catalog(items=10, dim=4)
    critiques = Critiques(("more x", "less x"), np.eye(2, 3))
    with pytest.raises(InputError, match=r"Critiques have dim 3 but catalog .* has dim 4"):
        synthetic_env("MovieLens-Conversational-v0", items=10, dim=4, critiques=critiques)
    key_terms = KeyTerms(("a",), np.ones((1, 5)), (np.array([0]),), ("text",))
    with pytest.raises(InputError, match=r"Key-terms have dim 5"):
        key_terms.check_catalog(catalog)

