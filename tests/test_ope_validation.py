"""Off-policy logs from disk are checked, never trusted: every field's range and finiteness, the env they came
from (its fingerprint), the .npz/Parquet layout before any data is read, and the memory a log will need.

Each case is one of issue 30's (items 1, 10, 11): a damaged or edited log gives one InputError naming the field,
the first bad round and value, and the fix, on load and before any estimate or truth. A tiny synthetic world
(10 items, slates of 2, the shapes of test_ope.py's epsilon-greedy slate logs, so the compiled program is shared).
"""

from __future__ import annotations

import dataclasses
import io as bytes_io
import json
import os
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
from synthetic import synthetic_env

from rlrec import _memory
from rlrec.agents.registry import make_agent
from rlrec.errors import InputError
from rlrec.files import atomic_save_npz
from rlrec.ope import collect, collector, evaluate, io, policies, true_value

ROUNDS = 2000  # test_ope.py's ROUNDS: one block of users, the program its epsilon-greedy slate logs compile
WORLD = dict(items=10, dim=8, users=16, slate_size=2)


@pytest.fixture(scope="module")
def world():
    return synthetic_env("MovieLens-BanditSlate-v0", **WORLD)


@pytest.fixture(scope="module")
def log(world):
    env, params = world
    behaviour = policies.EpsilonGreedy(agent=make_agent("text-match", env), state=(), slate_size=2, epsilon=0.5)
    return collect(env, params, behaviour, ROUNDS, seed=0)


@pytest.fixture(scope="module")
def target(world):
    return policies.Uniform(slate_size=2)


def changed(log, **arrays):
    """A copy of ``log`` with the given arrays edited in place of its own (the others shared)."""
    return dataclasses.replace(log, **arrays)


def first_click(log) -> int:
    return int(np.flatnonzero(log.reward)[0])


def with_value(array, index, value):
    array = array.copy()
    array[index] = value
    return array


# Each: (the edit, the message). The message names the field, the first bad round and its value, and the fix.
CORRUPT = {
    "slate id 10^6": (lambda log: changed(log, slate=with_value(log.slate, (3, 1), 10**6)),
                      r"slate must hold item ids in \[0, 10\).*round 3 has 1000000"),
    "slate id -5": (lambda log: changed(log, slate=with_value(log.slate, (7, 0), -5)),
                    r"slate must hold item ids in \[0, 10\).*round 7 has -5"),
    "rewards x7": (lambda log: changed(log, reward=log.reward * 7),
                   r"reward must be 0 or 1.*round {click} has 7\.0"),
    "all clicks 1": (lambda log: changed(log, clicks=np.ones_like(log.clicks)),
                     r"clicks .*at most one click per round.*round 0 has 2\.0"),
    "reward without its click": (lambda log: changed(log, reward=with_value(log.reward, first_click(log), 0.0)),
                                 r"reward must equal the round's clicks.*round {click} has 0\.0"),
    "NaN request": (lambda log: changed(log, request=with_value(log.request, (5, 2), np.nan)),
                    r"request must be finite.*round 5 has nan"),
    "history item 10": (lambda log: changed(log, history_items=with_value(log.history_items, (4, 0, 1), 10)),
                        r"history_items must hold item ids in \[-1, 10\).*round 4 has 10"),
    "propensity 2": (lambda log: changed(log, slot_propensity=with_value(log.slot_propensity, (9, 1), 2.0)),
                     r"slot_propensity must hold probabilities in \(0, 1\].*round 9 has 2\.0"),
    "propensity not the slate's": (lambda log: changed(log, propensity=log.propensity * 0.5),
                                   r"propensity must equal prefix_propensity\[:, -1\].*round 0"),
    "NaN expected reward": (lambda log: changed(log, expected_reward=with_value(log.expected_reward, 11, np.nan)),
                            r"expected_reward must be .*round 11 has nan"),
    "NaN hidden state": (lambda log: changed(log, states={**log.states, "interest": with_value(
                             log.states["interest"], (12, 0), np.inf)}),
                         r"state\.interest must be finite.*round 12 has inf"),
}


