"""Suites and command lines are checked when they are read, before any work (issue 30, items 2, 3, 12 and 13).

Every bad field of a regret suite or an OPE suite, and every bad number on the command line of ``rlrec run``,
``bench`` and ``ope``, is refused with one message naming the field, the value and what it takes; no cell runs
and no run folder is created. A suite's name is a name, never a path; no command writes into another's folder.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from cli_checks import one_error_line
from typer.testing import CliRunner

from rlrec.bench.suite import Suite, SuiteError
from rlrec.cli import app
from rlrec.ope.suite import OPESuite, OPESuiteError

runner = CliRunner()

OPE_SUITE = {"name": "mine", "envs": ["MovieLens-Bandit-v0"], "behaviours": ["uniform"], "targets": ["text-match"],
             "sizes": [100, 1000], "seeds": 3}
BENCH_SUITE = {"name": "mine", "envs": ["MovieLens-Bandit-v0"], "agents": ["random"], "seeds": 2, "steps": 5}
SEED_RANGE = r"\[0, 4294967295\]"  # the seeds jax.random.key tells apart (it keeps 32 bits)
COUNT_RANGE = r"2147483647\]"  # counts and sizes fit an int32, the integer JAX indexes with


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """Runs in an empty folder where any cell that starts (bench, ope) or any run (``rlrec run``, ``train``) is
    recorded instead of done: a refused input must leave the list empty and the folder with no ``runs/``."""
    import rlrec.bench.suite_run
    import rlrec.cli.run
    import rlrec.ope.suite_run
    import rlrec.train.run

    started = []
    for module, name in ((rlrec.bench.suite_run, "_run_cells"), (rlrec.ope.suite_run, "_run_cells"),
                         (rlrec.cli.run, "_run_and_write"), (rlrec.train.run.TrainConfig, "build")):
        def record(*args, _name=f"{module.__name__}.{name}", **kwargs):
            started.append(_name)
            raise RuntimeError(f"{_name} started")
        monkeypatch.setattr(module, name, record)
    monkeypatch.chdir(tmp_path)
    yield started
    assert not (tmp_path / "runs").exists()


# -- item 2: nothing listed twice -------------------------------------------------------------------------------

@pytest.mark.parametrize("field, twice", [
    ("envs", ["MovieLens-Bandit-v0", "MovieLens-Bandit-v0"]),
    ("behaviours", ["uniform", "uniform"]),
    ("targets", ["text-match", "linucb", "text-match"]),
    ("estimators", ["ips", "dm", "ips"]),
    ("sizes", [100, 1000, 100]),
])
def test_an_ope_suite_refuses_a_name_or_size_listed_twice(field, twice):
    with pytest.raises(OPESuiteError, match=f"{field} listed twice: .{twice[0]!r}."):
        OPESuite.from_dict({**OPE_SUITE, field: twice})


def test_both_suites_refuse_repeats_with_one_message():
    with pytest.raises(SuiteError, match=r"agents listed twice: \['random'\]"):
        Suite.from_json({**BENCH_SUITE, "agents": ["random", "random"]}).validate()
    with pytest.raises(OPESuiteError, match=r"behaviours listed twice: \['uniform'\]"):
        OPESuite.from_dict({**OPE_SUITE, "behaviours": ["uniform", "uniform"]})


# -- items 3 and 12: every field's type and range ---------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"sizes": [1.7]}, r"sizes\[0\] must be a whole number in \[1, " + COUNT_RANGE + ", got 1.7"),
    ({"sizes": [100, True]}, r"sizes\[1\] must be a whole number in \[1, " + COUNT_RANGE + ", got True"),
    ({"seeds": 2.5}, r"seeds must be a whole number in \[2, " + COUNT_RANGE + r" .*, got 2.5"),
    ({"seeds": "3"}, r"seeds must be a whole number in \[2, " + COUNT_RANGE + r" .*, got '3'"),
    ({"seed": 1e20}, "seed must be a whole number in " + SEED_RANGE + ", got 1e[+]20"),
    ({"seed": 99999999999999999999}, "seed must be a whole number in " + SEED_RANGE + ", got 99999999999999999999"),
    ({"seed": -3}, "seed must be a whole number in " + SEED_RANGE + ", got -3"),
    ({"train_users": "x"}, r"train_users must be a whole number in \[1, " + COUNT_RANGE + ", got 'x'"),
    ({"train_steps": 0}, r"train_steps must be a whole number in \[1, " + COUNT_RANGE + ", got 0"),
    ({"steps_per_user": 2.0}, r"steps_per_user must be a whole number in \[1, " + COUNT_RANGE + ", got 2.0"),
    ({"description": {"a": 1}}, r"description must be a string, got \{'a': 1\}"),
    ({"name": 5}, "name must be a string, got 5"),
    ({"envs": "MovieLens-Bandit-v0"}, "envs must be a list of env ids, got 'MovieLens-Bandit-v0'"),
    ({"behaviours": [1]}, r"behaviours must be a list of policy names, got \[1\]"),
    ({"estimators": "dm"}, "estimators must be a list of estimator names, got 'dm'"),
    ({"sizes": 100}, "sizes must be a list of log sizes, got 100"),
])
def test_an_ope_suite_field_of_the_wrong_type_or_range_is_refused_naming_it(change, message):
    with pytest.raises(OPESuiteError, match=message):
        OPESuite.from_dict({**OPE_SUITE, **change})


def test_an_ope_suite_names_every_problem_at_once():
    with pytest.raises(OPESuiteError) as refused:
        OPESuite.from_dict({**OPE_SUITE, "seeds": "3", "description": {"a": 1}, "sizes": [1.7]})
    assert all(f"{field} " in str(refused.value) for field in ("seeds", "description", "sizes[0]"))


@pytest.mark.parametrize("change, message", [
    ({"seed": 99999999999999999999}, "seed must be a whole number in " + SEED_RANGE + ", got 99999999999999999999"),
    ({"seed": 1e20}, "seed must be a whole number in " + SEED_RANGE + ", got 1e[+]20"),
    ({"seed": -1}, "seed must be a whole number in " + SEED_RANGE + ", got -1"),
    ({"seeds": 2.5}, r"seeds must be a whole number in \[1, " + COUNT_RANGE + ", got 2.5"),
    ({"seeds": "3"}, r"seeds must be a whole number in \[1, " + COUNT_RANGE + ", got '3'"),
    ({"steps": True}, r"steps must be a whole number in \[1, " + COUNT_RANGE + ", got True"),
    ({"accuracy_k": 2.0}, r"accuracy_k must be a whole number in \[0, " + COUNT_RANGE + ", got 2.0"),
    ({"description": {"a": 1}}, r"description must be a string, got \{'a': 1\}"),
    ({"mode": ["shared"]}, r"mode must be one of \('personal', 'shared'\), got \['shared'\]"),
])
def test_a_regret_suite_field_of_the_wrong_type_or_range_is_refused_naming_it(change, message):
    with pytest.raises(SuiteError, match=message):
        Suite.from_json({**BENCH_SUITE, **change}).validate()


def test_the_seeds_a_suite_takes_are_the_seeds_jax_tells_apart():
    """The top of the seed range is the last seed with a key of its own: JAX keeps 32 bits of a seed (without
    x64), so key(2**32) is key(0) and key(-3) is key(2**32 - 3): a suite never silently runs another's seed."""
    import jax
    import numpy as np

    from rlrec.bench.suite import MAX_SEED

    def data(seed):
        return np.asarray(jax.random.key_data(jax.random.key(seed)))

    assert not np.array_equal(data(MAX_SEED), data(0))
    assert np.array_equal(data(MAX_SEED + 1), data(0))
    Suite.from_json({**BENCH_SUITE, "seed": MAX_SEED}).validate()


