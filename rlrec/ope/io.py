"""Save and load a :class:`~rlrec.ope.log.Log` (``.npz`` or Parquet), and export it to Open Bandit Pipeline.

Two file formats, chosen by the path's suffix, both written atomically (a temporary file in the same folder, then
``os.replace``: a killed or failed write leaves the old file or none, never half of one), both loading back every
array with exactly the dtype and shape it was saved with:

- ``.npz`` (NumPy only): one entry per array (the hidden states as ``state.<field>``), plus ``rlrec_log``, a JSON
  string with the log's facts and the format version. No pickle: loaded with ``allow_pickle=False``.
- ``.parquet`` (needs pyarrow, in rlrec's ``dev`` extra): one row per round, so ``pandas.read_parquet(path)`` gives
  a table to browse. A field with one number per round is a plain column; one with more (``request`` ``(d,)``,
  ``slate`` ``(k,)``, ``history_items`` ``(H, k)``, ...) a fixed-size list column of the row's values flattened in C
  order. The facts, the format version and every column's per-round shape and NumPy dtype are JSON in the schema
  metadata under ``rlrec_log``.

A file is never trusted. :func:`load` reads the facts first, then only the arrays they declare (an entry or column
some other tool added is never read, let alone decompressed): each one's shape and dtype, from its ``.npy``
header or Parquet schema, are checked against the log's own sizes, and their total against the memory available,
before any data is read. The log is then checked field by field (:meth:`~rlrec.ope.log.Log.check`), as
:func:`save` checks it before writing. A damaged file (cut short, a byte changed, a header that disagrees with its
data) is one :class:`~rlrec.errors.InputError` naming the file. Format 2 added the env's fingerprint (the facts'
``env_fingerprint``); a format 1 log loads with none, and evaluating it warns that its env cannot be checked.

:func:`to_obp` exports a log as Open Bandit Pipeline's ``bandit_feedback`` dictionary (single items or slates), so
OBP's estimators run on rlrec's logs and their answers can be checked against :func:`rlrec.ope.true_value`.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from rlrec import _memory
from rlrec.errors import InputError, MissingPathError
from rlrec.files import atomic_open, atomic_save_npz
from rlrec.ope.log import STATE_PREFIX, Log, check_layout

FORMAT = "rlrec-ope-log"
VERSION = 2  # raise when a saved field changes meaning; load refuses logs of a newer version
META_KEY = "rlrec_log"  # the npz entry / Parquet schema metadata key holding the facts
SUFFIXES = (".npz", ".parquet")
# The log's scalar facts (saved as JSON); its arrays are Log.ROUND_FIELDS, behaviour_greedy and the states.
FACT_FIELDS = ("env_id", "behaviour", "behaviour_kind", "behaviour_settings", "num_items", "slate_size", "seed",
               "state_class", "propensity_samples", "env_fingerprint")
# Facts added after format 1, by the version that added them: a log of an older format loads with None.
_ADDED_FACTS = {"env_fingerprint": 2}
_INTEGER_FACTS = ("num_items", "slate_size", "seed", "propensity_samples")
# The facts' JSON entry of an .npz may hold at most this many bytes (a log's are a few KB): a bound on what a
# damaged header can make load allocate before it knows the file is a log.
META_LIMIT = 2**24
# What reading an .npz entry raises when the file is damaged (zipfile: a bad CRC; NumPy: a bad header, short data).
_DAMAGED = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)
_PYARROW_MISSING = ("Parquet logs need pyarrow: pip install pyarrow (or pip install 'rlrec[dev]'); or save the log "
                    "as .npz, which needs only NumPy.")


def save(log: Log, path: str | os.PathLike) -> Path:
    """Writes ``log`` to ``path`` atomically, as ``.npz`` or ``.parquet`` by its suffix (see the module docstring).

    Args:
        log: the log to save, checked first (:meth:`~rlrec.ope.log.Log.check`: nothing is written if a field is
            bad); its arrays may be NumPy or JAX arrays (saved as NumPy, dtypes kept). Its ``behaviour_settings``
            are saved as JSON: NumPy scalars come back as Python numbers, tuples as lists.
        path: where to write, ending in ``.npz`` or ``.parquet``; its folder is created if missing.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    suffix = _suffix(path)
    log.check()
    meta, arrays = _flatten(log)
    if suffix == ".npz":
        atomic_save_npz(path, **{META_KEY: np.asarray(json.dumps(meta))}, **arrays)
    else:
        _save_parquet(path, meta, arrays)
    return path


