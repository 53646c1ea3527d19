"""Names a module loads on first use (PEP 562): how ``import rlrec`` and ``rlrec --help`` stay free of JAX.

A small helper of our own rather than ``lazy_loader`` (scientific-python): that package wants every submodule
listed, and a module here must also reach any of its submodules as an attribute (``rlrec.envs.registry``), as
the eager imports of earlier releases allowed.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def attach(
    module: str, names: Mapping[str, str], namespace: dict[str, Any], listed: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``module``, whose globals are ``namespace``.

    ``names`` maps an attribute to the module that defines it; any other attribute that names a submodule of a
    package imports it. A loaded value is kept in ``namespace``, so each is looked up once. ``listed``: more
    names for ``dir()`` (e.g. ``__all__``).
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
