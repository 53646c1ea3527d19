import numpy as np
import pytest
from typer.testing import CliRunner

from rlrec.cli import app

runner = CliRunner()


def test_info_lists_versions_and_devices():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "jax devices" in result.output and "all-MiniLM-L6-v2" in result.output


def test_catalog_summary_and_query(movielens):
    result = runner.invoke(
        app, ["catalog", "movielens", "--dim", "32", "--query", "animated comedy for kids", "-k", "3"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "9066" in result.output
    assert "nearest to 'animated comedy for kids'" in result.output


def test_catalog_unknown_name():
    result = runner.invoke(app, ["catalog", "netflix"])
    assert result.exit_code == 2
    assert "Unknown catalog 'netflix'" in result.output


def test_embed_writes_npz(tmp_path, encoder):
    source = tmp_path / "texts.csv"
    source.write_text("sku,description\nA1,a funny cartoon\nB2,a war documentary\n")
    out = tmp_path / "out.npz"
    result = runner.invoke(app, ["embed", str(source), "--text-column", "description", "--id-column", "sku", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out) as saved:
        assert saved["ids"].tolist() == ["A1", "B2"]
        np.testing.assert_allclose(saved["embeddings"], encoder.encode(["a funny cartoon", "a war documentary"]), atol=1e-6)
        assert str(saved["model"]) == "sentence-transformers/all-MiniLM-L6-v2"


def test_embed_bad_inputs(tmp_path):
    source = tmp_path / "texts.csv"
    source.write_text("id,text\n1,hello\n2,\n")
    out = tmp_path / "out.npz"
    result = runner.invoke(app, ["embed", str(source), "--text-column", "nope", "-o", str(out)])
    assert result.exit_code == 2 and "Column 'nope'" in result.output
    result = runner.invoke(app, ["embed", str(source), "-o", str(out)])
    assert result.exit_code == 2 and "Row 1" in result.output
    result = runner.invoke(app, ["embed", str(tmp_path / "missing.csv"), "-o", str(out)])
    assert result.exit_code == 2 and "No such file" in result.output
    assert not out.exists()


def test_run_prints_table_and_writes_plot_and_csv(tmp_path, movielens):
    result = runner.invoke(
        app,
        ["run", "--env", "MovieLens-BanditSlate-v0", "-a", "random", "-a", "oracle", "--seeds", "2", "--steps", "6",
         "--out", str(tmp_path)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "cumulative regret" in result.output and "oracle" in result.output
    assert (tmp_path / "MovieLens-BanditSlate-v0-personal-regret.png").stat().st_size > 0
    rows = (tmp_path / "MovieLens-BanditSlate-v0-personal-summary.csv").read_text().splitlines()
    oracle_regret = [row for row in rows if row.startswith("MovieLens-BanditSlate-v0,oracle,personal,2,6,cumulative_regret,")]
    assert oracle_regret and float(oracle_regret[0].split(",")[6]) == 0.0


def test_run_unknown_names_list_the_valid_ones(tmp_path):
    result = runner.invoke(app, ["run", "--env", "Nope-v0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "MovieLens-Bandit-v0" in result.output
    result = runner.invoke(app, ["run", "-a", "no-such-agent", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "linucb" in result.output
    result = runner.invoke(app, ["run", "--set", "temperature=-1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "temperature must be in [0.001, 10000]" in result.output


def test_envs_lists_registered_ids():
    result = runner.invoke(app, ["envs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "MovieLens-SessionSlate-v0" in result.output


def _one_error_line(result) -> str:
    """The output of a failed command: exit code 2, no traceback, exactly one line that starts with error:."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Hyperparameters: a typo was silently ignored, a negative ridge ran a NaN LinUCB as a normal result.
        (["run", "-a", "linucb", "--hp", "alpah=5"], "no agent of this command takes 'alpah' (linucb: alpha,"),
        (["run", "-a", "linucb", "--hp", "regulariser=-1"], "linucb: regulariser must be (0, 1e+06]"),
        (["run", "-a", "random", "--hp", "linucb:alpha=1"], "'linucb' is not one of the agents of this command"),
        (["run", "-a", "linucb", "--hp", "linucb:alpah=1"], "linucb has no hyperparameter 'alpah'"),
        (["run", "-a", "linucb", "--hp", "alpha"], "--hp 'alpha' must look like name=value"),
        (["run", "--set", "slate_size=abc"], "slate_size must be a positive whole number, got 'abc'"),
        (["run", "--set", "no_click_logit=1e39"], "no_click_logit must be in [-10000, 10000]"),
        (["run", "--seeds", "0"], "Invalid value for '--seeds'"),
        (["run", "--no-such-option"], "No such option: --no-such-option"),
        (["bogus-command"], "No such command 'bogus-command'"),
        (["train", "--hp", "learning_rate=0"], "ppo: learning_rate must be (0, 1]"),
        (["train", "--set", "temperature=1e-45"], "temperature must be in [0.001, 10000]"),
        (["evaluate", "/no/such/run"], "is not a training run (no config.json)"),
        (["bench", "--suite", "no-such-suite"], "Unknown suite 'no-such-suite'"),
    ],
)
def test_input_mistakes_end_in_one_error_line(tmp_path, args, message):
    result = runner.invoke(app, args + (["--out", str(tmp_path / "out")] if args[0] in ("run", "train") else []))
    assert message in _one_error_line(result)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_bad_files_and_folders_end_in_one_error_line(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x", "envs": [')
    assert "Cannot read a suite from" in _one_error_line(runner.invoke(app, ["bench", "--suite", str(broken)]))
    typed = tmp_path / "typed.json"
    typed.write_text('{"name": "x", "envs": "MovieLens-Bandit-v0", "agents": ["random"], "seeds": 1, "steps": 1}')
    assert "envs must be a list of env ids" in _one_error_line(runner.invoke(app, ["bench", "--suite", str(typed)]))
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    result = runner.invoke(app, ["bench", "--suite", "quick", "--out", str(a_file)])
    assert "is a file, not a folder" in _one_error_line(result)
    result = runner.invoke(app, ["train", "--iterations", "1", "--out", str(a_file)])
    assert "is a file, not a folder" in _one_error_line(result)
    assert a_file.read_text() == "not a folder"


def test_debug_env_var_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["run", "--set", "slate_size=abc", "--out", str(tmp_path)], env={"RLREC_DEBUG": "1"})
    assert isinstance(result.exception, ValueError) and "slate_size" in str(result.exception)
