"""Training runs on disk: resume == uninterrupted, Ctrl-C keeps the last checkpoint, clear errors, CLI."""

import csv
import json
import shutil

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from rlrec.cli import app
from rlrec.metrics import NonFiniteResultError
from rlrec.train import run as train_run
from rlrec.train.checkpoint import Checkpointer, CheckpointError
from rlrec.train.run import TrainConfig, evaluate, load_trained, run_training
from rlrec.train.trainer import Trainer

TINY = dict(
    env="MovieLens-Session-v0",
    agent="ppo",
    hyperparameters={"hidden": 16, "rollout_length": 4, "epochs": 1, "minibatches": 2},
    seeds=2,
    users=8,
    chunk=2,
    seed=7,
)


def config(**changes):
    return TrainConfig(**{**TINY, "iterations": 4, **changes})


def _synthetic_make(env_id, **overrides):
    from synthetic import UNIT, synthetic_env

    return synthetic_env(env_id, **UNIT, **overrides)


@pytest.fixture
def synthetic(monkeypatch):
    """Training runs build TINY's env on the synthetic world of conftest.py (no language model): a run folder
    records the env by name, so its builder (``rlrec.train.run.make``) is swapped while the test runs."""
    monkeypatch.setattr(train_run, "make", _synthetic_make)


def final_params(out_dir):
    return load_trained(out_dir)[4].params


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_run, "make", _synthetic_make)
        run_training(config(), out, progress=False)
    return out


@pytest.mark.usefixtures("synthetic")
def test_run_writes_config_metrics_and_checkpoints(uninterrupted):
    saved = json.loads((uninterrupted / "config.json").read_text())
    assert saved["agent"] == "ppo" and saved["iterations"] == 4 and "jax" in saved["versions"]
    with (uninterrupted / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["iteration"]) for row in rows] == [2, 4]
    assert all(np.isfinite(float(row["episode_return"])) and float(row["loss"]) == float(row["loss"]) for row in rows)
    assert Checkpointer(uninterrupted).all_steps() == [2, 4]


@pytest.mark.usefixtures("synthetic")
def test_resume_gives_the_same_parameters(uninterrupted, tmp_path):
    out = tmp_path / "run"
    run_training(config(iterations=2), out, progress=False)
    run_training(config(iterations=4), out, resume=True, progress=False)
    jax.tree.map(np.testing.assert_array_equal, final_params(uninterrupted), final_params(out))
    with (out / "metrics.csv").open() as handle:
        assert [int(row["iteration"]) for row in csv.DictReader(handle)] == [2, 4]  # no duplicated rows


@pytest.mark.usefixtures("synthetic")
def test_ctrl_c_keeps_the_last_complete_checkpoint(uninterrupted, tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls = {"n": 0}
    advance = Trainer.advance

    def interrupted(self, carry, iterations):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return advance(self, carry, iterations)

    monkeypatch.setattr(Trainer, "advance", interrupted)
    with pytest.raises(KeyboardInterrupt, match="last complete checkpoint is iteration 2"):
        run_training(config(), out, progress=False)
    monkeypatch.setattr(Trainer, "advance", advance)
    assert Checkpointer(out).latest_step() == 2
    run_training(config(), out, resume=True, progress=False)
    jax.tree.map(np.testing.assert_array_equal, final_params(uninterrupted), final_params(out))


@pytest.mark.usefixtures("synthetic")
def test_clear_errors(uninterrupted, tmp_path):
    with pytest.raises(FileExistsError, match="--resume"):
        run_training(config(), uninterrupted, progress=False)
    with pytest.raises(CheckpointError, match="users: saved 8, asked 16"):
        run_training(config(users=16), uninterrupted, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="Nothing to resume"):
        run_training(config(), tmp_path / "empty", resume=True, progress=False)
    with pytest.raises(CheckpointError, match="not a training run"):
        load_trained(tmp_path)
    with pytest.raises(ValueError, match="users must be a positive integer"):
        config(users=0)
    # A damaged checkpoint is named, and an earlier one still loads.
    damaged = tmp_path / "damaged"
    shutil.copytree(uninterrupted, damaged)
    for path in (damaged / "checkpoints" / "4" / "state").rglob("*"):
        if path.is_file() and path.stat().st_size > 1024:
            path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="4"):
        load_trained(damaged)
    assert load_trained(damaged, step=2)[4] is not None
    # A checkpoint written by another network size is rejected with the leaf that differs.
    mismatched = tmp_path / "mismatched"
    shutil.copytree(uninterrupted, mismatched)
    saved = json.loads((mismatched / "config.json").read_text())
    saved["hyperparameters"]["hidden"] = 32
    (mismatched / "config.json").write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match="hidden"):
        load_trained(mismatched)