def test_an_ope_suite_s_last_log_seed_fits_32_bits():
    """Seed s of an OPE suite logs with seed * SEED_STRIDE + s: a root seed whose last log seed would pass 2**32 - 1
    (and wrap onto another seed's users) is refused, naming the largest that fits."""
    from rlrec.bench.suite import MAX_SEED
    from rlrec.ope.suite import SEED_STRIDE

    top = (MAX_SEED - OPE_SUITE["seeds"] + 1) // SEED_STRIDE
    assert top * SEED_STRIDE + OPE_SUITE["seeds"] - 1 <= MAX_SEED < (top + 1) * SEED_STRIDE + OPE_SUITE["seeds"] - 1
    OPESuite.from_dict({**OPE_SUITE, "seed": top})
    with pytest.raises(OPESuiteError, match=f"seed must be at most {top} with 3 seeds .*, got {top + 1}"):
        OPESuite.from_dict({**OPE_SUITE, "seed": top + 1})


SEED_OPTION = "must be a whole number in [0, 4294967295], got "
COUNT_OPTION = "must be a whole number in [1, 2147483647], got "


@pytest.mark.parametrize("args, message", [
    (["ope", "--seed", "-3"], "Invalid value for '--seed': " + SEED_OPTION + "-3"),
    (["ope", "--seed", "4294967296"], "Invalid value for '--seed': " + SEED_OPTION + "4294967296"),
    (["ope", "--seeds", "99999999999999999999"], "Invalid value for '--seeds': must be a whole number in [2, "
                                                 "2147483647], got 99999999999999999999"),
    (["bench", "--seed", "99999999999999999999"],
     "Invalid value for '--seed': " + SEED_OPTION + "99999999999999999999"),
    (["bench", "--seed", "-1"], "Invalid value for '--seed': " + SEED_OPTION + "-1"),
    (["bench", "--steps", "2147483648"], "Invalid value for '--steps': " + COUNT_OPTION + "2147483648"),
    (["run", "--seed", "99999999999999999999"], "Invalid value for '--seed': " + SEED_OPTION + "99999999999999999999"),
    (["run", "--seed", "-1"], "Invalid value for '--seed': " + SEED_OPTION + "-1"),
    (["run", "--users", "2147483648", "--mode", "shared"],
     "Invalid value for '--users': " + COUNT_OPTION + "2147483648"),
    (["run", "--seeds", "0"], "Invalid value for '--seeds': " + COUNT_OPTION + "0"),
    (["run", "--accuracy-k", "-1"], "Invalid value for '--accuracy-k': must be a whole number in [0, 2147483647]"),
    (["run", "--set", "temperature=[1,2]"], "temperature must be one number in [0.001, 10000]"),
    (["run", "--set", "no_click_logit=(1, 2)"], "no_click_logit must be one number in [-10000, 10000]"),
    (["train", "--set", "temperature=[1,2]"], "temperature must be one number in [0.001, 10000]"),
])
def test_a_bad_number_on_the_command_line_is_one_error_line_before_any_work(no_work, tmp_path, args, message):
    if args[0] in ("run", "train"):
        args = [*args, "--out", str(tmp_path / "out")]
    assert message in one_error_line(runner.invoke(app, args))
    assert not no_work and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command, change", [
    ("ope", {"description": {"a": 1}}),
    ("ope", {"seeds": "3"}),
    ("ope", {"seed": 1e20}),
    ("ope", {"train_users": "x"}),
    ("ope", {"sizes": [1.7]}),
    ("ope", {"behaviours": ["uniform", "uniform"]}),
    ("bench", {"seed": 99999999999999999999}),
    ("bench", {"description": {"a": 1}}),
    ("bench", {"seeds": 2.5}),
])
def test_a_bad_suite_file_is_one_error_line_before_any_work(no_work, tmp_path, command, change):
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({**(OPE_SUITE if command == "ope" else BENCH_SUITE), **change}))
    line = one_error_line(runner.invoke(app, [command, "--suite", str(path)]))
    (field, value), = change.items()
    shown = value[0] if field == "sizes" else value  # sizes are checked entry by entry: sizes[0] ... got 1.7
    assert field in line and (f"got {shown!r}" in line or "listed twice" in line)
    assert not no_work


