"""Saving, loading and exporting OPE logs: exact round trips (.npz, Parquet), errors that name the fix, atomic
writes, and Open Bandit Pipeline's bandit_feedback layout."""

import dataclasses
import json
import sys

import numpy as np
import pytest

from rlrec.files import atomic_save_npz
from rlrec.ope import io
from rlrec.ope.log import Log

ROUNDS, DIM, HISTORY, ITEMS = 12, 6, 4, 30


def synthetic_log(slate_size: int = 3, greedy: bool = True, seed: int = 0) -> Log:
    """A log with the documented shapes and dtypes, filled with random values (every float a full-precision one)."""
    rng = np.random.default_rng(seed)
    n, k = ROUNDS, slate_size
    slate = np.argsort(rng.random((n, ITEMS)), axis=1)[:, :k].astype(np.int32)  # distinct items per slate
    clicked_slot = rng.integers(-1, k, size=n)  # -1: no click
    clicks = (np.arange(k) == clicked_slot[:, None]).astype(np.float32)
    prefix = np.cumprod(rng.uniform(0.01, 0.9, size=(n, k)), axis=1)
    return Log(
        env_id="MovieLens-BanditSlate-v0" if k > 1 else "MovieLens-Bandit-v0",
        behaviour="epsilon-greedy(linucb)" if greedy else "uniform",
        behaviour_kind="epsilon-greedy" if greedy else "uniform",
        behaviour_settings={"epsilon": 0.1, "agent": {"name": "linucb", "alpha": [0.5, 1.0]}} if greedy else {},
        num_items=ITEMS,
        slate_size=k,
        seed=seed,
        request=rng.normal(size=(n, DIM)).astype(np.float32),
        history_items=rng.integers(-1, ITEMS, size=(n, HISTORY, k)).astype(np.int32),
        history_clicks=rng.integers(-1, k, size=(n, HISTORY)).astype(np.int32),
        history_feedback=rng.normal(size=(n, HISTORY)).astype(np.float32),
        progress=rng.random((n, 1)).astype(np.float32),
        user=rng.integers(0, 4, size=n).astype(np.int32),
        step=rng.integers(0, 20, size=n).astype(np.int32),
        slate=slate,
        clicks=clicks,
        reward=clicks.sum(axis=1),
        propensity=prefix[:, -1].copy(),
        prefix_propensity=prefix,
        slot_propensity=rng.uniform(0.01, 1.0, size=(n, k)),
        expected_reward=rng.random(n).astype(np.float32),
        states={"interest": rng.normal(size=(n, DIM)).astype(np.float32), "active": rng.random(n) < 0.5},
        propensity_samples=64 if greedy else 0,
        behaviour_greedy=np.argsort(rng.random((n, ITEMS)), axis=1)[:, :k].astype(np.int32) if greedy else None,
    )


def assert_same_log(loaded: Log, saved: Log) -> None:
    """Every field equal: arrays bit for bit with the same dtype and shape, facts with the same type."""
    for field in dataclasses.fields(Log):
        got, want = getattr(loaded, field.name), getattr(saved, field.name)
        if field.name == "states":
            assert list(got) == list(want)
            for name in want:
                assert_same_array(got[name], want[name])
        elif isinstance(want, np.ndarray):
            assert_same_array(got, want)
        else:
            assert got == want and type(got) is type(want), field.name


def assert_same_array(got, want) -> None:
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want, strict=True)
    assert got.flags.writeable


LOGS = {"items": dict(slate_size=1, greedy=False), "slates": dict(slate_size=3, greedy=True),
        "slates-uniform": dict(slate_size=3, greedy=False), "items-greedy": dict(slate_size=1, greedy=True)}


def test_the_files_cover_every_field_of_a_log():
    arrays = {*Log.ROUND_FIELDS, "states", "behaviour_greedy"}
    assert {field.name for field in dataclasses.fields(Log)} == arrays | set(io.FACT_FIELDS)


@pytest.mark.parametrize("suffix", io.SUFFIXES)
@pytest.mark.parametrize("which", LOGS)
def test_round_trip_is_exact(tmp_path, suffix, which):
    log = synthetic_log(**LOGS[which])
    path = io.save(log, tmp_path / "deeper" / f"log{suffix}")
    assert path.is_file() and sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left
    loaded = io.load(path)
    assert_same_log(loaded, log)
    assert (loaded.behaviour_greedy is None) == (log.behaviour_greedy is None)
    assert loaded.head(5).num_rounds == 5


