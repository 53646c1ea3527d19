"""Short reprs: sizes, dims, names and scalar values, never array contents.

A default dataclass repr prints every array: a MovieLens catalog's ran to 531,170 characters and flooded
notebooks. The classes of rlrec describe themselves through these helpers instead, in one line that aims to
stay under :data:`LIMIT` characters. Safe under ``jit``/``vmap``: a tracer is described by its shape and
dtype, never converted to a number.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def _jax():
    """JAX if it is loaded (no JAX value can exist otherwise): describing a catalog does not load it."""
    return sys.modules.get("jax")

LIMIT = 240  # characters a repr aims to stay under
_TEXT = 120  # longest string or nested repr shown whole


def shape_text(value: Any) -> str:
    """``float32[9066,32]``: an array (or tracer) by dtype and shape."""
    dtype = getattr(value.dtype, "name", str(value.dtype))
    return f"{dtype}[{','.join(str(size) for size in value.shape)}]"


def number_text(value: float | int) -> str:
    """A number in at most six significant digits; floats keep a decimal point (``1.0``, ``0.002``, ``5e-07``)."""
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    text = f"{float(value):.6g}"
    return text + ".0" if text.lstrip("-").isdigit() else text


def _shorten(text: str, limit: int = _TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scalar(value: Any) -> Any:
    """The Python scalar in ``value`` (a number or a concrete 0-d array), else ``None``."""
    if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
        return value
    jax = _jax()
    if jax is not None and isinstance(value, jax.core.Tracer):
        return None
    arrays = np.ndarray if jax is None else (np.ndarray, jax.Array)
    if isinstance(value, arrays) and value.ndim == 0 and np.dtype(value.dtype).kind in "biuf":  # not strings
        try:
            return value.item()
        except RuntimeError:  # a deleted array, or one spread over processes: not readable here
            return None
    return None


def describe(value: Any) -> str:
    """``value`` in a few characters: numbers and short strings as themselves, arrays and tracers as
    ``float32[9066,32]``, long sequences as ``tuple[9066]``, pytrees of arrays by their count and size."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return repr(value if value is None else bool(value))
    if isinstance(value, str):
        return _shorten(repr(value))
    scalar = _scalar(value)
    if scalar is not None:
        return number_text(scalar)
    if hasattr(value, "columns") and hasattr(value, "shape"):  # a pandas DataFrame
        return f"{type(value).__name__}[{value.shape[0]},{value.shape[1]}]"
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # arrays, tracers, pandas Series
        return shape_text(value)
    if isinstance(value, (tuple, list)) and len(value) <= 4 and all(
        v is None or isinstance(v, str) or _scalar(v) is not None for v in value
    ):
        inner = ", ".join(describe(v) for v in value)
        text = f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
        if len(text) <= _TEXT:
            return text
    # Pytrees holding arrays (agent states, network weights, optimiser states) by their count and size.
    jax = _jax()
    leaves = jax.tree.leaves(value) if jax is not None else [value]
    arrays = [leaf for leaf in leaves if hasattr(leaf, "shape") and hasattr(leaf, "dtype")]
    if arrays and not (len(leaves) == 1 and leaves[0] is value):
        size = sum(int(np.prod(leaf.shape)) for leaf in arrays)
        return f"{type(value).__name__}({len(arrays)} array{'s' * (len(arrays) != 1)}, {size:,} numbers)"
    if isinstance(value, (tuple, list, Mapping)):
        return f"{type(value).__name__}[{len(value)}]"
    return _shorten(repr(value))


def call(name: str, facts: Mapping[str, Any] | Iterable[tuple[str, Any]], extra: Iterable[str] = ()) -> str:
    """``name(key=describe(value), ..., *extra)``."""
    pairs = facts.items() if isinstance(facts, Mapping) else facts
    parts = [f"{key}={describe(value)}" for key, value in pairs] + list(extra)
    return f"{name}({', '.join(parts)})"


def _is_default(value: Any, field: dataclasses.Field) -> bool:
    """Whether ``value`` is ``field``'s declared default (``False`` when unknown, e.g. a tracer or an array)."""
    default = field.default
    if default is dataclasses.MISSING:
        return False
    number, default_number = _scalar(value), _scalar(default)
    if number is not None and default_number is not None:
        if isinstance(number, (bool, np.bool_)) or isinstance(default_number, (bool, np.bool_)):
            return type(number) is type(default_number) and bool(number) == bool(default_number)
        return bool(np.float32(number) == np.float32(default_number))  # as stored: float32(0.3) is 0.3
    if number is not None or default_number is not None or hasattr(value, "shape"):
        return False
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # noqa: BLE001 - any field type's == may raise (a list of arrays, a tracer): unknown
        return False


def fields_repr(obj: Any, head: Mapping[str, Any] | None = None, skip: Iterable[str] = (), limit: int = LIMIT) -> str:
    """``Class(head..., field=value, ...)`` over ``obj``'s dataclass fields (described, not printed).

    When that is longer than ``limit``, fields are shown (in field order) only while the line fits, those changed
    from their declared default first, as scikit-learn shows the parameters one changed; the rest are counted
    (``+9 defaults``, or ``+12 more`` when some changed ones are left out too, e.g. traced or batched leaves).
    """
    name = type(obj).__name__
    head = list((head or {}).items())
    skip = set(skip)
    entries = [(field, getattr(obj, field.name)) for field in dataclasses.fields(obj) if field.name not in skip]
    defaults = [field.name for field, value in entries if _is_default(value, field)]
    changed = [field.name for field, _ in entries if field.name not in defaults]

    def render(shown: set[str]) -> str:
        hidden = len(entries) - len(shown)
        kind = "defaults" if set(changed) <= shown else "more"
        listed = head + [(field.name, value) for field, value in entries if field.name in shown]
        return call(name, listed, [f"+{hidden} {kind}"] if hidden else [])

    every = set(changed) | set(defaults)
    if len(render(every)) <= limit:
        return render(every)
    shown: set[str] = set()
    for key in changed + defaults:
        if len(render(shown | {key})) > limit:
            break
        shown = shown | {key}
    return render(shown)
