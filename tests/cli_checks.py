"""What the tests of the ``rlrec`` command check in every refusal."""

from __future__ import annotations


def one_error_line(result) -> str:
    """The output of a refused command: exit code 2, no traceback, exactly one line, which starts with ``error:``."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]
