"""The persistent compilation cache: on by default for the rlrec commands, off on request, and a second process
compiles nothing that the first compiled.

Each case runs in a fresh process with its own cache folders: JAX reads its cache settings once per process, and
the test session's own cache (conftest.py) must not leak in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from rlrec import compilation

RUN_TWICE = textwrap.dedent(
    """
    import sys
    from jax import monitoring
    events = []
    monitoring.register_event_listener(lambda name, **kw: events.append(name))
    import rlrec
    from rlrec.agents import make_agent
    print("folder", rlrec.enable_compilation_cache(sys.argv[1] if len(sys.argv) > 1 else None))
    env, params = rlrec.make("MovieLens-Bandit-v0")
    result = rlrec.run(env, params, make_agent("random", env), num_seeds=2, num_steps=5)
    print("hits", events.count("/jax/compilation_cache/cache_hits"))
    print("regret", repr(float(result.regret.sum())))
    """
)


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in {"JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                          compilation.OPT_OUT_ENV_VAR}}
    # Embeddings stay where the session keeps them (encoding again would take minutes); compiled programs do not.
    return {**env, **extra}


def run_python(code: str, env: dict[str, str], *args: str) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


def test_a_second_process_finds_every_program_in_the_cache(tmp_path):
    folder = tmp_path / "xla"
    env = clean_env(tmp_path)
    first = run_python(RUN_TWICE, env, str(folder))
    assert first["folder"] == str(folder)
    # The run's own programs. (Small helpers, e.g. a key's fold_in, are kept only when they took over
    # MIN_COMPILE_SECONDS to compile, which on a busy machine a second process may reach and the first not.)
    def runner_programs():
        names = (path.name for path in folder.iterdir())
        return sorted(name for name in names if name.startswith(("jit__init_seeds", "jit__run_chunk")))

    programs = runner_programs()
    assert len(programs) == 2, sorted(path.name for path in folder.iterdir())
    second = run_python(RUN_TWICE, env, str(folder))
    assert runner_programs() == programs  # nothing new was compiled for the run
    assert int(second["hits"]) >= 2  # the run's init and chunk programs, read back
    assert second["regret"] == first["regret"]  # and they compute the same


def test_jax_own_folder_is_respected(tmp_path):
    mine = tmp_path / "jax-own"
    script = RUN_TWICE.replace("rlrec.run(env", "None and rlrec.run(env").replace(
        'print("regret", repr(float(result.regret.sum())))', "")
    outcome = run_python(script, clean_env(tmp_path, JAX_COMPILATION_CACHE_DIR=str(mine)))
    assert outcome["folder"] == str(mine)


INFO = "from rlrec.cli import main; main()"  # what `python -m rlrec.cli` runs


@pytest.mark.parametrize(
    ("args", "extra", "expected"),
    [
        (["info"], {}, "xla"),
        (["--no-compile-cache", "info"], {}, "off"),
        (["info"], {compilation.OPT_OUT_ENV_VAR: "0"}, "off"),
    ],
    ids=["default", "flag", "env-var"],
)
def test_the_commands_turn_it_on_unless_told_not_to(tmp_path, args, extra, expected):
    env = clean_env(tmp_path, RLREC_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="200", **extra)
    done = subprocess.run([sys.executable, "-c", INFO, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if "compilation cache" in line)
    if expected == "off":
        assert "off" in line
    else:
        assert str(tmp_path / "cache" / "xla") in line


def test_a_command_option_given_after_the_command_says_where_it_goes(tmp_path):
    done = subprocess.run([sys.executable, "-c", INFO, "info", "--no-compile-cache"], env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --no-compile-cache goes before the command: `rlrec --no-compile-cache info ...`"
    ]


def test_an_unwritable_folder_warns_and_caches_nothing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compilation.enable_compilation_cache(blocker / "xla") is None
    assert len(caught) == 1 and "cannot be written" in str(caught[0].message)
    assert "RLREC_CACHE_DIR" in str(caught[0].message)


@pytest.mark.parametrize(("value", "off"), [("0", True), ("off", True), ("False", True), ("1", False), ("", False)])
def test_opt_out_values(monkeypatch, value, off):
    monkeypatch.setenv(compilation.OPT_OUT_ENV_VAR, value)
    assert compilation.opted_out() is off


def test_cache_size_counts_files(tmp_path):
    assert compilation.compilation_cache_size(tmp_path / "missing") == (0, 0)
    (tmp_path / "a-cache").write_bytes(b"x" * 10)
    (tmp_path / "b-cache").write_bytes(b"y" * 5)
    assert compilation.compilation_cache_size(tmp_path) == (2, 15)
