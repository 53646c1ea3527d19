import numpy as np
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
         "--out", str(tmp_path), "--hp", "alpha=0.5"],
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
    assert result.exit_code == 2 and "temperature must be > 0" in result.output


def test_envs_lists_registered_ids():
    result = runner.invoke(app, ["envs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "MovieLens-SessionSlate-v0" in result.output
