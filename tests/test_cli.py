import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from cli_checks import one_error_line
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
    result = runner.invoke(
        app, ["embed", str(source), "--text-column", "description", "--id-column", "sku", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    with np.load(out) as saved:
        assert saved["ids"].tolist() == ["A1", "B2"]
        np.testing.assert_allclose(
            saved["embeddings"], encoder.encode(["a funny cartoon", "a war documentary"]), atol=1e-6
        )
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
    out = tmp_path / "first"
    args = ["run", "--env", "MovieLens-BanditSlate-v0", "-a", "random", "-a", "oracle", "--seeds", "2", "--steps", "6"]
    result = runner.invoke(app, [*args, "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "cumulative regret" in result.output and "oracle" in result.output
    assert (out / "regret.png").stat().st_size > 0
    rows = (out / "summary.csv").read_text().splitlines()
    oracle_regret = [
        row for row in rows if row.startswith("MovieLens-BanditSlate-v0,oracle,personal,2,6,cumulative_regret,")
    ]
    assert oracle_regret and float(oracle_regret[0].split(",")[6]) == 0.0
    config = json.loads((out / "config.json").read_text())
    assert config["agents"] == ["random", "oracle"] and config["seeds"] == 2 and config["steps"] == 6
    # No episode ends within 6 steps of a 200-step env: the table says why episode return is missing.
    flat = " ".join(result.output.split())  # prose wraps at the console's width
    assert "no episode finished within 6 steps" in flat and "--steps 200 or more" in flat

    # Never overwritten silently: a second run into the same folder is refused before it runs ...
    before = (out / "summary.csv").read_text()
    again = runner.invoke(app, [*args[:-4], "--seeds", "1", "--steps", "3", "--out", str(out)])
    assert "already holds a run" in one_error_line(again) and "--overwrite" in again.output
    assert (out / "summary.csv").read_text() == before
    # ... unless asked.
    replaced = runner.invoke(app, [*args[:-4], "--seeds", "1", "--steps", "3", "--out", str(out), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert ",1,3,cumulative_regret," in (out / "summary.csv").read_text()


def test_run_never_replaces_another_kind_of_run(tmp_path):
    folder = tmp_path / "trained"
    folder.mkdir()
    (folder / "config.json").write_text('{"format": "rlrec-train-v1"}')
    result = runner.invoke(app, ["run", "-a", "random", "--out", str(folder), "--overwrite"])
    assert "holds another kind of run" in one_error_line(result)
    assert (folder / "config.json").read_text() == '{"format": "rlrec-train-v1"}'


def test_run_gives_each_run_its_own_folder(tmp_path, monkeypatch, movielens):
    monkeypatch.chdir(tmp_path)
    args = ["run", "-a", "random", "--seeds", "1", "--steps", "2"]
    for _ in range(2):
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all(f.name.startswith("run-MovieLens-BanditSlate-v0-") for f in folders)
    assert all((f / "summary.csv").exists() and (f / "regret.png").exists() for f in folders)


def test_run_unknown_names_list_the_valid_ones(tmp_path):
    result = runner.invoke(app, ["run", "--env", "Nope-v0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "MovieLens-Bandit-v0" in result.output
    result = runner.invoke(app, ["run", "-a", "no-such-agent", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "linucb" in result.output
    result = runner.invoke(app, ["run", "--set", "temperature=-1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "temperature must be in [0.001, 10000]" in result.output
    result = runner.invoke(app, ["run", "-a", "conucb", "--out", str(tmp_path)])  # before any catalog loads
    assert result.exit_code == 2 and "use a Conversational env such as MovieLens-Conversational-v0" in result.output


def test_envs_lists_registered_ids():
    result = runner.invoke(app, ["envs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "MovieLens-SessionSlate-v0" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Hyperparameters: a typo was silently ignored, a negative ridge ran a NaN LinUCB as a normal result.
        (["run", "-a", "linucb", "--hp", "alpah=5"], "no agent of this command takes 'alpah' (linucb: alpha,"),
        (["run", "-a", "linucb", "--hp", "regulariser=-1"], "linucb: regulariser must be in [0.01, 1e+06]"),
        (["run", "-a", "random", "--hp", "linucb:alpha=1"], "'linucb' is not one of the agents of this command"),
        (["run", "-a", "linucb", "--hp", "linucb:alpah=1"], "linucb has no hyperparameter 'alpah'"),
        (["run", "-a", "linucb", "--hp", "alpha"], "--hp 'alpha' must look like name=value"),
        (["run", "--set", "slate_size=abc"], "slate_size must be a positive whole number, got 'abc'"),
        (["run", "--set", "no_click_logit=1e39"], "no_click_logit must be in [-10000, 10000]"),
        (["run", "--seeds", "0"], "Invalid value for '--seeds'"),
        (["run", "-a", "ppo"], "ppo learns from rollouts: train it with `rlrec train --agent ppo`"),
        (["run", "--no-such-option"], "No such option: --no-such-option"),
        (["bogus-command"], "No such command 'bogus-command'"),
        (["train", "--hp", "learning_rate=0"], "ppo: learning_rate must be in (0, 1]"),
        (["train", "--set", "temperature=1e-45"], "temperature must be in [0.001, 10000]"),
        (["evaluate", "/no/such/run"], "is not a training run (no config.json)"),
        (["bench", "--suite", "no-such-suite"], "Unknown suite 'no-such-suite'"),
    ],
)
def test_input_mistakes_end_in_one_error_line(tmp_path, args, message):
    result = runner.invoke(app, args + (["--out", str(tmp_path / "out")] if args[0] in ("run", "train") else []))
    assert message in one_error_line(result)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_bad_files_and_folders_end_in_one_error_line(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x", "envs": [')
    assert "Cannot read a suite from" in one_error_line(runner.invoke(app, ["bench", "--suite", str(broken)]))
    typed = tmp_path / "typed.json"
    typed.write_text('{"name": "x", "envs": "MovieLens-Bandit-v0", "agents": ["random"], "seeds": 1, "steps": 1}')
    assert "envs must be a list of env ids" in one_error_line(runner.invoke(app, ["bench", "--suite", str(typed)]))
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    result = runner.invoke(app, ["bench", "--suite", "quick", "--out", str(a_file)])
    assert "is a file, not a folder" in one_error_line(result)
    result = runner.invoke(app, ["train", "--iterations", "1", "--out", str(a_file)])
    assert "is a file, not a folder" in one_error_line(result)
    assert a_file.read_text() == "not a folder"


def _raising(error: BaseException):
    def raise_it(*args, **kwargs):
        raise error

    return raise_it


@pytest.mark.parametrize("error", [
    ValueError("Incompatible shapes for broadcasting: shapes=[(0,), (9066,)]"),  # issue 38's report
    OSError("an OSError raised by code, not by the operating system"),
    KeyError("prototypes"),
    TypeError("unsupported operand"),
])
def test_a_bug_prints_its_traceback_and_asks_for_a_report(monkeypatch, error):
    from rlrec import lm
    from rlrec.cli import BUG_EXIT_CODE

    monkeypatch.setattr(lm, "default_cache_dir", _raising(error))  # `rlrec info` calls it
    result = runner.invoke(app, ["info"])
    assert result.exit_code == BUG_EXIT_CODE and BUG_EXIT_CODE != 2, (result.exit_code, result.output)
    assert "Traceback (most recent call last)" in result.output and type(error).__name__ in result.output
    assert "default_cache_dir" in result.output  # the frames are there: the evidence is kept
    assert "This is a bug in rlrec, not a mistake in your input" in result.output
    assert "rlrec info" in result.output.splitlines()[-1]  # what to include in the report


def _input_mistakes() -> list[BaseException]:
    from rlrec import errors
    from rlrec.bench.suite import SuiteError
    from rlrec.data.preprocessing import CatalogError
    from rlrec.files import FolderInUseError
    from rlrec.ope.suite import OPESuiteError
    from rlrec.train.checkpoint import CheckpointError

    return [
        errors.InputError("seeds must be a whole number >= 1, got 2.5."),
        CatalogError("Row 3 has 4 fields, the header 3."),
        SuiteError("A suite needs the field(s) ['seeds']."),
        OPESuiteError("targets lists 'uniform' twice."),
        errors.MissingPathError("No rlrec log at x.npz: check the path."),
        FolderInUseError("runs/x is in use by another rlrec process."),
        CheckpointError("Nothing to resume in runs/x."),
        PermissionError(13, "Permission denied", "/root/runs/results.csv"),  # the operating system's refusal
    ]


@pytest.mark.parametrize("index", range(len(_input_mistakes())))
def test_input_mistakes_and_refusals_of_the_machine_stay_one_error_line(monkeypatch, index):
    from rlrec import lm

    error = _input_mistakes()[index]
    monkeypatch.setattr(lm, "default_cache_dir", _raising(error))
    assert str(error) in one_error_line(runner.invoke(app, ["info"]))


def test_debug_env_var_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["run", "--set", "slate_size=abc", "--out", str(tmp_path)], env={"RLREC_DEBUG": "1"})
    assert isinstance(result.exception, ValueError) and "slate_size" in str(result.exception)


# -- output that fits: names never cut, values never wrapped (issue 18) ------------------------------------------

QUICK_AGENTS = ["random", "popularity", "epsilon-greedy", "ucb1", "linucb", "lints", "lm-linucb", "lm-lints", "oracle"]


def _recorded(monkeypatch, width: int):
    from rich.console import Console

    from rlrec.cli import output

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    monkeypatch.setattr(output, "console", console)  # every command prints through output.console
    return console


def _check_fits(text: str, width: int) -> None:
    assert "…" not in text, text  # rich's mark of a cut cell
    assert all(len(line) <= width for line in text.splitlines()), text


@pytest.mark.parametrize("width", [80, 200])
def test_summary_tables_fit_the_terminal(monkeypatch, width):
    from rlrec.bench import report
    from rlrec.cli import output

    rng = np.random.default_rng(0)
    summaries = {
        agent: {m: (float(rng.uniform(0, 300)), float(rng.uniform(0.001, 20))) for m in report.SUMMARY_METRICS}
        for agent in QUICK_AGENTS
    }
    console = _recorded(monkeypatch, width)
    output.print_summaries("MovieLens-BanditSlate-v0: 8 seeds x 200 steps", summaries, {a: 1.5 for a in QUICK_AGENTS})
    text = console.export_text()
    _check_fits(text, width)
    rows = [line for line in text.splitlines() if line.split(" ")[0] in QUICK_AGENTS]
    assert [row.split(" ")[0] for row in rows] == QUICK_AGENTS  # one line per agent, every name whole
    shown = text.splitlines()[1].count("┃")  # metric columns: separators after the agent column
    values = re.findall(r"-?\d+\.?\d* ± \d+\.?\d*", text)
    assert len(values) == len(QUICK_AGENTS) * min(shown, len(report.SUMMARY_METRICS))  # each value on one line
    assert shown >= (3 if width == 80 else 8)  # at 80 columns: regret, CTR and one more at least
    assert "not shown at this width, in summary.csv" in text  # and where the rest are


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("args", [["envs"], ["envs", "--knobs", "MovieLens-SessionSlate-v0"], ["bench", "--list"],
                                  ["info"], ["--help"], ["run", "--help"], ["train", "--agent", "ppo", "--list-hp"]])
def test_listings_print_names_whole(monkeypatch, width, args):
    from rlrec.agents.names import agent_names
    from rlrec.bench.suite import SUITES
    from rlrec.envs.registry import overrides_of
    from rlrec.envs.specs import REGISTRY

    console = _recorded(monkeypatch, width)
    result = runner.invoke(app, args, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    text = console.export_text() + result.output
    _check_fits(text, width if args != ["info"] else 10_000)  # info prints paths whole, on their own lines
    words = set(re.findall(r"[\w.@/-]+", text))
    if args == ["envs"]:
        assert set(REGISTRY) <= words
    elif args[:2] == ["envs", "--knobs"]:
        assert {row.name for row in overrides_of(args[2])} <= words
        assert re.search(r"no_click_logit\s+│\s+5.0\s+│\s+\[-10000, 10000\]", text)  # the session default
    elif args == ["bench", "--list"]:
        for suite in SUITES.values():
            assert {suite.name, *suite.envs, *suite.agents} <= words
    elif args == ["info"]:
        from rlrec import lm

        assert str(lm.default_model_path()) in text
    elif args[-1] == "--list-hp":
        from rlrec.agents import hyperparameter_names

        assert set(hyperparameter_names("ppo")) <= words
    elif args == ["run", "--help"]:
        flat = " ".join(text.split())
        assert all(name in flat for name in agent_names())  # the valid agents are in the help
        assert "rlrec envs --knobs ID" in flat and "MovieLens" in flat and "BanditSlate" in flat


def test_knobs_of_an_unknown_env_is_one_error_line():
    assert "Unknown environment 'Nope-v0'" in one_error_line(runner.invoke(app, ["envs", "--knobs", "Nope-v0"]))


def test_help_and_listings_load_no_heavy_library():
    """`rlrec --help`, `<cmd> --help`, `envs` and `bench --list` answer without JAX, Flax, pandas or torch (the
    import-time budget itself is measured by benchmarks/cli_startup.py, not asserted here)."""
    probe = (
        "import sys\n"
        "from rlrec.cli import app\n"
        "for args in (['--help'], ['run', '--help'], ['train', '--help'], ['evaluate', '--help'], ['envs'],\n"
        "             ['bench', '--list']):\n"
        "    try:\n"
        "        app(args, prog_name='rlrec')\n"
        "    except SystemExit as done:\n"
        "        assert not done.code, (args, done.code)\n"
        "print(sorted(m for m in ('jax', 'flax', 'optax', 'pandas', 'torch', 'transformers', 'matplotlib')\n"
        "             if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_the_package_still_loads_everything_on_first_use():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, rlrec; assert 'jax' not in sys.modules; rlrec.make; rlrec.run; "
         "rlrec.agents.make_agent; rlrec.envs.registry.KNOBS; rlrec.envs.gym.RecGymEnv; rlrec.rollout.run; "
         "rlrec.agents.base.Agent; import gymnasium; assert 'rlrec/MovieLens-Bandit-v0' in gymnasium.registry; "
         "print('jax' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert done.stdout.strip() == "True"