@pytest.mark.parametrize("suffix", io.SUFFIXES)
def test_a_head_of_a_log_saves_and_loads(tmp_path, suffix):
    head = synthetic_log().head(5)
    assert_same_log(io.load(io.save(head, tmp_path / f"head{suffix}")), head)


@pytest.mark.parametrize("suffix", io.SUFFIXES)
def test_a_log_without_history_round_trips(tmp_path, suffix):
    log = synthetic_log()  # H = 0: Parquet has no fixed-size list of size 0, so these are lists of empty lists
    log = dataclasses.replace(log, history_items=np.zeros((ROUNDS, 0, 3), np.int32),
                              history_clicks=np.zeros((ROUNDS, 0), np.int32),
                              history_feedback=np.zeros((ROUNDS, 0), np.float32))
    assert_same_log(io.load(io.save(log, tmp_path / f"log{suffix}")), log)


def test_parquet_is_one_row_per_round_for_pandas(tmp_path):
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    log = synthetic_log()
    table = pandas.read_parquet(io.save(log, tmp_path / "log.parquet"))
    assert len(table) == ROUNDS
    np.testing.assert_array_equal(np.stack(table["request"]), log.request)
    np.testing.assert_array_equal(np.stack(table["history_items"]), log.history_items.reshape(ROUNDS, -1))
    np.testing.assert_array_equal(table["state.active"], log.states["active"])


def test_unknown_suffix_names_the_supported_ones(tmp_path):
    for call in (lambda path: io.save(synthetic_log(), path), io.load):
        with pytest.raises(ValueError, match=r"log\.csv: rlrec saves logs as \.npz .* or \.parquet .*end the file"):
            call(tmp_path / "log.csv")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("suffix", io.SUFFIXES)
def test_missing_file_says_where_it_looked(tmp_path, suffix):
    with pytest.raises(FileNotFoundError, match=rf"No rlrec log at .*nothing{suffix}: check the path"):
        io.load(tmp_path / f"nothing{suffix}")


