"""OPE suites: their descriptions, the table over seeds (hand-computed), the summary and plot, the command line."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rlrec.cli import app
from rlrec.ope import report
from rlrec.ope.suite import QUICK, SUITES, OPESuite, OPESuiteError, get_suite
from rlrec.ope.suite_run import OPESuiteResult, summarise


def test_the_quick_suite_is_what_the_issue_asks_for():
    suite = QUICK.validate()
    assert suite.envs == ("MovieLens-Bandit-v0", "MovieLens-BanditSlate-v0")
    assert suite.sizes == (1_000, 10_000, 100_000)
    assert "uniform" in suite.behaviours and any(b.startswith("epsilon-greedy") for b in suite.behaviours)
    assert set(suite.targets) == {"linucb", "text-match"}
    for each in SUITES.values():
        each.validate()


@pytest.mark.parametrize(
    "change, words",
    [
        ({"envs": ("Nope-v0",)}, "Unknown env"),
        ({"behaviours": ("softmax:text-match:-1",)}, "temperature must be > 0"),
        ({"targets": ("foo",)}, "greedy policies take one of"),
        ({"seeds": 1}, r"seeds must be a whole number in \[2, 2147483647\] \(bias and variance are measured over "
                       r"seeds\), got 1"),
        ({"sizes": (1_005,)}, "multiples of steps_per_user"),
        ({"estimators": ("magic",)}, "Unknown estimator"),
    ],
)
def test_a_bad_suite_says_what_to_change(change, words):
    with pytest.raises(OPESuiteError, match=words):
        dataclasses.replace(QUICK, **change).validate()


def test_suites_from_json(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "envs": ["MovieLens-Bandit-v0"], "behaviours": ["uniform"],
                                "targets": ["text-match"], "sizes": [100, 1000], "seeds": 3}))
    suite = get_suite(str(path))
    assert suite.sizes == (100, 1000) and suite.seeds == 3 and suite.steps_per_user == 10
    path.write_text(json.dumps({"name": "mine", "envs": ["MovieLens-Bandit-v0"], "behaviours": ["uniform"],
                                "targets": ["text-match"], "colour": "red"}))
    with pytest.raises(OPESuiteError, match="Unknown suite field"):
        get_suite(str(path))
    with pytest.raises(OPESuiteError, match="Unknown OPE suite 'nope'"):
        get_suite("nope")


def _results(errors: dict[tuple[str, int], list[float]], truth: float = 0.2) -> pd.DataFrame:
    rows = []
    for (estimator, rounds), values in errors.items():
        for seed, error in enumerate(values):
            rows.append({"env": "E", "behaviour": "uniform", "target": "text-match", "estimator": estimator,
                         "rounds": rounds, "seed": seed, "estimate": truth + error, "stderr": 0.01, "truth": truth})
    frame = pd.DataFrame(rows)
    frame["error"] = frame["estimate"] - frame["truth"]
    return frame


def test_the_table_over_seeds_by_hand():
    results = _results({("ips", 100): [0.1, -0.1, 0.3, -0.3], ("snips", 100): [np.nan, np.nan, 0.2, 0.0]})
    table = summarise(results).set_index("estimator")
    ips = table.loc["ips"]
    assert ips["bias"] == pytest.approx(0.0)
    assert ips["rmse"] == pytest.approx(np.sqrt((0.01 + 0.01 + 0.09 + 0.09) / 4))  # 0.2236
    assert ips["relative_rmse"] == pytest.approx(ips["rmse"] / 0.2)
    assert ips["std"] == pytest.approx(np.std([0.1, -0.1, 0.3, -0.3], ddof=1))
    assert ips["rmse_low"] <= ips["rmse"] <= ips["rmse_high"]
    half = 3.182446 * ips["std"] / 2.0  # Student t (3 degrees of freedom, 97.5%) * sd / sqrt(4)
    assert ips["bias_high"] == pytest.approx(half, rel=1e-5)
    snips = table.loc["snips"]
    assert snips["undefined"] == 2 and snips["seeds"] == 4
    assert snips["bias"] == pytest.approx(0.1) and snips["rmse"] == pytest.approx(np.sqrt(0.02))


def test_the_summary_and_the_plot(tmp_path):
    suite = dataclasses.replace(QUICK, envs=("MovieLens-Bandit-v0",), behaviours=("uniform",),
                                targets=("text-match",), sizes=(100, 1000), seeds=4)
    results = _results({("ips", 100): [0.1, -0.1, 0.3, -0.3], ("ips", 1000): [0.05, -0.05, 0.1, -0.1],
                        ("snips", 100): [np.nan, np.nan, np.nan, 0.0], ("snips", 1000): [0.01, 0.0, -0.01, 0.02]})
    results["env"] = "MovieLens-Bandit-v0"
    result = OPESuiteResult(suite, results, summarise(results), ran=1, cells=1)
    text = report.summary_markdown(result)
    assert "### logged by uniform, target text-match (true value 0.2000 clicks per round)" in text
    assert "| `ips` | 112% [" in text  # rmse 0.2236 / 0.2 at 100 rounds
    snips_line = next(line for line in text.splitlines() if line.startswith("| `snips`"))
    assert snips_line.split(" | ")[1] == "-"  # undefined in 3 of 4 logs at 100 rounds
    path = report.plot_relative_rmse(result, tmp_path / "relative_rmse.png")
    assert path.stat().st_size > 10_000


def test_the_command_lists_suites_and_refuses_a_bad_one():
    runner = CliRunner()
    listed = runner.invoke(app, ["ope", "--list"])
    assert listed.exit_code == 0, listed.output
    assert "quick" in listed.output and "standard" in listed.output and "1,000, 10,000, 100,000" in listed.output
    bad = runner.invoke(app, ["ope", "--suite", "nope"])
    assert bad.exit_code == 2 and "Unknown OPE suite 'nope'" in bad.output


def test_a_log_size_that_does_not_fit_is_refused_before_any_cell(tmp_path, monkeypatch):
    """The memory of every env's largest log is checked before the first cell runs (issue 30, item 10)."""
    from rlrec import _memory
    from rlrec.errors import InputError
    from rlrec.ope import suite_run

    monkeypatch.setattr(_memory, "available_bytes", lambda: 4 * 2**20)  # a machine with 4 MiB free
    monkeypatch.setattr(suite_run, "_run_cell", lambda *args: pytest.fail("a cell ran before the memory check"))
    suite = OPESuite(name="big", description="too big", envs=("MovieLens-Bandit-v0", "MovieLens-BanditSlate-v0"),
                     behaviours=("uniform",), targets=("text-match",), sizes=(100, 1_000_000), seeds=2)
    with pytest.raises(InputError, match=r"1,000,000 rounds of uniform on MovieLens-Bandit-v0 need "
                                                       r"about .*collect at most [\d,]+ rounds here"):
        suite_run.run_ope_suite(suite, tmp_path / "run", progress=False)
    assert not list((tmp_path / "run").glob("cells/**/*.json"))


