"""Progress of long calls: a bar where a person watches, plain lines everywhere else.

Where someone watches (stderr is a terminal, or the code runs in a Jupyter kernel) a :class:`Progress` is a
tqdm bar; anywhere else (a CI log, ``| cat``, a file, pytest's capture) it prints plain lines on stderr:
one per phase a caller reports, and at most one "so far" line every ``interval`` seconds, with no carriage
returns and no cursor movement.

Its estimate of the time left counts only the work that repeats. A caller leaves one-off work out of it: a
block inside :meth:`Progress.excluded` (loading or encoding a catalog) or everything before
:meth:`Progress.restart` (compiling, warming up). Until a unit has been counted the estimate is unknown and not
shown; a rate measured over a one-off phase would say minutes for seconds of work.

``progress=`` arguments take ``True`` (a bar, or lines where nobody watches), ``False`` (nothing) or ``None``
(a bar where someone watches, nothing elsewhere): see :func:`wanted`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

PLAIN_INTERVAL_S = 30.0  # at most one "so far" line this often where nobody watches


def in_notebook() -> bool:
    """Whether this runs in a Jupyter (IPython kernel) session."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    try:
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # noqa: BLE001 - an unusual shell is not a notebook
        return False


def interactive() -> bool:
    """Whether a person is watching: stderr is a terminal, or a Jupyter notebook runs this."""
    if in_notebook():
        return True
    try:
        if not sys.stderr.isatty():
            return False
        # A terminal of 0 columns (some containers, `script` without a size) shows no bar at all: lines then.
        return os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (AttributeError, ValueError, OSError):  # no stderr, a closed one, or one without a file descriptor
        return False


def _bar_class():
    """tqdm's notebook widget in a notebook that has ipywidgets, its text bar anywhere else (``tqdm.auto`` would
    warn "IProgress not found" in a notebook without ipywidgets, the `notebooks` extra's case)."""
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm

            return tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm

    return tqdm


def wanted(progress: bool | None) -> bool:
    """A ``progress=`` argument: ``True`` or ``False`` as given; ``None``: when a person is watching."""
    return interactive() if progress is None else bool(progress)


def say(message: str) -> None:
    """One plain line on stderr."""
    print(message, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """``0.4 s``, ``12.3 s``, ``1:05``, ``1:02:03``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def rate_text(units: float, seconds: float, unit: str) -> str:
    """``52 step/s``, ``3.1 text/s`` or ``5.8 s/cell``."""
    rate = units / max(seconds, 1e-9)
    if rate >= 10:
        return f"{rate:,.0f} {unit}/s"
    if rate >= 1:
        return f"{rate:.1f} {unit}/s"
    return f"{1 / rate:.1f} s/{unit}"


class Progress:
    """Progress over ``total`` units: a tqdm bar where someone watches (:func:`interactive`), else plain lines.

    Args:
        total: units of work (cells, steps, iterations, texts).
        desc: what is done; bars start with it, and so does every plain line.
        unit: one unit's name.
        initial: units already done (a resumed run); not counted in the rate.
        announce: where nobody watches, a first line (``"{desc}: {announce}"``); ``None`` for none.
        interval: seconds between "so far" lines where nobody watches; ``None`` for none (only :meth:`note`
            and :meth:`close` lines).
    """

    def __init__(self, total: int, desc: str, unit: str, *, initial: int = 0, announce: str | None = None,
                 interval: float | None = PLAIN_INTERVAL_S):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.interval = interval
        self.status = ""  # what happens now (bars show it; plain "so far" lines end with it)
        self.started = time.perf_counter()
        self._count_from = (initial, self.started)  # (units, time) the rate counts from
        self._excluded = 0.0  # seconds since then left out of the rate
        self._last_line = self.started
        self._bar = None
        self._closed = False
        if interactive():
            tqdm = _bar_class()

            # tqdm's own rate and estimate would count every second since the bar began; ours leave out
            # one-off work, so they are shown in the postfix instead.
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        elif announce is not None:
            say(f"{desc}: {announce}")

    def _counted(self) -> tuple[float, float]:
        """Units and seconds the rate counts (since the last restart, less excluded blocks)."""
        units, since = self._count_from
        return self.n - units, time.perf_counter() - since - self._excluded

    def remaining(self) -> float | None:
        """Seconds left at the rate of the counted work; ``None`` before any unit was counted."""
        units, seconds = self._counted()
        if units <= 0 or seconds <= 0:
            return None
        return max(self.total - self.n, 0) * seconds / units

    def _estimate(self) -> str:
        """``5.8 s/cell, ~1:04 left``, or ``""`` while nothing was counted."""
        units, seconds = self._counted()
        left = self.remaining()
        if left is None:
            return ""
        return f"{rate_text(units, seconds, self.unit)}" + (f", ~{duration(left)} left" if self.n < self.total else "")

    def _postfix(self) -> str:
        return ", ".join(part for part in (self._estimate(), self.status) if part)

    def set_status(self, status: str) -> None:
        """What happens now (``"compiling"``, ``"MovieLens-Bandit-v0 / linucb: running"``): a bar shows it."""
        if status == self.status:
            return
        self.status = status
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix())

    def update(self, units: int = 1, status: str | None = None, *, restart: bool = False) -> None:
        """``units`` more are done (and, optionally, a new status); ``restart``: then :meth:`restart`."""
        self.n += units
        if status is not None:
            self.status = status
        if restart:
            self._count_from, self._excluded = (self.n, time.perf_counter()), 0.0
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)  # shown by the update
            self._bar.update(units)
            return
        now = time.perf_counter()
        if self.interval is not None and self.n < self.total and now - self._last_line >= self.interval:
            self._last_line = now
            status = f", {self.status}" if self.status else ""
            self.note(f"{self.n:,}/{self.total:,} {self.unit} ({self.so_far()}){status}")

    def so_far(self) -> str:
        """``1:02 elapsed, ~0:40 left`` (the estimate when there is one)."""
        left = self.remaining()
        elapsed = f"{duration(time.perf_counter() - self.started)} elapsed"
        return elapsed + (f", ~{duration(left)} left" if left is not None and self.n < self.total else "")

    def note(self, message: str) -> None:
        """A plain line ``"{desc}: {message}"`` where nobody watches (a bar says it in its own way)."""
        if self._bar is None:
            self._last_line = time.perf_counter()
            say(f"{self.desc}: {message}")

    @contextmanager
    def excluded(self) -> Iterator[None]:
        """Leaves the time of the block (one-off work: loading, encoding) out of the rate and the estimate."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self._excluded += time.perf_counter() - began

    def restart(self) -> None:
        """Counts the rate from now: what was done so far (compiling, a warm-up) is left out of the estimate."""
        self._count_from, self._excluded = (self.n, time.perf_counter()), 0.0
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix())

    def close(self, summary: str | None = None) -> None:
        """Ends the bar (its last status: ``summary``), or prints ``"{desc}: {summary}"`` where nobody watches.

        ``summary`` ``None``: the bar simply closes and nothing more is printed (e.g. an error is on its way).
        A second call does nothing.
        """
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            if summary is not None:
                self.status = summary
                self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.close()
        elif summary is not None:
            say(f"{self.desc}: {summary}")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
