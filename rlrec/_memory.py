"""How much memory this machine can still give: for refusing, up front, work that would not fit.

rlrec refuses a size whose arrays would not fit (an OPE log to collect or to load) before allocating any of it,
naming the largest size that fits, instead of swapping for minutes and then being killed. NumPy only.
"""

from __future__ import annotations

import os


def available_bytes() -> int | None:
    """Bytes the system can give new allocations without swapping (Linux's MemAvailable), or None when unknown.

    psutil when installed (every platform); else Linux's ``/proc/meminfo``; else the free physical pages
    (``os.sysconf``: without the reclaimable page cache, so it may call a size too big that would fit).
    """
    try:
        import psutil
    except ImportError:
        pass
    else:
        return int(psutil.virtual_memory().available)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def describe(size: float) -> str:
    """``size`` bytes for a message: ``"3.2 GB"``, ``"850 MB"``, ``"12 KB"`` (powers of 1000, as ``free -h --si``)."""
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{int(size)} bytes"
