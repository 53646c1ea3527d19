"""The layer rule of docs/design.md section 2 holds for every module: no import reaches a higher layer."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "rlrec"
# Lowest first. A module may import its own layer and those before it. `import rlrec` hands out `make` and `run`
# lazily, so it counts as the rollout layer; compilation reads the lm's cache folder.
LAYERS = (
    {"errors", "files", "_progress", "_repr", "_lazy", "_memory", "metrics"},
    {"lm", "compilation"},
    {"data"},
    {"simulators"},
    {"envs"},
    {"agents"},
    {"rollout", "rlrec"},
    {"bench"},
    {"train"},
    {"ope"},
    {"cli"},
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
SAME_FLOOR = {"bench", "train"}  # side by side: neither imports the other (ranked apart only to catch that)


def part_of(module: str) -> str:
    """The top-level part of rlrec that ``module`` (dotted) belongs to: ``rlrec.envs.gym`` -> ``envs``."""
    names = module.split(".")
    return names[1] if len(names) > 1 else "rlrec"


def imported(tree: ast.Module) -> list[tuple[str, int]]:
    """``(rlrec module, line)`` of every import in ``tree``, function-level ones and lazy tables' strings too."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module  # absolute imports only: the package uses no relative ones
            # `from rlrec import lm`: the submodule is what is imported.
            found += [(f"rlrec.{alias.name}", node.lineno) for alias in node.names] if base == "rlrec" else [
                (base, node.lineno)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("rlrec."):
            found.append((node.value, node.lineno))  # `_LAZY` tables name modules as strings
    return [(name, line) for name, line in found if name == "rlrec" or name.startswith("rlrec.")]


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT.parent)
        if relative.as_posix() == "rlrec/__init__.py":
            continue  # the package's face: it re-exports from every layer
        source = part_of(".".join(relative.with_suffix("").parts))
        for module, line in imported(ast.parse(path.read_text(encoding="utf-8"))):
            target = part_of(module)
            if target == source or target == "__version__":
                continue
            assert target in RANK, f"{relative}:{line} imports {module}: add its part to LAYERS"
            if RANK[target] > RANK[source] or {source, target} == SAME_FLOOR:
                upward.append(f"{relative}:{line} ({source}) imports {module} ({target})")
    assert not upward, "lower layers import higher ones (docs/design.md section 2):\n" + "\n".join(upward)