def load(path: str | os.PathLike) -> Log:
    """Reads a log written by :func:`save` (``.npz`` or ``.parquet``, by suffix), arrays as NumPy.

    Raises:
        InputError: the file is not a log, is damaged, is of a newer format, would not fit in the memory
            available, or holds a field :meth:`~rlrec.ope.log.Log.check` refuses; the message names the file.
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise MissingPathError(f"No rlrec log at {path}: check the path (logs are written by rlrec.ope.io.save).")
    meta, arrays = _load_npz(path) if suffix == ".npz" else _load_parquet(path)
    return _unflatten(path, meta, arrays)


def _suffix(path: Path) -> str:
    if path.suffix not in SUFFIXES:
        raise InputError(f"{path}: rlrec saves logs as .npz (NumPy) or .parquet (pandas/pyarrow), not "
                         f"{path.suffix or 'a file without a suffix'!r}; end the file name with one of {SUFFIXES}.")
    return path.suffix


def _json_value(value: Any) -> Any:
    """NumPy/JAX scalars and arrays in ``behaviour_settings`` as plain JSON values."""
    if isinstance(value, np.generic) or getattr(value, "ndim", None) == 0:
        return np.asarray(value).item()
    if hasattr(value, "__array__"):
        return np.asarray(value).tolist()
    raise TypeError(f"behaviour_settings values must be numbers, strings, lists or dicts; got {type(value).__name__}.")


def _flatten(log: Log) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The log as (facts, arrays by entry name)."""
    meta = {"format": FORMAT, "version": VERSION, **{name: getattr(log, name) for name in FACT_FIELDS},
            "states": list(log.states)}
    for name in _INTEGER_FACTS:
        meta[name] = int(meta[name])
    meta["behaviour_settings"] = json.loads(json.dumps(log.behaviour_settings, default=_json_value))
    return meta, log.arrays()


def _declared(path: Path, meta: Any, present: set[str]) -> list[str]:
    """The arrays the facts ``meta`` declare (those of ``present`` that the log has), after checking that the
    facts are a complete log of a format this rlrec reads."""
    if not isinstance(meta, dict):
        raise InputError(f"{path} is not an rlrec log (its {META_KEY} entry is not a JSON object); logs are written "
                         "by rlrec.ope.io.save.")
    if meta.get("format") != FORMAT or not isinstance(meta.get("version"), int):
        raise InputError(f"{path} is not an rlrec log (its {META_KEY} entry names format {meta.get('format')!r}, "
                         f"not {FORMAT!r}); logs are written by rlrec.ope.io.save.")
    if meta["version"] > VERSION:
        raise InputError(f"{path} was written by a newer rlrec (log format version {meta['version']}; this rlrec "
                         f"reads versions up to {VERSION}): upgrade rlrec (pip install --upgrade rlrec) to read it.")
    for name, version in _ADDED_FACTS.items():
        if meta["version"] < version:
            meta[name] = None
    states = meta.get("states", [])
    if not isinstance(states, list) or not all(isinstance(state, str) for state in states):
        raise InputError(f"{path} is not an rlrec log (its states are {states!r}, not a list of field names); save "
                         "the log again.")
    needed = [*Log.ROUND_FIELDS, *(STATE_PREFIX + state for state in states)]
    missing = [name for name in (*FACT_FIELDS, "states") if name not in meta]
    missing += [name for name in needed if name not in present]
    if missing:
        raise InputError(f"{path} is not a complete rlrec log (missing {missing}): it was damaged or not written by "
                         "rlrec.ope.io.save; save the log again.")
    return needed + (["behaviour_greedy"] if "behaviour_greedy" in present else [])