def corrupt(log, case):
    edit, message = CORRUPT[case]
    return edit(log), message.replace("{click}", str(first_click(log)))


def write_unchecked(log, path):
    """Writes ``log`` as io.save lays it out, without io.save's checks: a file edited or damaged on disk."""
    meta, arrays = io._flatten(log)
    if path.suffix == ".npz":
        atomic_save_npz(path, **{io.META_KEY: np.asarray(json.dumps(meta))}, **arrays)
    else:
        io._save_parquet(path, meta, arrays)
    return path


FIX = r"collect the log again"


# -- item 1: every field's range and finiteness -------------------------------------------------------------------

def test_a_collected_log_passes_every_check(world, log):
    env, params = world
    log.check()
    collector.check_log(log, env, params)
    assert log.env_fingerprint == collector.env_fingerprint(env, params)


@pytest.mark.parametrize("case", CORRUPT)
def test_estimates_and_truth_refuse_a_bad_field(world, log, target, case):
    env, params = world
    bad, message = corrupt(log, case)
    for call in (lambda: evaluate(env, params, bad, target), lambda: true_value(env, params, target, bad)):
        with pytest.raises(InputError, match=message + ".*" + FIX):
            call()


@pytest.mark.parametrize("suffix", io.SUFFIXES)
@pytest.mark.parametrize("case", CORRUPT)
def test_load_refuses_a_bad_field_naming_the_file(tmp_path, log, case, suffix):
    bad, message = corrupt(log, case)
    path = write_unchecked(bad, tmp_path / f"log{suffix}")
    with pytest.raises(InputError, match=rf"log\{suffix}: " + message + ".*" + FIX):
        io.load(path)


def test_save_refuses_a_bad_log_and_writes_nothing(tmp_path, log):
    bad, message = corrupt(log, "rewards x7")
    with pytest.raises(InputError, match=message):
        io.save(bad, tmp_path / "log.npz")
    assert not list(tmp_path.iterdir())


# -- item 1: the env a log came from -------------------------------------------------------------------------------

OTHER_ENVS = {"cascade": (dict(choice_model="cascade"), r"choice_model: 'mnl' in the log's env, 'cascade' in this one"),
              "no_click_logit=5": (dict(no_click_logit=5.0), r"params\.no_click_logit: float32 3\.0 in the log's env, "
                                                             r"float32 5\.0 in this one")}


@pytest.mark.parametrize("other", OTHER_ENVS)
def test_another_env_of_the_same_sizes_is_refused(tmp_path, log, target, other):
    overrides, difference = OTHER_ENVS[other]
    env, params = synthetic_env("MovieLens-BanditSlate-v0", **WORLD, **overrides)
    message = (r"collected on MovieLens-BanditSlate-v0, which differs from this env \(MovieLens-BanditSlate-v0\) in "
               + difference + r".*pass the env and params the log was collected on")
    loaded = io.load(io.save(log, tmp_path / "log.npz"))
    for each in (log, loaded):
        for call in (lambda: evaluate(env, params, each, target), lambda: true_value(env, params, target, each)):
            with pytest.raises(InputError, match=message):
                call()


def test_the_fingerprint_is_the_same_in_another_process(world):
    """Array bytes and float32 values, never Python's salted hash(): another process (another PYTHONHASHSEED)
    computes the same fingerprint."""
    env, params = world
    script = ("import json; from synthetic import synthetic_env; from rlrec.ope import collector; "
              f"print(json.dumps(collector.env_fingerprint(*synthetic_env('MovieLens-BanditSlate-v0', **{WORLD!r}))))")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(__file__), env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert json.loads(run.stdout.strip().splitlines()[-1]) == collector.env_fingerprint(env, params)


