"""Benchmark suites: configs, outputs, resume, config mismatch, 1 vs 8 devices, confidence intervals."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_env import assert_observation_is_not_the_hidden_taste
from test_files import hold_folder_lock
from typer.testing import CliRunner

from rlrec import _progress
from rlrec.bench import report
from rlrec.bench.suite import SUITES, Suite, SuiteError, get_suite
from rlrec.bench.suite_results import Cell, SuiteResult
from rlrec.bench.suite_run import run_suite
from rlrec.cli import app
from rlrec.files import LOCK_FILES, atomic_save_npz

# Small enough to compile and run in well under a minute; one single-item env (ILD undefined: the
# regret-vs-diversity plot uses coverage there) and one slate env; the oracle has exactly zero regret.
TINY = Suite(
    name="tiny",
    description="test suite",
    envs=("MovieLens-Bandit-v0", "MovieLens-BanditSlate-v0"),
    agents=("random", "oracle"),
    seeds=8,
    steps=20,
    seed=3,
    env_overrides={"MovieLens-Bandit-v0": {"max_steps": 20}},
)
FILES = ("config.json", "results.csv", "results.json", "summary.md", "regret.png", "regret_vs_diversity.png")
METRIC_COLUMNS = ("cumulative_regret", "ctr", "expected_ctr", "episode_return", "ndcg", "diversity", "coverage",
                  "exposure_gini", "novelty", "genre_entropy")


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def tiny_logged(tmp_path_factory, movielens):
    """The tiny suite, run once with progress on where nobody watches (stderr is not a terminal): its log."""
    out = tmp_path_factory.mktemp("suite") / "tiny"
    log = io.StringIO()
    with contextlib.redirect_stderr(log):
        result = run_suite(TINY, out, progress=True)
    return result, log.getvalue()


@pytest.fixture(scope="module")
def tiny_run(tiny_logged):
    return tiny_logged[0]


def test_built_in_suites_are_valid_and_round_trip_through_json(tmp_path):
    for name, suite in SUITES.items():
        assert suite.validate() is suite
        assert suite.name == name and suite.description
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(suite.to_json()))
        assert get_suite(path) == suite
    assert get_suite("quick") is SUITES["quick"]
    with pytest.raises(SuiteError, match="Unknown suite 'nightly'"):
        get_suite("nightly")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"envs": ("Nowhere-v0",)}, "unknown env"),
        ({"agents": ("random", "ppo")}, "ppo learns from whole rollouts"),
        ({"agents": ("random", "random")}, "listed twice"),
        ({"seeds": 0}, r"seeds must be a whole number in \[1, 2147483647\], got 0"),
        ({"mode": "team"}, "mode must be one of"),
        ({"env_overrides": {"MovieLens-Bandit-v0": {"colour": 1}}}, r"Unknown override\(s\) \['colour'\]"),
        ({"env_overrides": {"MovieLens-Bandit-v0": {"temperature": 1e-45}}}, r"temperature must be in \[0.001"),
        ({"env_overrides": {"IMDB-Bandit-v0": {"max_steps": 5}}}, "not one of the suite's envs"),
        ({"hyperparameters": {"random": {"alpha": 1.0}}}, r"Unknown hyperparameter\(s\) \['alpha'\] for random"),
        ({"agents": ("random", "linucb"), "hyperparameters": {"linucb": {"regulariser": -1.0}}},
         r"linucb: regulariser must be in \[0.01, 1e\+06\]"),
        ({"agents": ("random", "wide"), "variants": {"wide": {"agent": "linucb", "alpha": -1.0}}},
         r"wide: alpha must be in \[0, 1e\+06\]"),
        ({"agents": ("random", "wide"), "variants": {"wide": {"agent": "lin-ucb"}}}, r"variant 'wide' needs \"agent\""),
        ({"agents": ("random", "linucb"), "variants": {"linucb": {"agent": "lints"}}}, "has the name of a registered"),
        ({"agents": ("random", "a/b"), "variants": {"a/b": {"agent": "lints"}}}, "must be letters, digits"),
        ({"agents": ("random", "narrow")}, r"unknown agent\(s\) \['narrow'\]"),
    ],
)
def test_invalid_suites_name_the_problem(change, message):
    with pytest.raises(SuiteError, match=message):
        dataclasses.replace(TINY, **change).validate()


def test_suite_files_must_be_suites(tmp_path):
    path = tmp_path / "suite.json"
    path.write_text('{"name": "x", "envs": [], "agents": [], "seeds": 1, "steps": 1, "colour": 2}')
    with pytest.raises(SuiteError, match=r"Unknown suite field\(s\) \['colour'\]"):
        get_suite(path)
    path.write_text("[1, 2]")
    with pytest.raises(SuiteError, match="JSON object"):
        get_suite(path)
    path.write_text('{"name": "x", "envs": 5, "agents": ["random"], "seeds": 1, "steps": 1}')
    with pytest.raises(SuiteError, match="envs must be a list of env ids, got 5"):
        get_suite(path)
    path.write_text('{"name": "x", "envs": [], "agents": ["random"], "seeds": 1, "steps": 1, "hyperparameters": []}')
    with pytest.raises(SuiteError, match="hyperparameters must be an object"):
        get_suite(path)
    path.write_text('{"name": "x", "envs": [')
    with pytest.raises(SuiteError, match="Cannot read a suite"):
        get_suite(path)


def test_tiny_suite_writes_every_file(tiny_run):
    out = tiny_run.out
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "cells").glob("*.npz"))) == 4
    hidden = [p for p in out.rglob("*") if p.name.startswith(".") and p.name not in LOCK_FILES]
    assert not hidden, "temporary files left behind"  # the lock's own files stay (harmless: see FolderLock)
    assert tiny_run.ran == TINY.cells

    rows = read_rows(out / "results.csv")
    assert len(rows) == 2 * 2 * 8
    assert {(r["env"], r["agent"]) for r in rows} == set(TINY.cells)
    assert sorted({int(r["seed_index"]) for r in rows}) == list(range(8))
    for column in (*METRIC_COLUMNS, "cell_wall_time_s", "cell_compile_time_s", "cell_user_steps_per_s", "backend",
                   "device_kind", "devices"):
        assert column in rows[0], column
    oracle = [r for r in rows if r["agent"] == "oracle"]
    assert all(abs(float(r["cumulative_regret"])) < 1e-5 for r in oracle)  # float32 rounding only
    random_rows = [r for r in rows if r["agent"] == "random"]
    assert all(float(r["cumulative_regret"]) > 0.0 for r in random_rows)
    single = [r for r in rows if r["env"] == "MovieLens-Bandit-v0"]
    assert all(r["diversity"] == "nan" for r in single)  # ILD is undefined for one item

    as_json = json.loads((out / "results.json").read_text())
    assert len(as_json) == len(rows) and as_json[0]["env"] == rows[0]["env"]
    assert all(r["diversity"] is None for r in as_json if r["env"] == "MovieLens-Bandit-v0")  # NaN -> null

    config = json.loads((out / "config.json").read_text())
    assert Suite.from_json(config["suite"]) == TINY
    # Personal mode: each seed is one user; a `users: 64` there claimed users the suite never had.
    assert "users" not in config["suite"] and "users" not in tiny_run.cells[0].info["suite"]
    assert dataclasses.replace(TINY, mode="shared", users=16).to_json()["users"] == 16
    assert {"jax", "rlrec", "numpy"} <= set(config["environment"]["versions"])
    assert config["environment"]["devices"]

    summary = (out / "summary.md").read_text()
    assert "## MovieLens-BanditSlate-v0" in summary and "| oracle | **0.00 ± 0.00** |" in summary
    assert "ILD" in summary.split("## MovieLens-BanditSlate-v0")[1]
    assert "ILD" not in summary.split("## MovieLens-BanditSlate-v0")[0].split("## MovieLens-Bandit-v0")[1]


def test_progress_where_nobody_watches_is_one_plain_line_per_phase(tiny_logged):
    """No bar fragments ("\\r", cursor moves) in a log; a line per environment built, per cell and at the end."""
    result, log = tiny_logged
    assert "\r" not in log and "\x1b[" not in log
    lines = [line for line in log.splitlines() if line.startswith("suite tiny: ")]  # (encoding lines may come too)
    assert lines[0] == "suite tiny: 4 cells to run"
    assert [line.split(" in ")[0] for line in lines if " built " in line] == [
        f"suite tiny: built {env}" for env in TINY.envs
    ]
    cells = [line for line in lines if line.startswith("suite tiny: cell ")]
    assert [line.split(":")[1] for line in cells] == [
        f" cell {number}/4 {env} x {agent}" for number, (env, agent) in enumerate(TINY.cells, 1)
    ]
    for line, cell in zip(cells, result.cells):
        ahead = " ahead" if cell.info["compiled_ahead"] else ""
        assert f"compiled {_progress.duration(cell.info['compile_time_s'])}{ahead}, ran " in line, line
        assert line.endswith(" elapsed)") or " elapsed, ~" in line, line
    assert "left)" not in cells[0]  # no estimate from the first cell alone (it compiles cold)
    assert lines[-1].startswith("suite tiny: 4 cells in ") and len(lines) == 1 + 2 + 4 + 1


@pytest.mark.parametrize("watched", [False, True], ids=["log", "terminal"])
def test_resuming_a_finished_suite_shows_no_progress(tiny_run, capsys, monkeypatch, watched):
    monkeypatch.setattr(_progress, "interactive", lambda: watched)
    assert run_suite(TINY, tiny_run.out).ran == []
    assert capsys.readouterr().err == ""  # it used to print a full bar twice


def test_rerun_resumes_without_redoing_cells(tiny_run, tmp_path, capsys):
    rows = read_rows(tiny_run.out / "results.csv")
    again = run_suite(TINY, tiny_run.out, progress=False)
    assert again.ran == []
    assert read_rows(tiny_run.out / "results.csv") == rows
    # A lost cell is recomputed alone, and a recomputed cell equals the first run (same seeds, same numbers).
    lost = tiny_run.out / "cells" / "MovieLens-BanditSlate-v0__random.npz"
    before = Cell.read(lost)
    lost.unlink()
    capsys.readouterr()
    redone = run_suite(TINY, tiny_run.out, progress=True)
    assert redone.ran == [("MovieLens-BanditSlate-v0", "random")]
    log = [line for line in capsys.readouterr().err.splitlines() if line.startswith("suite tiny: ")]
    assert log[0] == "suite tiny: 1 of 4 cells to run (3 finished before)"
    assert log[-2].startswith("suite tiny: cell 3/4 MovieLens-BanditSlate-v0 x random: compiled ")
    assert log[-1].startswith("suite tiny: 1 cell in ")
    after = Cell.read(lost)
    np.testing.assert_array_equal(after.cumulative_regret, before.cumulative_regret)
    for name, values in before.metrics.items():
        np.testing.assert_array_equal(after.metrics[name], values, err_msg=name)


def test_compiling_ahead_changes_no_number(tiny_run, tmp_path):
    """Cells compiled by worker threads (the default) give what cells compiled one by one give, seed for seed."""
    serial = run_suite(TINY, tmp_path / "serial", progress=False, compile_ahead=False)
    assert [(c.env, c.agent) for c in serial.cells] == [(c.env, c.agent) for c in tiny_run.cells]
    for ahead, one_by_one in zip(tiny_run.cells, serial.cells):
        np.testing.assert_array_equal(ahead.cumulative_regret, one_by_one.cumulative_regret)
        for name, values in one_by_one.metrics.items():
            np.testing.assert_array_equal(ahead.metrics[name], values, err_msg=f"{ahead.env} {ahead.agent} {name}")
        assert ahead.info["compile_time_s"] <= ahead.info["wall_time_s"]
        assert ahead.info["compiled_ahead"] and not one_by_one.info["compiled_ahead"]
    # Compile times that overlap are said to overlap; one by one, they are not.
    assert "compile times overlap" in (tiny_run.out / "summary.md").read_text()
    assert "compile times overlap" not in (tmp_path / "serial" / "summary.md").read_text()


def _results_files(out):
    """Every file of a run folder but the lock's bookkeeping (which each run rewrites) with its mtime."""
    return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.name not in LOCK_FILES}