# -- item 13: names are names; no command writes into another's folder -------------------------------------------

@pytest.mark.parametrize("name", ["x/../../../escaped", "../escaped", "..", ".hidden", "", "a\\b", "two words",
                                  "/abs"])
def test_a_suite_name_is_a_name_not_a_path(name):
    with pytest.raises(OPESuiteError, match="must be letters, digits, '.', '_', '=' or '-'"):
        OPESuite.from_dict({**OPE_SUITE, "name": name})
    with pytest.raises(SuiteError, match="must be letters, digits, '.', '_', '=' or '-'"):
        Suite.from_json({**BENCH_SUITE, "name": name}).validate()


@pytest.mark.parametrize("command", ["ope", "bench"])
def test_a_suite_named_like_a_path_writes_nothing_outside_runs(no_work, tmp_path, monkeypatch, command):
    (tmp_path / "work").mkdir()
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({**(OPE_SUITE if command == "ope" else BENCH_SUITE), "name": "x/../../../escaped"}))
    monkeypatch.chdir(tmp_path / "work")  # runs/bench-x/../../../escaped would be tmp_path/escaped
    line = one_error_line(runner.invoke(app, [command, "--suite", str(path)]))
    assert "'x/../../../escaped' must be letters, digits" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.json", "work"]
    assert not any((tmp_path / "work").iterdir())
    assert not no_work