def test_the_fingerprint_follows_params_given_as_python_numbers(world):
    """``params.replace(no_click_logit=3.0)`` is the same env as the float32 3.0 rlrec.make put there."""
    env, params = world
    assert collector.env_fingerprint(env, params.replace(no_click_logit=3.0)) == collector.env_fingerprint(env, params)
    assert collector.env_fingerprint(env, params.replace(no_click_logit=3.5)) != collector.env_fingerprint(env, params)


def test_a_log_of_format_1_loads_and_warns_that_its_env_is_unchecked(tmp_path, world, log):
    """Logs saved before the fingerprint (format 1) still load, fully checked; evaluating one warns that its env
    cannot be checked, and says how to have it checked."""
    env, params = world
    path = io.save(log, tmp_path / "log.npz")
    with np.load(path) as contents:
        arrays = {name: contents[name] for name in contents.files}
    meta = json.loads(str(arrays.pop(io.META_KEY)))
    del meta["env_fingerprint"]
    meta["version"] = 1
    atomic_save_npz(path, **{io.META_KEY: np.asarray(json.dumps(meta))}, **arrays)
    old = io.load(path)
    assert old.env_fingerprint is None
    with pytest.warns(UserWarning, match=r"no env fingerprint.*cannot check.*collect it again"):
        collector.check_log(old, env, params)


# -- item 11: the file's layout, before reading data ---------------------------------------------------------------

def npy_header(shape, dtype="<f4") -> bytes:
    header = bytes_io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    return header.getvalue()


def rewrite_members(path, replace=None, add=None):
    """Rewrites the zip at ``path`` with some members' bytes replaced and others added (streamed, compressed)."""
    replace, add = replace or {}, add or {}
    source = path.with_suffix(".old")
    os.replace(path, source)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info.filename, replace.get(info.filename, old.read(info.filename)))
        for name, chunks in add.items():
            with new.open(name, "w", force_zip64=True) as stream:
                for chunk in chunks():
                    stream.write(chunk)
    source.unlink()


def zeros_entry(megabytes: int):
    """An .npy of ``megabytes`` MB of float32 zeros, in 1 MB chunks (a few hundred KB compressed)."""
    def chunks():
        yield npy_header((megabytes * 2**18,))
        for _ in range(megabytes):
            yield bytes(2**20)
    return chunks


def test_an_unused_compressed_entry_is_never_decompressed(tmp_path, log):
    """A small file with a 256 MB compressed entry the log does not declare loads without reading it (tracemalloc
    sees NumPy's allocations: far below the entry)."""
    path = io.save(log, tmp_path / "log.npz")
    rewrite_members(path, add={"unused.npy": zeros_entry(256)})
    assert path.stat().st_size < 4 * 2**20
    tracemalloc.start()
    try:
        loaded = io.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, peak
    assert loaded.num_rounds == ROUNDS


@pytest.mark.parametrize("entry", ["request.npy", "state.interest.npy"])
def test_a_header_claiming_8_petabytes_is_refused_before_reading(tmp_path, log, entry):
    path = io.save(log, tmp_path / "log.npz")
    rewrite_members(path, replace={entry: npy_header((10**15, 2)) + bytes(64)})
    with pytest.raises(InputError, match=rf"log\.npz: entry {entry.removesuffix('.npy')} .*\(1000000000000000, 2\).*"
                                         r"save the log again"):
        io.load(path)


def test_a_header_of_other_sizes_than_the_log_is_refused(tmp_path, log):
    path = io.save(log, tmp_path / "log.npz")
    slate = np.zeros((ROUNDS, 3), np.int32)  # slates of 3 in a log of slates of 2
    buffer = bytes_io.BytesIO()
    np.save(buffer, slate)
    rewrite_members(path, replace={"slate.npy": buffer.getvalue()})
    with pytest.raises(InputError, match=r"log\.npz: slate has shape \(2000, 3\); a log of 2000 rounds .*of slates "
                                         r"of 2 has \(2000, 2\)"):
        io.load(path)


