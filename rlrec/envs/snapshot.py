"""Save an environment (static config + params) to one ``.npz`` and load it back, with no LM or catalog.

Useful to ship an exact environment to another machine (an accelerator without the language model, a
colleague) or to pin the environment of a published result.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from rlrec.envs.conversation import ConversationalEnv, ConversationalParams
from rlrec.envs.recsys import EnvParams, RecEnv
from rlrec.envs.registry import CONVERSATION_KNOBS, KNOBS, check_overrides
from rlrec.errors import InputError, MissingPathError
from rlrec.files import atomic_save_npz

FORMAT = "rlrec-env-v1"
PLAIN, CONVERSATIONAL = "plain", "conversational"
_CLASSES = {PLAIN: (RecEnv, EnvParams), CONVERSATIONAL: (ConversationalEnv, ConversationalParams)}
_REPAIR = "The file was edited or damaged: save the environment again with rlrec.envs.snapshot.save_env."


def save_env(path: str | os.PathLike, env: RecEnv, params: EnvParams) -> Path:
    """Writes ``env`` and ``params`` to ``path`` (``.npz``, atomically)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"Environment snapshots are .npz files; got {path}.")
    config = {"format": FORMAT, "env": {name: getattr(env, name) for name in _settings(type(env))}}
    if isinstance(env, ConversationalEnv):  # older snapshots have no kind: a plain RecEnv
        config["kind"] = CONVERSATIONAL
    arrays = {f"params.{field.name}": np.asarray(getattr(params, field.name)) for field in dataclasses.fields(params)}
    atomic_save_npz(path, config=np.asarray(json.dumps(config)), **arrays)
    return path


def load_env(path: str | os.PathLike) -> tuple[RecEnv, EnvParams]:
    """Reads a snapshot written by :func:`save_env`, checked as :func:`rlrec.make` checks what it builds.

    A snapshot is a file anyone can edit: its settings and knobs go through the checks of ``rlrec.make``
    (:func:`rlrec.envs.registry.check_overrides` and the registry's knobs) and its arrays must agree in shape and
    be finite, so an edited ``temperature = -1`` is refused instead of simulated.

    Raises:
        MissingPathError: no file at ``path``.
        InputError: not a snapshot, or one with a setting, knob or array ``rlrec.make`` would not build; the
            message names the file, the entry and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"No environment snapshot at {path}.")
    config, stored = _read(path)
    try:
        kind = config.get("kind", PLAIN)  # older snapshots have no kind: a plain RecEnv
        if not isinstance(kind, str) or kind not in _CLASSES:
            raise InputError(f"kind {kind!r} is not {' or '.join(map(repr, _CLASSES))}.")
        env_class, params_class = _CLASSES[kind]
        env = _check_env(env_class, config.get("env"))
        params = _check_params(params_class, stored, env.slate_size)
    except InputError as error:
        raise InputError(f"Environment snapshot {path}: {error} {_REPAIR}") from None
    return env, params


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The config and the ``params.*`` arrays of the snapshot file ``path``, or an ``InputError`` if it is not
    one (not an ``.npz``, a truncated one, an entry of pickled objects, no JSON config, another format)."""
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path} is not an rlrec environment snapshot (not an .npz file, or a truncated one).")
    try:
        with np.load(path) as contents:
            raw_config = contents["config"] if "config" in contents.files else None
            stored = {name.removeprefix("params."): contents[name]
                      for name in contents.files if name.startswith("params.")}
    except ValueError:  # numpy's advice (allow_pickle=True) would run code from the file: not given here
        raise InputError(f"{path} is not an rlrec environment snapshot: an entry is not a plain array (pickled "
                         "Python objects, which rlrec never loads, or a damaged header).") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise InputError(f"{path} is damaged or truncated ({error}); save the environment again with "
                         "rlrec.envs.snapshot.save_env.") from None
    if raw_config is None:
        raise InputError(f"{path} is not an rlrec environment snapshot (no config entry).")
    try:
        config = json.loads(str(raw_config))
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise InputError(f"{path}: its config entry is not a JSON object ({str(raw_config)!r:.80}). {_REPAIR}")
    if config.get("format") != FORMAT:
        raise InputError(f"{path} has snapshot format {config.get('format')!r}; this rlrec reads {FORMAT!r}.")
    return config, stored


def _settings(env_class: type) -> list[str]:
    """The static settings a snapshot stores: the env's compared fields and its name (the catalog and banks it
    keeps for reading are not settings: the params hold what the env needs of them)."""
    return [field.name for field in dataclasses.fields(env_class) if field.compare or field.name == "name"]