@pytest.mark.usefixtures("synthetic")
def test_relative_out_trains_checkpoints_and_evaluates(uninterrupted, tmp_path, monkeypatch):
    # The CLI's default --out is relative (runs/train): it used to fail at the first checkpoint (orbax needs
    # absolute paths), and `rlrec evaluate RELDIR` then called the good checkpoint corrupt.
    monkeypatch.chdir(tmp_path)
    run_training(config(), "runs/relative", progress=False)
    jax.tree.map(np.testing.assert_array_equal, final_params(uninterrupted), final_params("runs/relative"))
    monkeypatch.chdir(tmp_path / "runs")
    assert len(evaluate("relative", num_seeds=1, num_steps=5)["seeds"]) == 2


@pytest.mark.usefixtures("synthetic")
def test_a_run_folder_in_use_is_refused(tmp_path):
    from test_files import hold_folder_lock

    from rlrec.files import FolderInUseError

    holder = hold_folder_lock(tmp_path / "busy")
    try:
        with pytest.raises(FolderInUseError, match=rf"pid {holder.pid}"):
            run_training(config(), tmp_path / "busy", progress=False)
        assert not (tmp_path / "busy" / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.usefixtures("synthetic")
def test_a_non_finite_loss_stops_training_before_it_is_saved(tmp_path, monkeypatch):
    advance = Trainer.advance
    calls = {"n": 0}

    def poisoned(self, carry, iterations):
        carry, outputs = advance(self, carry, iterations)
        calls["n"] += 1
        if calls["n"] == 2:
            outputs = dict(outputs, loss=outputs["loss"].copy())
            outputs["loss"][1, 1] = np.nan
        return carry, outputs

    monkeypatch.setattr(Trainer, "advance", poisoned)
    with pytest.raises(NonFiniteResultError, match=r"non-finite loss \(nan\) at seed 1, iteration 4"):
        run_training(config(), tmp_path / "run", progress=False)
    assert Checkpointer(tmp_path / "run").all_steps() == [2]  # the last good checkpoint stays the latest


@pytest.mark.usefixtures("synthetic")
def test_evaluate_a_checkpoint(uninterrupted):
    summary = evaluate(uninterrupted, num_seeds=2, num_steps=20)
    assert summary["deterministic"] is False  # policy-gradient agents sample by default
    assert len(summary["seeds"]) == 2
    for row in summary["seeds"]:
        assert row["episode_return"] >= 0 and 0 <= row["ctr"] <= 1 and row["regret_per_step"] >= 0


@pytest.mark.slow  # the Python API path is tested above; this adds the CLI on top (~1 min of compiling)
def test_cli_train_and_evaluate(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(app, ["train", "--agent", "dqn", "--list-hp"])
    assert listed.exit_code == 0 and "epsilon_decay_steps" in listed.output
    bad = runner.invoke(app, ["train", "--agent", "ppo", "--hp", "not_a_knob=1", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "not_a_knob" in bad.output
    assert not (tmp_path / "x").exists()  # nothing half-written
    out = tmp_path / "cli"
    args = ["train", "--agent", "ppo", "--seeds", "2", "--users", "8", "--iterations", "2", "--chunk", "2",
            "--seed", "7", "--out", str(out)]
    for name, value in TINY["hyperparameters"].items():
        args += ["--hp", f"{name}={value}"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "evaluation of" in result.output
    flat = " ".join(result.output.split())  # prose wraps at the console's width
    assert f"{train_run.EVAL_SEEDS} seeds x {train_run.EVAL_STEPS} steps per trained seed" in flat
    # The evaluation that ends training is saved, and `rlrec evaluate` with its defaults reproduces it exactly.
    saved = json.loads((out / train_run.EVALUATION_FILE).read_text())
    assert saved == json.loads(json.dumps(evaluate(out)))
    evaluated = runner.invoke(app, ["evaluate", str(out), "--seeds", "2", "--steps", "10"])
    assert evaluated.exit_code == 0, evaluated.output
    assert train_run.FORMAT in (out / "config.json").read_text()


@pytest.mark.usefixtures("synthetic")
def test_cli_evaluate_prints_what_evaluate_returns(uninterrupted, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(uninterrupted), "--seeds", "2", "--steps", "20"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())  # prose wraps at the console's width
    assert "at iteration 4 on fresh users: 2 seeds x 20 steps per trained seed, sampled actions" in flat
    summary = evaluate(uninterrupted, num_seeds=2, num_steps=20)  # the same settings give the same numbers
    assert (summary["iteration"], summary["num_seeds"], summary["num_steps"]) == (4, 2, 20)
    for row in summary["seeds"]:
        assert f"{row['episode_return']:.2f}" in result.output and f"{row['regret_per_step']:.4f}" in result.output
    # Without --seeds/--steps the command uses the library's defaults, which `rlrec train` evaluates with.
    calls = []
    monkeypatch.setattr(train_run, "evaluate", lambda out, **kwargs: calls.append(kwargs) or summary)
    assert runner.invoke(app, ["evaluate", str(uninterrupted)]).exit_code == 0
    assert calls == [{"step": None, "deterministic": None}]


def test_train_shows_progress_by_default_only_where_someone_watches(capsys, monkeypatch):
    """rlrec.train.train: a bar by default in a terminal or a notebook, silent elsewhere unless asked (then plain
    lines, no "\\r"); the numbers are the same either way."""
    from rlrec import _progress
    from rlrec.agents import make_agent
    from rlrec.envs.probes import make_probe
    from rlrec.train.trainer import train

    env, params = make_probe("two-step")  # the sizes of test_deep_agents' chunking test: its programs, cached
    agent = make_agent("ppo", env, gamma=0.9, learning_rate=3e-3, rollout_length=4, hidden=32, entropy_coef=0.0)
    sizes = dict(num_iterations=12, num_seeds=2, num_users=8, seed=3, chunk_size=4)
    monkeypatch.setattr(_progress, "interactive", lambda: False)
    capsys.readouterr()
    quiet = train(env, params, agent, **sizes)
    assert capsys.readouterr().err == ""
    logged = train(env, params, agent, **sizes, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b[" not in err
    lines = err.splitlines()
    assert lines[0] == f"training ppo on {env.name}: 12 iterations of 2 seed(s) x 8 users in 3 chunk(s)"
    assert lines[-1].startswith(f"training ppo on {env.name}: 12 iterations in ")
    monkeypatch.setattr(_progress, "interactive", lambda: True)
    watched = train(env, params, agent, **sizes)
    bar = capsys.readouterr().err
    assert f"training ppo on {env.name}: 100%" in bar and "12/12" in bar and "12 iterations in " in bar
    assert train(env, params, agent, **sizes, progress=False) is not None and capsys.readouterr().err == ""
    for other in (logged, watched):
        for name in quiet.metrics:
            np.testing.assert_array_equal(quiet.metrics[name], other.metrics[name])


def test_someone_watches_in_a_terminal_or_a_notebook(monkeypatch):
    import sys
    import types

    from rlrec import _progress

    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: False))
    assert not _progress.interactive() and not _progress.wanted(None) and _progress.wanted(True)
    kernel = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: kernel))
    assert _progress.in_notebook() and _progress.interactive() and not _progress.wanted(False)
    console = types.SimpleNamespace(config={"TerminalInteractiveShell": {}})  # IPython in a terminal: its stderr
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: console))
    assert not _progress.in_notebook() and not _progress.interactive()
