"""The linter is a test: `ruff check` over the whole tree, with the rules in pyproject.toml's [tool.ruff]."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    # ruff is a dev dependency (pyproject.toml), so a missing ruff fails here rather than skipping the lint.
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"ruff found problems (fix them, or `ruff check --fix`):\n{result.stdout}"


def test_no_module_of_the_package_is_over_450_lines():
    # Past ~450 lines a module holds more than one idea; split it along its seam (issue 31).
    long = {str(path.relative_to(ROOT)): n for path in (ROOT / "rlrec").rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 450}
    assert not long, f"modules over 450 lines: {long}"
