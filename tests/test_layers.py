"""The layer rule of docs/design.md section 2 holds for every module: no import reaches a higher layer."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "rlrec"
# Lowest first (../shared/DESIGN.md section 1); a module imports its own part and lower layers. `import rlrec` hands
# out `make` and `run` lazily: the rollout layer. bench and train sit side by side: ranked apart to keep them apart.
LAYERS = ("errors files _progress _repr _lazy _memory metrics", "lm compilation", "data", "simulators", "envs",
          "agents", "rollout rlrec", "bench", "train", "ope", "cli")
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts.split()}


def imported(tree: ast.Module) -> list[tuple[str, int]]:
    """``(part of rlrec, line)`` of every import in ``tree``: function-level ones and lazy tables' strings too."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:  # the package uses no relative imports
            found += [(f"rlrec.{alias.name}" if node.module == "rlrec" else node.module, node.lineno)
                      for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("rlrec."):
            found.append((node.value, node.lineno))
    return [((name.split(".") + ["rlrec"])[1], line) for name, line in found if name.split(".")[0] == "rlrec"]


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "__init__.py":
            continue  # the package's face: it re-exports from every layer
        source = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for target, line in imported(ast.parse(path.read_text(encoding="utf-8"))):
            if target not in (source, "__version__"):
                assert target in RANK, f"{path}:{line} imports rlrec.{target}: add it to LAYERS"
                if RANK[target] > RANK[source] or {source, target} == {"bench", "train"}:
                    upward.append(f"{path.relative_to(ROOT.parent)}:{line} ({source}) imports rlrec.{target}")
    assert not upward, "lower layers import higher ones (docs/design.md section 2):\n" + "\n".join(upward)