def test_a_folder_written_with_users_in_personal_mode_still_resumes(tiny_run, tmp_path):
    """Folders written before personal-mode suites left ``users`` out of their JSON (it said 64) still resume."""
    old = tmp_path / "old"
    shutil.copytree(tiny_run.out, old, ignore=shutil.ignore_patterns(*LOCK_FILES))
    config = json.loads((old / "config.json").read_text())
    config["suite"]["users"] = 64
    (old / "config.json").write_text(json.dumps(config))
    for path in (old / "cells").glob("*.npz"):
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
        info = json.loads(str(arrays["info"]))
        info["suite"]["users"] = 64
        atomic_save_npz(path, **{**arrays, "info": np.asarray(json.dumps(info))})
    assert run_suite(TINY, old, progress=False).ran == []
    with pytest.raises(SuiteError, match=r"different suite \(seeds: saved 8, asked 4\)"):
        run_suite(dataclasses.replace(TINY, seeds=4), old, progress=False)


def test_a_different_suite_in_the_same_folder_is_refused(tiny_run, tmp_path):
    files = _results_files(tiny_run.out)
    with pytest.raises(SuiteError, match=r"different suite \(seeds: saved 8, asked 4\)"):
        run_suite(dataclasses.replace(TINY, seeds=4), tiny_run.out, progress=False)
    assert _results_files(tiny_run.out) == files  # nothing touched
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(SuiteError, match="does not hold a benchmark suite"):
        run_suite(TINY, stranger, progress=False)


