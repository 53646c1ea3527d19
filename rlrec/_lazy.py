"""Things built on first use, safely from several threads: names a module loads (PEP 562), memoised builders.

:func:`attach`: how ``import rlrec`` and ``rlrec --help`` stay free of JAX. A small helper of our own rather
than ``lazy_loader`` (scientific-python): that package wants every submodule listed, and a module here must also
reach any of its submodules as an attribute (``rlrec.envs.registry``), as the eager imports of earlier releases
allowed.

:func:`memoised`: ``functools.lru_cache`` for the builders of shared objects (catalogs, populations, encoders,
banks, network graphs), which may be called from several threads: a suite's compiling threads trace deep agents,
which build their graphs (``rlrec.bench.suite_run``), and a program of yours may build envs in threads.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

Result = TypeVar("Result")


def attach(
    module: str, names: Mapping[str, str], namespace: dict[str, Any], listed: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``module``, whose globals are ``namespace``.

    ``names`` maps an attribute to the module that defines it; any other attribute that names a submodule of a
    package imports it. A loaded value is kept in ``namespace``, so each is looked up once. ``listed``: more
    names for ``dir()`` (e.g. ``__all__``).

    Safe from threads without a lock of its own: Python's per-module import lock makes a second thread wait until
    the module has run (only an import cycle between threads is handed a partly run module, and rlrec's lazy
    names form none), and a value is stored once complete (two threads store the same object). A lock here, held
    while importing, could deadlock against the import lock of a module whose body reads a lazy name.
    """
    is_package = "__path__" in namespace
    listed = set(listed)

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
        elif is_package and importlib.util.find_spec(f"{module}.{name}") is not None:
            value = importlib.import_module(f"{module}.{name}")
        else:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names) | listed)

    return __getattr__, __dir__


def memoised(maxsize: int | None = 128) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """``functools.lru_cache(maxsize)`` that builds each key once, even when threads ask for it at the same time.

    ``lru_cache`` alone lets two threads that miss the same key both build it, and each get its own object (two
    copies of a catalog, two language models loaded). Here a thread that misses holds a lock for that key while
    it builds; another thread asking for the same key waits and gets the same object, while other keys build in
    parallel. An exception is not cached (as with ``lru_cache``): the next call tries again. The wrapper keeps
    ``cache_info`` and ``cache_clear``.
    """

    def decorate(function: Callable[..., Result]) -> Callable[..., Result]:
        cached = functools.lru_cache(maxsize=maxsize)(function)
        guard = threading.Lock()
        building: dict[Hashable, list] = {}  # key -> [its lock, threads using it]; dropped when none do

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Result:
            key = (args, tuple(sorted(kwargs.items())))
            with guard:
                entry = building.setdefault(key, [threading.RLock(), 0])
                entry[1] += 1
            try:
                with entry[0]:
                    return cached(*args, **kwargs)
            finally:
                with guard:
                    entry[1] -= 1
                    if entry[1] == 0:
                        del building[key]

        wrapper.cache_info = cached.cache_info  # type: ignore[attr-defined]
        wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return wrapper

    return decorate