def _check_layout(path: Path, meta: dict[str, Any], layout: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Raises unless the declared shapes are the log's own (:func:`~rlrec.ope.log.check_layout`) and the arrays fit
    in the memory available: before any data is read."""
    slate_size = meta["slate_size"]
    if not isinstance(slate_size, int) or isinstance(slate_size, bool) or slate_size < 1:
        raise InputError(f"{path}: slate_size must be a whole number >= 1, got {slate_size!r}; save the log again.")
    rounds = check_layout(layout, slate_size, str(path))
    needed = sum(math.prod(shape) * dtype.itemsize for shape, dtype in layout.values())
    available = _memory.available_bytes()
    if available is not None and needed > available:
        raise InputError(f"{path} needs {_memory.describe(needed)} of memory to load ({rounds:,} rounds), and "
                         f"{_memory.describe(available)} is available: load it on a machine with more memory (or "
                         "free some), or save a shorter log (log.head(rounds)) where it was collected.")


def _unflatten(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Log:
    """The :class:`Log` of what :func:`_flatten` made, checked field by field."""
    log = Log(**{name: meta[name] for name in FACT_FIELDS},
              **{name: arrays[name] for name in Log.ROUND_FIELDS},
              states={state: arrays[STATE_PREFIX + state] for state in meta["states"]},
              behaviour_greedy=arrays.get("behaviour_greedy"))
    log.check(str(path))
    return log


def _not_a_log(path: Path, what: str, error: Exception) -> InputError:
    return InputError(f"{path} is not an rlrec log ({what}: {error}); the file is damaged (e.g. cut short) or not a "
                      "log: save the log again (logs are written by rlrec.ope.io.save).")


def _damaged(path: Path, part: str, error: Exception | str) -> InputError:
    """The error of a damaged ``part`` (``"entry request"``, ``"column slate"``) of a log's file."""
    return InputError(f"{path}: {part} is damaged ({error}); the file was cut short or changed after it was "
                      "written: save the log again (rlrec.ope.io.save).")


def _load_npz(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The facts, then only the entries they declare, each header checked before its data is read."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise _not_a_log(path, "not a NumPy .npz file", error) from None
    with archive:
        entries = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        if META_KEY not in entries:
            raise InputError(f"{path} is not an rlrec log (it has no {META_KEY} entry, only {list(entries)[:8]}); "
                             "logs are written by rlrec.ope.io.save.")
        shape, dtype = _entry_header(path, archive, META_KEY, entries[META_KEY])
        if shape != () or dtype.kind != "U" or dtype.itemsize > META_LIMIT:
            raise InputError(f"{path} is not an rlrec log (its {META_KEY} entry is {dtype} {shape}, not a JSON "
                             "string); logs are written by rlrec.ope.io.save.")
        try:
            meta = json.loads(str(_read_entry(path, archive, META_KEY, entries[META_KEY])))
        except ValueError as error:
            raise _not_a_log(path, f"its {META_KEY} entry is not JSON", error) from None
        names = _declared(path, meta, set(entries))
        layout = {name: _entry_header(path, archive, name, entries[name]) for name in names}
        _check_layout(path, meta, layout)
        arrays = {name: _read_entry(path, archive, name, entries[name]) for name in names}
    return meta, arrays


def _entry_header(path: Path, archive: zipfile.ZipFile, name: str,
                  info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """An entry's shape and dtype from its ``.npy`` header, which must agree with the entry's size in the zip
    (a header claiming petabytes over a few bytes of data is damage, found before anything is allocated)."""
    try:
        with archive.open(info) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
            else:  # 3.0 (UTF-8 field names) is never written for a log's plain dtypes
                raise ValueError(f".npy format version {version}, which rlrec does not write")
            offset = stream.tell()
    except _DAMAGED as error:
        raise _damaged(path, f"entry {name}", error) from None
    if dtype.hasobject:  # unpickling could run code: never read from a file
        raise InputError(f"{path}: entry {name} holds Python objects (dtype object), which rlrec never reads from a "
                         "file; logs hold numbers only: save the log again (rlrec.ope.io.save).")
    size = math.prod(shape) * dtype.itemsize
    if info.file_size != offset + size:
        raise _damaged(path, f"entry {name}", f"its header declares {dtype} {shape}, {_memory.describe(size)}, but "
                                              f"the entry holds {_memory.describe(max(info.file_size - offset, 0))}")
    return shape, dtype


def _read_entry(path: Path, archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo) -> np.ndarray:
    try:
        with archive.open(info) as stream:
            return np.lib.format.read_array(stream, allow_pickle=False)
    except _DAMAGED as error:
        raise _damaged(path, f"entry {name}", error) from None


def _import_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise ImportError(_PYARROW_MISSING) from error
    return pyarrow, pyarrow.parquet


def _save_parquet(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """One row per round; per-round shapes and dtypes in the schema metadata (the columns lose the shapes)."""
    pa, pq = _import_pyarrow()
    columns, layout = {}, {}
    for name, value in arrays.items():
        shape = value.shape[1:]
        layout[name] = {"shape": list(shape), "dtype": value.dtype.str}
        if not shape:
            columns[name] = pa.array(value)
            continue
        size = int(np.prod(shape))
        values = pa.array(np.ascontiguousarray(value).reshape(-1))
        if size:
            columns[name] = pa.FixedSizeListArray.from_arrays(values, size)
        else:  # pyarrow has no fixed-size list of size 0: a list column of empty lists
            columns[name] = pa.ListArray.from_arrays(pa.array(np.zeros(len(value) + 1, np.int32)), values)
    table = pa.table(columns).replace_schema_metadata({META_KEY: json.dumps({**meta, "columns": layout})})
    with atomic_open(path, "wb") as stream:
        pq.write_table(table, stream)


def _load_parquet(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The facts from the schema, then only the declared columns, each column's type checked before reading."""
    pa, pq = _import_pyarrow()
    try:
        parquet = pq.ParquetFile(path)
        schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
    except (OSError, pa.ArrowException) as error:
        raise _not_a_log(path, "not a Parquet file", error) from None
    with parquet:
        stored = (schema.metadata or {}).get(META_KEY.encode())
        if stored is None:
            raise InputError(f"{path} is not an rlrec log (its Parquet schema metadata has no {META_KEY} entry); "
                             "logs are written by rlrec.ope.io.save.")
        try:
            meta = json.loads(stored)
        except ValueError as error:
            raise _not_a_log(path, f"its {META_KEY} metadata is not JSON", error) from None
        columns = meta.pop("columns", {}) if isinstance(meta, dict) else {}
        if not isinstance(columns, dict):
            raise _not_a_log(path, f"its {META_KEY} metadata's columns", TypeError(f"{columns!r} is not a dict"))
        names = _declared(path, meta, set(schema.names) & set(columns))  # a column another tool added: not read
        layout = {name: _column_layout(path, name, columns[name], schema.field(name).type, rows, pa)
                  for name in names}
        _check_layout(path, meta, layout)
        try:
            table = parquet.read(columns=names)
        except (OSError, pa.ArrowException) as error:
            raise _damaged(path, f"columns {names}", error) from None
    arrays = {}
    for name in names:
        shape, dtype = layout[name]
        try:
            column = table.column(name).combine_chunks()
            if len(shape) > 1:
                column = column.flatten()
            values = column.to_numpy(zero_copy_only=False)
            arrays[name] = np.array(values, dtype=dtype).reshape(shape)  # a copy: writable
        except (ValueError, TypeError, pa.ArrowException) as error:  # nulls, say, where numbers were declared
            raise _damaged(path, f"column {name}", error) from None
    return meta, arrays


def _column_layout(path: Path, name: str, declared: Any, column_type, rows: int,
                   pa) -> tuple[tuple[int, ...], np.dtype]:
    """A column's ``(shape, dtype)`` as its metadata declares it, checked against the column's Parquet type."""
    try:
        per_round = tuple(int(size) for size in declared["shape"])
        dtype = np.dtype(declared["dtype"])
        if any(size < 0 for size in per_round):
            raise ValueError("a negative size")
    except (KeyError, TypeError, ValueError) as error:
        raise _damaged(path, f"column {name}", f"its declared layout {declared!r} is not a shape and dtype: "
                                               f"{error}") from None
    size = math.prod(per_round)
    value_type = column_type
    if per_round:
        fixed = pa.types.is_fixed_size_list(column_type) and column_type.list_size == size
        value_type = column_type.value_type if fixed or (size == 0 and pa.types.is_list(column_type)) else None
    try:
        same = value_type is not None and np.dtype(value_type.to_pandas_dtype()) == dtype
    except (NotImplementedError, TypeError):
        same = False
    if not same:
        raise _damaged(path, f"column {name}", f"it holds {column_type}, not the {dtype} {list(per_round)} per "
                                               "round its metadata declares")
    return (rows, *per_round), dtype


def to_obp(log: Log, *, item_features: np.ndarray | None = None) -> dict[str, Any]:
    """The log as Open Bandit Pipeline's ``bandit_feedback`` dictionary, for OBP's estimators.

    Single items (``slate_size == 1``) follow ``obp.dataset.SyntheticBanditDataset.obtain_batch_bandit_feedback``
    and ``obp.dataset.OpenBanditDataset.obtain_batch_bandit_feedback`` (``n`` rounds):

    - ``n_rounds``, ``n_actions`` (int): rounds, catalog size.
    - ``context``: float64 ``(n, d)``, the request embedding (the float32 request, exactly).
    - ``action_context``: float64 ``(n_actions, f)``, ``item_features`` when given; else ``None``. OBP's synthetic
      dataset fills in a one-hot identity, and OBP's ``RegressionModel`` builds that same identity itself when
      given ``None``, so ``None`` works where the identity does without a ``(num_items, num_items)`` matrix (a
      9,066-item catalog: 0.66 GB). Pass ``item_features=np.eye(log.num_items)`` for the literal one-hot.
    - ``action``: int64 ``(n,)``, the item shown.
    - ``position``: int64 ``(n,)`` zeros, the one slot, as ``OpenBanditDataset`` logs it (its position 0 of a
      ``len_list`` of 1). OBP's synthetic data writes ``None``, which its estimators read as zeros: both work.
    - ``reward``: int64 ``(n,)`` clicks, as ``OpenBanditDataset`` and binary ``SyntheticBanditDataset`` give
      them; a log whose rewards are not all 0 or 1 (none of rlrec's envs today) gives float64, OBP's layout of
      continuous rewards.
    - ``pscore``: float64 ``(n,)``, the behaviour policy's probability of the item shown (``log.propensity``).
    - ``expected_reward_factual``: float64 ``(n,)``, the exact click probability of the item shown
      (``log.expected_reward``; OBP's synthetic data computes this same vector under this name before drawing
      rewards). OBP's ``expected_reward`` ``(n, n_actions)`` is left out: the log knows only the shown item's;
      :func:`rlrec.ope.true_value` gives any target policy's exact value instead.
    - ``pi_b``: ``None``; the log keeps the behaviour's probability of what it showed, not of every item.

    Slates (``slate_size = k > 1``) follow ``obp.dataset.SyntheticSlateBanditDataset.obtain_batch_bandit_feedback``:
    long format, one row per (round, slot), slate-major (round 0's slots 0..k-1, then round 1's), ``n * k`` rows:

    - ``n_rounds``, ``n_unique_action`` (int), ``len_list`` (int, ``k``; the dataset's attribute in OBP, which the
      slate estimators take as an argument).
    - ``slate_id``: int64 ``(n * k,)``, the round of each row; ``position``: int64 ``(n * k,)``, its slot.
    - ``context``: float64 ``(n, d)``, one per slate; ``action_context``: as above.
    - ``action``: int64 ``(n * k,)``, the item in that slot; ``reward``: int64 ``(n * k,)``, its click (as above).
    - ``pscore``: float64 ``(n * k,)``, the whole slate's probability (``log.propensity``, repeated on its rows),
      what OBP's ``SlateStandardIPS`` weights by.
    - ``pscore_cascade``: float64 ``(n * k,)``, the probability of the slate's slots 0..j (``log.prefix_propensity``),
      for ``SlateRewardInteractionIPS``.
    - ``pscore_item_position``: float64 ``(n * k,)``, the probability that this item is in this slot
      (``log.slot_propensity``), for ``SlateIndependentIPS``.
    - ``expected_reward_factual``: ``None``. OBP's is the expected click of each slot, which the log does not
      know (its choice model splits one click between the slots as a whole); the exact expected clicks of each
      whole slate are under ``expected_slate_reward_factual``, float64 ``(n,)``: its mean is the behaviour's exact
      value, the sum over slots that OBP's slate estimators estimate.

    Args:
        log: the log to export.
        item_features: optional ``(num_items, f)`` features of the items, for ``action_context``.

    Returns:
        The ``bandit_feedback`` dictionary (fresh arrays; the log is not changed).
    """
    rounds, slate_size = log.num_rounds, int(log.slate_size)
    slate = np.asarray(log.slate)
    if slate.shape != (rounds, slate_size):
        raise InputError(f"log.slate has shape {slate.shape}; a log of {rounds} rounds of slates of {slate_size} "
                         f"has ({rounds}, {slate_size}).")
    action_context = None
    if item_features is not None:
        action_context = np.array(item_features, dtype=np.float64)
        if action_context.ndim != 2 or action_context.shape[0] != log.num_items:
            raise InputError(f"item_features must be (num_items, features) = ({log.num_items}, f), one row per item "
                             f"of the log's catalog; got shape {action_context.shape}.")
    context = np.array(log.request, dtype=np.float64)
    if slate_size == 1:
        return {
            "n_rounds": rounds,
            "n_actions": int(log.num_items),
            "context": context,
            "action_context": action_context,
            "action": slate[:, 0].astype(np.int64),
            "position": np.zeros(rounds, np.int64),
            "reward": _obp_reward(np.asarray(log.reward)),
            "pscore": np.array(log.propensity, dtype=np.float64),
            "expected_reward_factual": np.array(log.expected_reward, dtype=np.float64),
            "pi_b": None,
        }
    return {
        "n_rounds": rounds,
        "n_unique_action": int(log.num_items),
        "len_list": slate_size,
        "slate_id": np.repeat(np.arange(rounds, dtype=np.int64), slate_size),
        "context": context,
        "action_context": action_context,
        "action": slate.astype(np.int64).reshape(-1),
        "position": np.tile(np.arange(slate_size, dtype=np.int64), rounds),
        "reward": _obp_reward(np.asarray(log.clicks).reshape(-1)),
        "expected_reward_factual": None,
        "expected_slate_reward_factual": np.array(log.expected_reward, dtype=np.float64),
        "pscore_cascade": np.array(log.prefix_propensity, dtype=np.float64).reshape(-1),
        "pscore": np.repeat(np.asarray(log.propensity, dtype=np.float64), slate_size),
        "pscore_item_position": np.array(log.slot_propensity, dtype=np.float64).reshape(-1),
    }


def _obp_reward(reward: np.ndarray) -> np.ndarray:
    """Clicks as OBP's datasets give them (int64); any other reward as float64."""
    if np.isin(reward, (0, 1)).all():
        return reward.astype(np.int64)
    return reward.astype(np.float64)