@pytest.mark.slow
def test_a_small_suite_runs_writes_its_outputs_and_resumes(tmp_path):
    from rlrec.ope.suite_run import run_ope_suite

    suite = OPESuite(name="small", description="two sizes", envs=("MovieLens-BanditSlate-v0",),
                     behaviours=("uniform",), targets=("text-match",), sizes=(200, 2000), seeds=2)
    result = run_ope_suite(suite, tmp_path, progress=False)
    assert result.ran == 2 and len(result.results) == 2 * 2 * 9  # seeds x sizes x estimators
    for name in ("summary.md", "table.csv", "results.csv", "relative_rmse.png", "suite.json"):
        assert (tmp_path / name).exists()
    # The truth is the same for every estimator of a log; DM's error is finite.
    first = result.results[result.results["seed"] == 0]
    assert first.groupby("rounds")["truth"].nunique().max() == 1
    assert np.isfinite(first[first["estimator"] == "dm"]["error"]).all()
    again = run_ope_suite(suite, tmp_path, progress=False)
    assert again.ran == 0 and again.results.equals(result.results)
    more = run_ope_suite(dataclasses.replace(suite, seeds=3), tmp_path, progress=False)  # adds a seed
    assert more.ran == 1 and more.results[more.results["seed"] < 2].reset_index(drop=True).equals(result.results)
    with pytest.raises(OPESuiteError, match="another suite"):
        run_ope_suite(dataclasses.replace(suite, sizes=(200, 1000)), tmp_path, progress=False)