def test_a_folder_in_use_by_another_process_is_refused_naming_it(tmp_path):
    # Two runs started together on one --out used to both exit 0 and leave the folder mixed (one suite's
    # config, the other's cells). Now the second is refused while the first holds the folder.
    out = tmp_path / "busy"
    holder = hold_folder_lock(out)
    try:
        with pytest.raises(SuiteError, match=rf"in use by another rlrec process \(pid {holder.pid} on "):
            run_suite(dataclasses.replace(TINY, seeds=2), out, progress=False)
        assert not (out / "config.json").exists() and not (out / "cells").exists()
    finally:
        holder.kill()
        holder.wait()


def test_cli_bench_resumes_and_rejects_a_mismatch(tiny_run, tmp_path):
    suite_file = tmp_path / "tiny.json"
    suite_file.write_text(json.dumps(TINY.to_json()))
    cli = CliRunner()
    result = cli.invoke(app, ["bench", "--suite", str(suite_file), "--out", str(tiny_run.out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "resumed: 4 finished cells" in result.output and "MovieLens-BanditSlate-v0" in result.output
    # Episodes end after 20 steps on the Bandit env (its override), not on BanditSlate: only that table says why.
    flat = " ".join(result.output.split())  # prose wraps at the console's width
    assert flat.count("no episode finished within 20 steps (an episode lasts up to max_steps=200") == 1
    result = cli.invoke(app, ["bench", "--suite", str(suite_file), "--out", str(tiny_run.out), "--steps", "30"])
    assert result.exit_code == 2
    assert "steps: saved 20, asked 30" in result.output
    result = cli.invoke(app, ["bench", "--list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "standard" in result.output


def test_one_device_equals_eight_forced_cpu_devices(tiny_run, tmp_path):
    script = textwrap.dedent(
        """
        import json, sys
        import jax
        from rlrec.bench.suite import Suite
        from rlrec.bench.suite_run import run_suite
        assert len(jax.devices()) == 8, jax.devices()
        run_suite(Suite.from_json(json.loads(sys.argv[1])), sys.argv[2], progress=False)
        """
    )
    environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    out = tmp_path / "eight"
    subprocess.run(
        [sys.executable, "-c", script, json.dumps(TINY.to_json()), str(out)],
        env=environment, check=True, timeout=900, capture_output=True,
    )
    one, eight = read_rows(tiny_run.out / "results.csv"), read_rows(out / "results.csv")
    assert {r["devices"] for r in one} == {"1"} and {r["devices"] for r in eight} == {"8"}
    assert [(r["env"], r["agent"], r["seed_index"]) for r in one] == [
        (r["env"], r["agent"], r["seed_index"]) for r in eight
    ]
    for column in METRIC_COLUMNS:
        np.testing.assert_allclose(
            [float(r[column]) for r in eight], [float(r[column]) for r in one], rtol=1e-5, atol=1e-6, err_msg=column
        )


# -- confidence intervals and tables on hand-made data -----------------------------------------------------------


def test_mean_intervals_by_hand():
    summary = report.mean_intervals({"a": np.array([1.0, 2.0, 3.0, 4.0]), "b": np.array([5.0, np.nan]),
                                     "c": np.array([np.nan, np.nan])})
    # mean 2.5; sample sd sqrt(5/3) = 1.290994; t(0.975, 3) = 3.182446; half = 3.182446 * 1.290994 / 2
    assert summary["a"][0] == pytest.approx(2.5)
    assert summary["a"][1] == pytest.approx(3.182446 * 1.290994 / 2, abs=1e-5)
    assert summary["b"][0] == 5.0 and np.isnan(summary["b"][1])  # one finite seed: no interval
    assert np.isnan(summary["c"][0])
    ninety = report.mean_intervals({"a": np.array([1.0, 2.0, 3.0, 4.0])}, confidence=0.9)
    assert ninety["a"][1] == pytest.approx(2.353363 * 1.290994 / 2, abs=1e-5)  # t(0.95, 3) = 2.353363


def _cell(env, agent, regret, diversity):
    seeds = len(regret)
    metrics = {name: np.full(seeds, np.nan) for name in METRIC_COLUMNS}
    metrics.update(cumulative_regret=np.asarray(regret, float), diversity=np.asarray(diversity, float),
                   coverage=np.full(seeds, 0.1), exposure_gini=np.full(seeds, 0.5))
    curves = np.cumsum(np.ones((seeds, 5)), axis=1) * np.asarray(regret, float)[:, None] / 5
    info = {"wall_time_s": 2.0, "compile_time_s": 1.5, "user_steps": seeds * 5, "devices": ["cpu:0"],
            "backend": "cpu", "device_kind": "cpu"}
    return Cell(env, agent, metrics, curves, info)


def test_summary_markdown_and_plots_from_hand_made_cells(tmp_path):
    suite = Suite(name="hand", envs=("E1",), agents=("a", "b", "c"), seeds=3, steps=5, description="by hand")
    cells = [
        _cell("E1", "a", [3.0, 4.0, 5.0], [0.2, 0.2, 0.2]),
        _cell("E1", "b", [1.0, 2.0, 3.0], [0.1, 0.1, 0.1]),  # lowest regret
        _cell("E1", "c", [1.0, 2.0, 3.0], [0.5, 0.6, 0.7]),  # ties on regret, most diverse
    ]
    result = SuiteResult(suite, tmp_path, cells, ran=[])
    text = report.suite_markdown(result)
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    half = 4.302653 * 1.0 / np.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert f"| b | **2.00 ± {half:.2f}** |" in rows["b"]
    assert f"| c | **2.00 ± {half:.2f}** |" in rows["c"]  # ties are all bold
    assert "| a | 4.00" in rows["a"]
    assert "**0.600 ± " in rows["c"] and "**" not in rows["b"].split("|")[3]  # ILD: c is the most diverse
    assert "CTR" not in text  # all-NaN columns are left out
    assert "30 user-steps/s while running" in text  # 3 cells x 15 user-steps in 3 x (2 - 1.5) s of running
    assert report.best_agents({"x": {"m": (np.nan, np.nan)}}, "m", True) == set()
    for path in (report.plot_suite_regret(result, tmp_path / "r.png"),
                 report.plot_regret_vs_diversity(result, tmp_path / "rd.svg")):
        assert path.stat().st_size > 5_000


@pytest.mark.slow
def test_every_suite_builds_all_its_envs_and_agents():
    import rlrec
    from rlrec.agents import make_agent

    for suite in SUITES.values():
        for env_id in suite.envs:
            env, params = rlrec.make(env_id, **suite.env_overrides.get(env_id, {}))
            assert suite.accuracy_k <= env.num_items(params)
            assert_observation_is_not_the_hidden_taste(env, params)  # IMDB's users included
            for agent in suite.agents:
                base, settings = suite.agent_settings(agent)
                assert make_agent(base, env, **settings).slate_size == env.slate_size


def test_variants_name_configurations_of_one_agent(tmp_path):
    suite = dataclasses.replace(TINY, agents=("random", "wide"), variants={"wide": {"agent": "linucb", "alpha": 2.0}},
                                hyperparameters={"wide": {"regulariser": 3.0}}).validate()
    assert suite.agent_settings("wide") == ("linucb", {"alpha": 2.0, "regulariser": 3.0})
    assert suite.agent_settings("random") == ("random", {})
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite.to_json()))
    assert get_suite(path) == suite
    assert "variants" not in TINY.to_json()  # folders written before variants existed still resume


def test_questions_section_and_plot_from_hand_made_cells(tmp_path):
    from rlrec.bench import questions

    env = "MovieLens-ConversationalSessionSlate-v0"
    rate = {"agent": "ask-linucb", "question_schedule": "linear"}
    suite = Suite(name="talk", envs=(env,), agents=("linucb", "ask-linucb", "ask-0", "ask-0.5"), seeds=3, steps=5,
                  variants={"ask-0": {**rate, "question_scale": 0.0}, "ask-0.5": {**rate, "question_scale": 0.5}})
    regret = {"linucb": [4.0, 5.0, 6.0], "ask-linucb": [3.0, 3.0, 4.0], "ask-0": [3.5, 4.0, 5.0],
              "ask-0.5": [2.0, 4.0, 6.0]}
    asked = {"linucb": [0.0] * 3, "ask-linucb": [2.0, 2.0, 4.0], "ask-0": [0.0] * 3, "ask-0.5": [0.0, 2.0, 2.0]}
    cells = []
    for agent in suite.agents:
        cells.append(_cell(env, agent, regret[agent], [0.2] * 3))
        cells[-1].metrics.update(questions=np.asarray(asked[agent]), episode_return=np.asarray([1.0, 2.0, 3.0]))
    result = SuiteResult(suite, tmp_path, cells, ran=[])
    values = questions.question_values(result)
    # ask-linucb saves 1, 2, 2 over never-asking linucb; over its silent twin ask-0 (the same learner asking
    # nothing) .5, 1, 1 with 2, 2, 4 questions: .25, .5, .25 per question (mean 1/3); the twin's regret per step
    # is (12.5 / 3) / 5, so in recommendations 1/3 / (5/6) = 0.4.
    mine = values[(env, "ask-linucb")]
    assert mine["regret_saved"][0] == pytest.approx(5 / 3) and mine["silent_twin"] == "ask-0"
    assert mine["saved_per_question"][0] == pytest.approx(1 / 3)
    assert mine["recommendations_per_answer"][0] == pytest.approx(0.4)
    # Seeds that asked nothing have no value per question (ask-0.5's first): (0 / 2 - 1 / 2) / 2.
    assert values[(env, "ask-0.5")]["saved_per_question"][0] == pytest.approx(-0.25)
    assert values[(env, "ask-0")]["silent_twin"] is None and np.isnan(values[(env, "ask-0")]["saved_per_question"][0])
    text = questions.questions_markdown(result)
    assert "| ask-linucb | 2.7 ± " in text and "| `ask-0` | 0.333 ± " in text
    assert "| questions |" in report.suite_markdown(result)  # the suite's own table gets the column
    assert questions.plot_regret_vs_questions(result, tmp_path / "q.png").stat().st_size > 5_000