def _folder_of(command: str, folder):
    """A run folder as ``command`` marks it (the file whose format names the command), plus a results file."""
    from rlrec.bench.suite_run import FORMAT as BENCH
    from rlrec.cli.run import RUN_FORMAT
    from rlrec.ope.suite_run import FORMAT as OPE
    from rlrec.train.run import FORMAT as TRAIN

    folder.mkdir()
    marker, text = {
        "run": ("config.json", {"format": RUN_FORMAT}),
        "train": ("config.json", {"format": TRAIN}),
        "bench": ("config.json", {"format": BENCH, "suite": BENCH_SUITE}),
        "ope": ("suite.json", {"format": OPE, **OPE_SUITE}),
    }[command]
    (folder / marker).write_text(json.dumps(text))
    (folder / "results.csv").write_text("mine\n")
    return {path.name: path.read_text() for path in folder.iterdir()}


@pytest.mark.parametrize("command, owner", [
    ("ope", "bench"), ("ope", "run"), ("ope", "train"),
    ("bench", "ope"), ("bench", "run"), ("bench", "train"),
    ("run", "ope"), ("run", "bench"),
    ("train", "ope"), ("train", "bench"), ("train", "run"),
])
def test_no_command_writes_into_another_commands_folder(no_work, tmp_path, command, owner):
    folder = tmp_path / f"{owner}-folder"
    before = _folder_of(owner, folder)
    args = {"ope": ["ope", "--suite", "quick"], "bench": ["bench", "--suite", "quick"],
            "run": ["run", "-a", "random", "--overwrite"], "train": ["train", "--iterations", "1"]}[command]
    line = one_error_line(runner.invoke(app, [*args, "--out", str(folder)]))
    assert f"is a `rlrec {owner}` folder" in line and f"`rlrec {command}` never writes" in line
    assert {path.name: path.read_text() for path in folder.iterdir()} == before  # not even a lock file
    assert not no_work


def test_the_libraries_refuse_another_commands_folder_too(tmp_path):
    from rlrec.errors import PathTakenError, UserInputError
    from rlrec.ope.suite_run import run_ope_suite

    folder = tmp_path / "bench-folder"
    before = _folder_of("bench", folder)
    suite = OPESuite.from_dict(OPE_SUITE)
    with pytest.raises(PathTakenError, match="is a `rlrec bench` folder"):
        run_ope_suite(suite, folder, progress=False)
    assert {path.name: path.read_text() for path in folder.iterdir()} == before
    assert issubclass(PathTakenError, UserInputError)  # one error line in the CLI


def test_an_ope_run_refuses_a_folder_of_other_files(no_work, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "results.csv").write_text("my own table\n")
    line = one_error_line(runner.invoke(app, ["ope", "--suite", "quick", "--out", str(folder)]))
    assert "does not hold an OPE suite run" in line
    assert (folder / "results.csv").read_text() == "my own table\n"
    assert not no_work


def test_valid_suites_still_pass(tmp_path):
    suite = OPESuite.from_dict(OPE_SUITE)
    assert suite.sizes == (100, 1000) and suite.seeds == 3 and suite.seed == 0
    assert dataclasses.replace(suite, sizes=[1000, 100]).validate().sizes == (100, 1000)  # sorted, as before
    Suite.from_json(BENCH_SUITE).validate()
