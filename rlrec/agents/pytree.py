"""Agents and OPE policies as pytrees whose compiled programs are keyed by class, never by display name.

JAX keys a compiled program on the tree structures of its arguments. A :class:`ClassKeyed` node's structure holds
its class and its static fields, and leaves its display name (the ``label`` field) out: "linucb" and "lm-linucb"
(one class, other numbers) share one program, and two classes never do, even with equal fields. A
``flax.struct.PyTreeNode`` would not do: jaxlib 0.10 compares the structures of two ``flax.struct`` classes by their
static fields' values alone, and JAX's caches then now and then handed LinTS the program traced for LinUCB (issue
38, docs/design.md section 7).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

DISPLAY = "label"  # the field that names a node in tables and plots, and nowhere else


class Shown:
    """A display name in a tree structure: equal to every other and hashed alike, so no program depends on it."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Shown)

    def __hash__(self) -> int:
        return 0


class ClassKeyed:
    """Base of frozen dataclass pytrees keyed by class (see the module docstring): fields are declared as for
    ``flax.struct`` (``struct.field(pytree_node=False)``: static), plus a display-only ``label`` (declared
    ``compare=False`` too, so ``==`` and ``hash`` leave it out as the programs do)."""

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__()
        dataclasses.dataclass(**{"frozen": True, **kwargs})(cls)
        fields = [field for field in dataclasses.fields(cls) if field.init and field.name != DISPLAY]
        data = tuple(field.name for field in fields if field.metadata.get("pytree_node", True))
        static = tuple(field.name for field in fields if field.name not in data)

        def flatten_with_keys(node):
            aux = (cls, tuple(getattr(node, name) for name in static), Shown(getattr(node, DISPLAY)))
            return tuple((jax.tree_util.GetAttrKey(name), getattr(node, name)) for name in data), aux

        def unflatten(aux, children):
            _, values, label = aux
            return cls(**dict(zip(static, values)), **dict(zip(data, children)), **{DISPLAY: label.text})

        jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten)

    def replace(self, **updates: Any):
        """A copy with the given fields replaced."""
        return dataclasses.replace(self, **updates)
