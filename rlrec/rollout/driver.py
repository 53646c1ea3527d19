"""The one chunk loop: a compiled program advanced a chunk at a time, with a progress bar that tells the truth.

``rlrec.run`` (steps), ``rlrec.train.train`` and ``rlrec.train.run_training`` (iterations) all call
:func:`run_chunks`; chunking changes no number (the per-step keys depend on the step, not the chunk).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from rlrec import _progress
from rlrec.rollout.seeds import fetch


def run_chunks(
    advance: Callable[[Any, int, int], tuple[Any, Any]],
    carry: Any,
    *,
    start: int,
    stop: int,
    chunk_size: int,
    display: _progress.Progress | None = None,
    first_compiles: bool = False,
    on_chunk: Callable[[Any, Any, int, float], str | None] | None = None,
    summary: Callable[[float], str] | None = None,
) -> tuple[Any, list]:
    """Runs ``advance(carry, position, length)`` from ``start`` to ``stop`` in chunks of ``chunk_size``.

    Args:
        advance: one compiled chunk: ``(carry, outputs)`` after ``length`` more steps from ``position``.
        display: a progress bar counting steps (closed here, also on errors); ``None``: no display.
        first_compiles: the first chunk also compiles, so the bar's estimate restarts after it.
        on_chunk: called after each chunk with ``(carry, outputs, position, seconds)`` (``position``: where the
            chunk ended); its return value, when not None, becomes the bar's status. It may raise to stop the
            run (a non-finite loss) before the next chunk starts.
        summary: the bar's closing line, given the seconds since ``start``.

    Returns:
        The last carry and the outputs of every chunk, in order.
    """
    pieces = []
    position = start
    began = time.perf_counter()
    watched = display is not None or on_chunk is not None
    try:
        while position < stop:
            length = min(chunk_size, stop - position)
            chunk_started = time.perf_counter()
            carry, outputs = advance(carry, position, length)
            if watched:  # otherwise chunks queue up without waiting for each other
                jax.block_until_ready((carry, outputs))
            seconds = time.perf_counter() - chunk_started
            position += length
            status = on_chunk(carry, outputs, position, seconds) if on_chunk is not None else None
            pieces.append(outputs)
            if display is not None:
                first = first_compiles and len(pieces) == 1
                if first and status is None:
                    status = f"first chunk (with compiling) {_progress.duration(seconds)}"
                # The estimate counts the chunks after the one that compiled.
                display.update(length, status=status, restart=first)
        if display is not None and summary is not None:
            display.close(summary(time.perf_counter() - began))
    finally:
        if display is not None:
            display.close()
    return carry, pieces


def join(pieces: list, length: int | None = None):
    """The chunks' outputs as one tree of host arrays, joined along the step axis (axis 1, after seeds)."""
    def host(chunk):  # the trainer's chunks are host arrays already; the runner's may be sharded
        return fetch(chunk) if isinstance(chunk, jax.Array) else np.asarray(chunk)

    joined = jax.tree.map(lambda *chunks: np.concatenate([host(c) for c in chunks], axis=1), *pieces)
    return joined if length is None else jax.tree.map(lambda x: x[:, :length], joined)