@pytest.mark.parametrize("suffix", io.SUFFIXES)
def test_a_truncated_file_is_one_clear_error(tmp_path, log, suffix):
    path = io.save(log, tmp_path / f"log{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=rf"log\{suffix} is not an rlrec log \(not a .*damaged.*save the log again"):
        io.load(path)


def test_an_entry_shorter_than_its_header_is_one_clear_error(tmp_path, log):
    path = io.save(log, tmp_path / "log.npz")
    buffer = bytes_io.BytesIO()
    np.save(buffer, log.reward)
    rewrite_members(path, replace={"reward.npy": buffer.getvalue()[:-8]})
    with pytest.raises(InputError, match=r"log\.npz: entry reward .*save the log again"):
        io.load(path)


def test_a_flipped_byte_is_one_clear_error(tmp_path, log):
    """A byte of an entry's data changed on disk: the zip's checksum refuses it, as one clear error."""
    path = io.save(log, tmp_path / "log.npz")
    data = bytearray(path.read_bytes())
    where = data.find(log.request.tobytes()[:64])
    assert where > 0
    data[where + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"log\.npz: entry request .*CRC.*save the log again"):
        io.load(path)


def test_load_refuses_a_log_larger_than_memory(tmp_path, log, monkeypatch):
    path = io.save(log, tmp_path / "log.npz")
    monkeypatch.setattr(_memory, "available_bytes", lambda: 100_000)
    with pytest.raises(InputError, match=r"log\.npz needs .* of memory .* available"):
        io.load(path)


def test_parquet_columns_of_another_layout_are_refused(tmp_path, log):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = io.save(log, tmp_path / "log.parquet")
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[io.META_KEY.encode()])
    meta["columns"]["request"]["shape"] = [1000, 1000]  # declared shape the column does not have
    pq.write_table(table.replace_schema_metadata({io.META_KEY: json.dumps(meta)}), path)
    with pytest.raises(InputError, match=r"log\.parquet: .*request.*save the log again"):
        io.load(path)


# -- item 10: memory bounds of collect -----------------------------------------------------------------------------

def test_collect_refuses_10_billion_rounds_before_allocating(world, log, monkeypatch):
    env, params = world
    monkeypatch.setattr(collector, "_collect_block", lambda *args, **kwargs: pytest.fail("a block was compiled"))
    with pytest.raises(InputError, match=r"10,000,000,000 rounds .* need about .* of memory .* available.*"
                                         r"at most ([\d,]+) rounds"):
        collect(env, params, policies.Uniform(slate_size=2), 10**10)


def test_collect_names_the_largest_size_that_fits(world, monkeypatch):
    env, params = world
    uniform = policies.Uniform(slate_size=2)
    monkeypatch.setattr(_memory, "available_bytes", lambda: 50 * 2**20)
    with pytest.raises(InputError, match=r"at most ([\d,]+) rounds") as refused:
        collector.check_memory(env, params, uniform, 10**9, steps_per_user=4)
    fits = int(refused.value.args[0].split("at most ")[1].split(" rounds")[0].replace(",", ""))
    assert fits % 4 == 0 and fits > 0
    collector.check_memory(env, params, uniform, fits, steps_per_user=4)
    with pytest.raises(InputError, match="at most"):
        collector.check_memory(env, params, uniform, fits + 4, steps_per_user=4)


@pytest.mark.parametrize("rounds", [1e10, 2.5, "100", True])
def test_collect_takes_whole_numbers_of_rounds(world, rounds, monkeypatch):
    env, params = world
    monkeypatch.setattr(collector, "_collect_block", lambda *args, **kwargs: pytest.fail("a block was compiled"))
    with pytest.raises(InputError, match=r"num_rounds must be a whole number"):
        collect(env, params, policies.Uniform(slate_size=2), rounds)