def _check_env(env_class: type, settings: Any) -> RecEnv:
    """The env of a snapshot's ``env`` settings, checked by ``rlrec.make``'s own check of its static settings."""
    if not isinstance(settings, dict):
        raise InputError("its config has no 'env' entry (the env's settings)." if settings is None else
                         f"its config's 'env' entry is not a table of settings: {settings!r:.80}.")
    fields = set(_settings(env_class))
    if set(settings) != fields:
        raise InputError(f"its env settings do not match this rlrec's {env_class.__name__} (missing "
                         f"{sorted(fields - set(settings))}, unknown {sorted(set(settings) - fields)}).")
    if not isinstance(settings["name"], str):
        raise InputError(f"the env's name must be a string, got {settings['name']!r}.")
    check_overrides(settings["name"], {name: value for name, value in settings.items() if name != "name"})
    return env_class(**settings)


# The shapes of the params arrays, in the sizes they share: N items in d dimensions, P prototype users with R
# requests each, k slots, K key-terms with F bandit features each (d + 2), M key-term/item pairs, C critiques.
# Every other field is a knob of shape (), checked by its registry Knob exactly as rlrec.make checks it.
_SHAPES = {
    "item_features": ("N", "d"),
    "item_quality": ("N",),
    "item_appeal": ("N",),
    "prototype_interests": ("P", "d"),
    "prototype_requests": ("P", "R", "d"),
    "prototype_log_weights": ("P",),
    "position_bias": ("k",),
    "key_term_features": ("K", "d"),
    "key_term_centroids": ("K", "F"),
    "key_term_items": ("M",),
    "key_term_ids": ("M",),
    "critique_features": ("C", "d"),
}
_INDICES = {"key_term_items": ("N", "item"), "key_term_ids": ("K", "key-term")}  # int arrays of indices below a size


def _check_params(params_class: type, stored: dict[str, np.ndarray], slate_size: int) -> EnvParams:
    """``params_class`` of a snapshot's arrays: every knob checked by its registry Knob, every array's shape
    against the others', values finite and indices in range."""
    fields = [field.name for field in dataclasses.fields(params_class)]
    if set(stored) != set(fields):
        raise InputError(f"its arrays do not match this rlrec's {params_class.__name__} (missing "
                         f"{sorted(set(fields) - set(stored))}, unknown {sorted(set(stored) - set(fields))}).")
    sizes = {"k": slate_size}
    checked = {}
    for name in fields:
        value = stored[name]
        knob = KNOBS.get(name) or CONVERSATION_KNOBS.get(name)
        if knob is not None:  # .tolist(): the message shows the value (-1.0), not array(-1., dtype=float32)
            value = knob.check(value.tolist())
        elif value.dtype.kind not in ("iu" if name in _INDICES else "iuf"):
            raise InputError(f"params.{name} must be {'whole ' if name in _INDICES else ''}numbers, got dtype "
                             f"{value.dtype}.")
        _check_shape(name, value, _SHAPES.get(name, ()), sizes)
        if name in _INDICES:
            bound, what = _INDICES[name]
            if value.size and (value.min() < 0 or value.max() >= sizes[bound]):
                raise InputError(f"params.{name} must hold {what} indices in [0, {sizes[bound]}), got "
                                 f"{value.min()}..{value.max()}.")
        elif knob is None:
            # -inf is a log weight of zero (a prototype never drawn); NaN and +inf are not numbers a model uses.
            bad = np.isnan(value) | (value == np.inf) if name == "prototype_log_weights" else ~np.isfinite(value)
            if bad.any():
                raise InputError(f"params.{name} holds NaN or inf (first at {np.argwhere(bad)[0].tolist()}).")
        checked[name] = value
    if slate_size > sizes["N"]:
        raise InputError(f"slate_size={slate_size} is larger than the catalog ({sizes['N']} items).")
    return params_class(**{name: jnp.asarray(value) for name, value in checked.items()})


def _check_shape(name: str, value: np.ndarray, shape: tuple[str, ...], sizes: dict[str, int]) -> None:
    """Raises unless ``value`` has ``shape``; records the sizes it is first to give in ``sizes``."""
    if value.ndim == len(shape) and all(sizes.setdefault(symbol, size) == size
                                        for symbol, size in zip(shape, value.shape)):
        return
    expected = ", ".join(str(sizes.get(symbol, symbol)) for symbol in shape) + ("," if len(shape) == 1 else "")
    raise InputError(f"params.{name} has shape {value.shape}, but the snapshot's other arrays give it ({expected}).")