def test_foreign_files_are_not_logs(tmp_path):
    atomic_save_npz(tmp_path / "weights.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match=r"weights\.npz is not an rlrec log \(it has no rlrec_log entry.*rlrec\.ope"):
        io.load(tmp_path / "weights.npz")
    (tmp_path / "text.npz").write_text("not numpy")
    with pytest.raises(ValueError, match=r"text\.npz is not an rlrec log \(not a NumPy \.npz file"):
        io.load(tmp_path / "text.npz")
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises((ValueError, ImportError), match=r"text\.parquet is not an rlrec log|pip install pyarrow"):
        io.load(tmp_path / "text.parquet")


def test_foreign_parquet_is_not_a_log(tmp_path):
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pandas.DataFrame({"click": [0, 1]}).to_parquet(tmp_path / "clicks.parquet")
    with pytest.raises(ValueError, match=r"clicks\.parquet is not an rlrec log \(its Parquet schema metadata"):
        io.load(tmp_path / "clicks.parquet")


def rewrite_npz(path, change) -> None:
    """Rewrites an .npz log with ``change(meta, arrays)`` applied."""
    with np.load(path) as contents:
        arrays = {name: contents[name] for name in contents.files}
    meta = json.loads(str(arrays.pop(io.META_KEY)))
    change(meta, arrays)
    atomic_save_npz(path, **{io.META_KEY: np.asarray(json.dumps(meta))}, **arrays)


def test_a_log_missing_an_array_says_which(tmp_path):
    path = io.save(synthetic_log(), tmp_path / "log.npz")
    rewrite_npz(path, lambda meta, arrays: (arrays.pop("reward"), arrays.pop("state.interest")))
    with pytest.raises(ValueError, match=r"not a complete rlrec log \(missing \['reward', 'state.interest'\]\).*save "
                                         r"the log again"):
        io.load(path)


def test_a_newer_format_says_upgrade(tmp_path):
    path = io.save(synthetic_log(), tmp_path / "log.npz")
    rewrite_npz(path, lambda meta, arrays: meta.update(version=io.VERSION + 1))
    with pytest.raises(ValueError, match=rf"log\.npz was written by a newer rlrec \(log format version {io.VERSION + 1}"
                                         r"; this rlrec reads versions up to .*pip install --upgrade rlrec"):
        io.load(path)


def test_a_newer_parquet_format_says_upgrade(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = io.save(synthetic_log(), tmp_path / "log.parquet")
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[io.META_KEY.encode()])
    meta["version"] = io.VERSION + 1
    pq.write_table(table.replace_schema_metadata({io.META_KEY: json.dumps(meta)}), path)
    with pytest.raises(ValueError, match=r"log\.parquet was written by a newer rlrec .*pip install --upgrade rlrec"):
        io.load(path)


def test_parquet_without_pyarrow_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"pip install pyarrow \(or pip install 'rlrec\[dev\]'\).*\.npz"):
        io.save(synthetic_log(), tmp_path / "log.parquet")
    assert not list(tmp_path.iterdir())
    (tmp_path / "log.parquet").write_bytes(b"PAR1")
    with pytest.raises(ImportError, match=r"pip install pyarrow"):
        io.load(tmp_path / "log.parquet")


def _fail_midway(stream, *args, **kwargs):
    stream.write(b"PK\x03\x04half a file")
    raise OSError("disk full")


@pytest.mark.parametrize("suffix", io.SUFFIXES)
def test_a_write_that_fails_midway_leaves_no_file(tmp_path, monkeypatch, suffix):
    if suffix == ".npz":
        monkeypatch.setattr(np, "savez", _fail_midway)
    else:
        pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        monkeypatch.setattr(pq, "write_table", lambda table, stream, **kwargs: _fail_midway(stream))
    with pytest.raises(OSError, match="disk full"):
        io.save(synthetic_log(), tmp_path / f"log{suffix}")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("suffix", io.SUFFIXES)
def test_a_failed_overwrite_keeps_the_old_log(tmp_path, monkeypatch, suffix):
    old = synthetic_log(seed=1)
    path = io.save(old, tmp_path / f"log{suffix}")
    if suffix == ".npz":
        monkeypatch.setattr(np, "savez", _fail_midway)
    else:
        import pyarrow.parquet as pq

        monkeypatch.setattr(pq, "write_table", lambda table, stream, **kwargs: _fail_midway(stream))
    with pytest.raises(OSError, match="disk full"):
        io.save(synthetic_log(seed=2), path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert_same_log(io.load(path), old)


def test_rows_that_are_not_rounds_are_refused(tmp_path):
    log = dataclasses.replace(synthetic_log(), user=np.zeros(ROUNDS - 1, np.int32))
    with pytest.raises(ValueError, match=r"The log: user has shape \(11,\); a log of 12 rounds \(the length of "):
        io.save(log, tmp_path / "log.npz")
    assert not list(tmp_path.iterdir())


def test_obp_single_items_layout():
    log = synthetic_log(slate_size=1, greedy=False)
    feedback = io.to_obp(log)
    assert set(feedback) == {"n_rounds", "n_actions", "context", "action_context", "action", "position", "reward",
                             "pscore", "expected_reward_factual", "pi_b"}
    assert feedback["n_rounds"] == ROUNDS and feedback["n_actions"] == ITEMS
    assert type(feedback["n_rounds"]) is int and type(feedback["n_actions"]) is int
    expected = {"context": (np.float64, (ROUNDS, DIM)), "action": (np.int64, (ROUNDS,)),
                "position": (np.int64, (ROUNDS,)), "reward": (np.int64, (ROUNDS,)), "pscore": (np.float64, (ROUNDS,)),
                "expected_reward_factual": (np.float64, (ROUNDS,))}
    for key, (dtype, shape) in expected.items():
        assert feedback[key].dtype == dtype and feedback[key].shape == shape, key
    assert feedback["action_context"] is None and feedback["pi_b"] is None
    np.testing.assert_array_equal(feedback["context"], log.request)
    np.testing.assert_array_equal(feedback["action"], log.slate[:, 0])
    np.testing.assert_array_equal(feedback["position"], 0)
    np.testing.assert_array_equal(feedback["reward"], log.reward)
    np.testing.assert_array_equal(feedback["pscore"], log.propensity)
    np.testing.assert_array_equal(feedback["expected_reward_factual"], log.expected_reward)
    feedback["pscore"][0] = -1.0  # fresh arrays: the log is not changed
    assert log.propensity[0] > 0


def test_obp_slate_layout_is_long_and_slate_major():
    log = synthetic_log(slate_size=3)
    feedback = io.to_obp(log)
    rows = ROUNDS * 3
    assert set(feedback) == {"n_rounds", "n_unique_action", "len_list", "slate_id", "context", "action_context",
                             "action", "position", "reward", "expected_reward_factual", "expected_slate_reward_factual",
                             "pscore_cascade", "pscore", "pscore_item_position"}
    assert (feedback["n_rounds"], feedback["n_unique_action"], feedback["len_list"]) == (ROUNDS, ITEMS, 3)
    for key in ("slate_id", "action", "position", "reward"):
        assert feedback[key].dtype == np.int64 and feedback[key].shape == (rows,), key
    for key in ("pscore_cascade", "pscore", "pscore_item_position"):
        assert feedback[key].dtype == np.float64 and feedback[key].shape == (rows,), key
    assert feedback["context"].dtype == np.float64 and feedback["context"].shape == (ROUNDS, DIM)
    assert feedback["expected_reward_factual"] is None
    np.testing.assert_array_equal(feedback["expected_slate_reward_factual"], log.expected_reward)
    # Row 3 * t + j is round t's slot j.
    for t in (0, 5, ROUNDS - 1):
        for j in range(3):
            row = 3 * t + j
            assert feedback["slate_id"][row] == t and feedback["position"][row] == j
            assert feedback["action"][row] == log.slate[t, j]
            assert feedback["reward"][row] == log.clicks[t, j]
            assert feedback["pscore"][row] == log.propensity[t]
            assert feedback["pscore_cascade"][row] == log.prefix_propensity[t, j]
            assert feedback["pscore_item_position"][row] == log.slot_propensity[t, j]
    np.testing.assert_array_equal(feedback["pscore_cascade"][2::3], feedback["pscore"][2::3])  # whole slate = prefix


def test_obp_item_features_and_rewards_that_are_not_clicks():
    log = synthetic_log(slate_size=1)
    features = np.random.default_rng(0).normal(size=(ITEMS, 5)).astype(np.float32)
    feedback = io.to_obp(log, item_features=features)
    assert feedback["action_context"].dtype == np.float64
    np.testing.assert_array_equal(feedback["action_context"], features)
    with pytest.raises(ValueError, match=r"item_features must be \(num_items, features\) = \(30, f\)"):
        io.to_obp(log, item_features=features[:-1])
    ratings = dataclasses.replace(log, reward=log.reward * 0.5)
    assert io.to_obp(ratings)["reward"].dtype == np.float64


def test_obp_estimators_run_on_the_export():
    obp = pytest.importorskip("obp")
    from obp.ope import InverseProbabilityWeighting, SlateStandardIPS

    log = synthetic_log(slate_size=1, greedy=False)
    feedback = io.to_obp(log)
    action_dist = np.full((ROUNDS, ITEMS, 1), 1.0 / ITEMS)  # uniform target
    estimate = InverseProbabilityWeighting().estimate_policy_value(
        reward=feedback["reward"], action=feedback["action"], pscore=feedback["pscore"],
        position=feedback["position"], action_dist=action_dist)
    np.testing.assert_allclose(estimate, np.mean(log.reward / ITEMS / log.propensity))

    slates = synthetic_log(slate_size=3)
    feedback = io.to_obp(slates)
    target = np.full(ROUNDS * 3, 1.0 / (ITEMS * (ITEMS - 1) * (ITEMS - 2)))  # uniform ordered slates
    estimate = SlateStandardIPS(len_list=3).estimate_policy_value(
        slate_id=feedback["slate_id"], reward=feedback["reward"], pscore=feedback["pscore"],
        position=feedback["position"], evaluation_policy_pscore=target)
    np.testing.assert_allclose(estimate, np.mean(slates.reward * target[::3] / slates.propensity))
    assert obp.__version__
