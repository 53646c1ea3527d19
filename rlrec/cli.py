"""The ``rlrec`` command: info, catalog, embed, envs, run, bench, train, evaluate.

Parsing and files live here, at the edge; everything below is plain library calls.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from rlrec.agents.names import AGENT_NAMES, DEEP_AGENTS, ROLLOUT_AGENTS
from rlrec.envs.specs import CATALOG_PREFIXES, REGISTRY, SETTINGS, setting_names

console = Console()
errors = Console(stderr=True)
DEBUG_ENV_VAR = "RLREC_DEBUG"  # set to 1 to see the traceback behind an error line


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the input was wrong (a bad value, file, folder or run): shown as one error line.

    Other exceptions are bugs and keep their traceback.
    """
    from rlrec.files import FolderInUseError
    from rlrec.lm import ModelLoadError

    try:
        from rlrec.train.checkpoint import CheckpointError
    except ImportError:  # pragma: no cover - orbax is a hard dependency
        CheckpointError = ValueError  # noqa: N806
    return (ValueError, OSError, CheckpointError, FolderInUseError, ModelLoadError)


def _print_error(message: str) -> None:
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


class _Commands(typer.core.TyperGroup):
    """The ``rlrec`` group: every input mistake ends in one ``error: ...`` line and exit code 2, never a traceback
    (usage errors from the parser included); ``RLREC_DEBUG=1`` shows the traceback."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as error:  # the parser's usage errors (typer's click)
            if os.environ.get(DEBUG_ENV_VAR):
                raise
            _print_error(f"{error.format_message()} (see `{ctx.info_name} --help`)")
            raise typer.Exit(code=2) from None

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as error:  # the parser's usage errors (typer's click)
            if os.environ.get(DEBUG_ENV_VAR):
                raise
            command = f"{ctx.info_name} {ctx.invoked_subcommand}" if ctx.invoked_subcommand else ctx.info_name
            option = getattr(error, "option_name", None)
            if option and option.split("=")[0] in _GROUP_OPTIONS:
                # An option of `rlrec` itself given after the command: say where it goes.
                _print_error(f"{option.split('=')[0]} goes before the command: `{ctx.info_name} "
                             f"{option.split('=')[0]} {ctx.invoked_subcommand} ...`")
            else:
                _print_error(f"{error.format_message()} (see `{command} --help`)")
            raise typer.Exit(code=2) from None
        except _user_errors() as error:
            if os.environ.get(DEBUG_ENV_VAR):
                raise
            _print_error(str(error) or type(error).__name__)
            raise typer.Exit(code=2) from None


app = typer.Typer(
    name="rlrec",
    help="rlrec: a JAX RL simulation environment for recommender systems with language-model users.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help (click's): it wraps long lists of names at spaces and never cuts them, at any width.
    rich_markup_mode=None,
    cls=_Commands,
)


_GROUP_OPTIONS = ("--compile-cache", "--no-compile-cache")


@app.callback()
def _options(
    compilation_cache: Annotated[
        bool,
        typer.Option(
            "--compile-cache/--no-compile-cache",
            help="Keep compiled programs on disk, in the compilation cache (RLREC_COMPILATION_CACHE=0 also turns "
            "it off). Give it before the command.",
        ),
    ] = True,
) -> None:
    """rlrec: a JAX RL simulation environment for recommender systems with language-model users."""
    from rlrec import compilation

    if compilation_cache and not compilation.opted_out():
        compilation.enable_compilation_cache()


# Options shared by `run` and `train`; the help lists the valid names (they load without JAX).
ENV_HELP = (
    f"Environment id: {' or '.join(CATALOG_PREFIXES)}, then {', '.join(setting_names()[:-1])} or "
    f"{setting_names()[-1]}, then v0, joined by hyphens (`rlrec envs` describes all {len(REGISTRY)})."
)
EnvOverrides = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Env override name=value (repeatable); `rlrec envs --knobs ID` lists every name "
                 "with its default, valid values and meaning."),
]
Hyperparameters = Annotated[
    Optional[list[str]],
    typer.Option("--hp", help="Agent hyperparameter name=value (repeatable); `rlrec train --agent NAME --list-hp` "
                 "lists an agent's."),
]


def _fits(table: Table) -> bool:
    """Whether ``table`` prints at its natural width (nothing cut, nothing wrapped) in the console."""
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    return natural <= console.width


def _fitted_table(
    first: str, rows: dict[str, dict[str, str]], columns: dict[str, str], styles: dict[tuple[str, str], str] | None = None
) -> tuple[Table, list[str]]:
    """One row per name (never cut) and as many of ``columns`` (key -> label, in priority order) as fit the
    console width, each value on one line; returns the table and the labels of the columns left out.

    Rich would otherwise squeeze every column into the width, cutting names (``lm-lin…``) and wrapping values.
    """
    styles = styles or {}

    def build(keys: list[str]) -> Table:
        table = Table(show_edge=False, pad_edge=False)
        table.add_column(first, no_wrap=True)
        for key in keys:
            table.add_column(columns[key], justify="right", no_wrap=True)
        for name, values in rows.items():
            cells = [f"[{styles[name, k]}]{values[k]}[/]" if (name, k) in styles else values[k] for k in keys]
            table.add_row(escape(name), *cells)
        return table

    shown: list[str] = []
    for key in columns:
        if shown and not _fits(build([*shown, key])):
            break
        shown.append(key)
    return build(shown), [columns[key] for key in columns if key not in shown]


def _fail(message: str) -> None:
    _print_error(message)
    raise typer.Exit(code=2)


@app.command(short_help='Versions, JAX devices, the caches and the default LM.')
def info() -> None:
    """Versions, JAX devices, the embedding cache and the default language model."""
    import importlib.metadata as metadata

    import jax

    from rlrec import __version__, compilation, lm

    # Plain "name  value" lines, not a table: a path is printed whole (a terminal narrower than it wraps it,
    # nothing is cut).
    rows = [("rlrec", __version__), ("python", platform.python_version())]
    for package in ("jax", "jaxlib", "flax", "optax", "chex", "gymnasium", "numpy", "torch", "transformers"):
        try:
            rows.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            rows.append((package, "not installed"))
    rows.append(("jax backend", jax.default_backend()))
    rows.append(("jax devices", ", ".join(str(device) for device in jax.devices())))
    rows.append(("embedding cache", str(lm.default_cache_dir())))
    folder = jax.config.jax_compilation_cache_dir
    if folder:
        files, size = compilation.compilation_cache_size(folder)
        rows.append(("compilation cache", f"{folder} ({files} programs, {size / 2**20:.1f} MiB)"))
    else:
        rows.append(("compilation cache", "off"))
    rows.append(("default model", lm.DEFAULT_MODEL_NAME))
    rows.append(("model folder", str(lm.default_model_path())))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        console.print(f"{name:<{width}}  {escape(value)}", soft_wrap=True, highlight=False)


@app.command(short_help='Summarise a built-in catalog; the items nearest a query.')
def catalog(
    name: Annotated[str, typer.Argument(help="Built-in catalog: movielens or ggplot2movies.")] = "movielens",
    query: Annotated[
        Optional[str], typer.Option("--query", "-q", help="Show the items nearest to this text.")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="How many nearest items to show.", min=1)] = 5,
    dim: Annotated[
        Optional[int], typer.Option(help="PCA dimension of the simulator space (default: keep the LM's).", min=1)
    ] = None,
    model: Annotated[
        Optional[Path], typer.Option(help="A local transformers model folder (default: all-MiniLM-L6-v2).")
    ] = None,
    samples: Annotated[int, typer.Option(help="How many sample items to list.", min=0)] = 5,
) -> None:
    """Summarise a built-in catalog: size, dimensions, sample items, nearest items to a query."""
    import time

    from rlrec.data import CatalogError, load_catalog
    from rlrec.lm import ModelLoadError, ModelNotFoundError

    start = time.perf_counter()
    try:
        items = load_catalog(name, dim=dim, model_path=str(model) if model else None)
    except (CatalogError, ModelNotFoundError, ModelLoadError) as error:
        _fail(str(error))
    elapsed = time.perf_counter() - start
    summary = Table(title=f"catalog {name}", show_header=False)
    for key, value in items.summary().items():
        summary.add_row(key, "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
    summary.add_row("load time", f"{elapsed:.2f} s")
    console.print(summary)
    if samples:
        sample = Table(title="sample items")
        sample.add_column("item_id", no_wrap=True)
        sample.add_column("text")
        sample.add_column("popularity", justify="right", no_wrap=True)
        for i in range(min(samples, len(items))):
            sample.add_row(str(items.item_ids[i]), items.texts[i], f"{items.popularity[i]:.0f}")
        console.print(sample)
    if query:
        nearest = items.nearest(query, k)
        found = Table(title=f"nearest to {query!r}")
        found.add_column("item_id", no_wrap=True)
        found.add_column("cosine", justify="right", no_wrap=True)
        found.add_column("text")
        for row in nearest.itertuples():
            found.add_row(str(row.item_id), f"{row.similarity:.3f}", row.text)
        console.print(found)


@app.command(short_help='Encode a column of texts with the LM into an .npz file.')
def embed(
    file: Annotated[Path, typer.Argument(help="CSV, TSV or Parquet file with one text per row.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .npz (ids, embeddings, texts, model).")],
    text_column: Annotated[str, typer.Option(help="Column holding the texts.")] = "text",
    id_column: Annotated[Optional[str], typer.Option(help="Column holding ids (default: row numbers).")] = None,
    model: Annotated[
        Optional[Path], typer.Option(help="A local transformers model folder (default: all-MiniLM-L6-v2).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
) -> None:
    """Encode a column of texts with the LM and save unit-norm embeddings (atomically) to an .npz file."""
    import numpy as np

    from rlrec import lm
    from rlrec.data import CatalogError, read_table

    if out.suffix != ".npz":
        _fail(f"--out must end in .npz, got {out}.")
    try:
        frame = read_table(file)
    except CatalogError as error:
        _fail(str(error))
    for role, column in (("--text-column", text_column), ("--id-column", id_column)):
        if column is not None and column not in frame.columns:
            _fail(f"Column {column!r} ({role}) is not in {file}; its columns are {list(frame.columns)}.")
    texts = frame[text_column]
    if texts.isna().any() or not all(isinstance(text, str) and text.strip() for text in texts):
        bad = next(i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip())
        _fail(f"Row {bad} of column {text_column!r} is empty or not text; every row needs a text to embed.")
    try:
        encoder = lm.TextEncoder(model, batch_size=batch_size, show_progress=True)
    except (lm.ModelNotFoundError, lm.ModelLoadError) as error:
        _fail(str(error))
    vectors = encoder.encode(texts.tolist())
    ids = frame[id_column].to_numpy() if id_column else np.arange(len(frame))
    lm.atomic_save_npz(
        out,
        ids=ids.astype(str) if ids.dtype == object else ids,
        embeddings=vectors,
        texts=np.asarray(texts.tolist(), dtype=str),
        model=np.asarray(encoder.model_id),
    )
    console.print(f"wrote {len(vectors)} embeddings of dim {vectors.shape[1]} ({encoder.model_id}) to {out}")


def _parse_assignments(pairs: list[str] | None, what: str) -> dict:
    """``["alpha=0.5", "context=request-item"]`` -> ``{"alpha": 0.5, "context": "request-item"}``."""
    import ast

    parsed = {}
    for pair in pairs or []:
        name, equals, raw = pair.partition("=")
        if not equals or not name.strip():
            _fail(f"{what} {pair!r} must look like name=value.")
        if name.strip() in parsed:
            _fail(f"{what} sets {name.strip()!r} twice; give each name once.")
        try:
            parsed[name.strip()] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed[name.strip()] = raw.strip()
    return parsed


def _hyperparameters_for(agents: list[str], pairs: list[str] | None) -> dict[str, dict]:
    """``--hp`` settings per agent: ``name=value`` goes to every listed agent that takes ``name``,
    ``AGENT:name=value`` to that agent only. A name no listed agent takes is an error (a typo is never
    silently dropped); values are checked against each agent's declared range by ``make_agent``."""
    from rlrec.agents import hyperparameter_names

    per_agent: dict[str, dict] = {agent: {} for agent in agents}
    for name, value in _parse_assignments(pairs, "--hp").items():
        target, colon, field = name.rpartition(":")
        if colon:
            if target not in per_agent:
                _fail(f"--hp {name}=...: {target!r} is not one of the agents of this command ({', '.join(agents)}).")
            if field not in hyperparameter_names(target):
                _fail(f"--hp {name}=...: {target} has no hyperparameter {field!r}; it takes "
                      f"{', '.join(hyperparameter_names(target)) or 'none'}.")
            per_agent[target][field] = value
            continue
        takers = [agent for agent in agents if name in hyperparameter_names(agent)]
        if not takers:
            taken = {agent: hyperparameter_names(agent) for agent in agents}
            listed = "; ".join(f"{agent}: {', '.join(names) or 'none'}" for agent, names in taken.items())
            _fail(f"--hp {name}=...: no agent of this command takes {name!r} ({listed}).")
        for agent in takers:
            per_agent[agent][name] = value
    return per_agent


RUN_FILES = ("summary.csv", "regret.png", "config.json")  # what `rlrec run` writes into its folder
RUN_FORMAT = "rlrec-run/1"  # config.json of a `rlrec run` folder says so (train and bench folders hold one too)


def _run_folder(out: Path | None, overwrite: bool) -> Path | None:
    """Checks ``--out`` before anything runs: a folder holding an earlier run is never overwritten silently.

    Returns ``out``, or ``None`` for the default: a new folder per run, named when the results are written.
    """
    if out is None:
        return None
    if out.exists() and not out.is_dir():
        _fail(f"--out {out} is a file, not a folder; choose another --out for the run.")
    held = [name for name in RUN_FILES if (out / name).exists()]
    if "config.json" in held:
        import json

        try:
            written_by_run = json.loads((out / "config.json").read_text()).get("format") == RUN_FORMAT
        except (OSError, ValueError, AttributeError):
            written_by_run = False
        if not written_by_run:
            _fail(f"--out {out} holds another kind of run (its config.json is not from `rlrec run`, e.g. a training "
                  "or benchmark run); choose another --out.")
    if held and not overwrite:
        _fail(f"--out {out} already holds a run ({', '.join(held)}); choose another --out, or add --overwrite to "
              "replace it.")
    return out


def _new_run_folder(env_id: str) -> Path:
    """``runs/run-ENV-YYYYmmdd-HHMMSS`` (``-2``, ``-3``, ... when a run of the same second has it): created here,
    once, so two runs never share a folder."""
    import time

    stem = Path("runs") / f"run-{env_id}-{time.strftime('%Y%m%d-%H%M%S')}"
    for count in range(1, 1000):
        folder = stem if count == 1 else stem.with_name(f"{stem.name}-{count}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise OSError(f"Too many runs named {stem}-*; pass --out.")


@app.command(short_help='Run agents on an env: regret, CTR, diversity; a plot.')
def run(
    env_id: Annotated[str, typer.Option("--env", help=ENV_HELP)] = "MovieLens-BanditSlate-v0",
    agents: Annotated[
        Optional[list[str]],
        typer.Option(
            "--agent", "-a",
            help="Agent; repeat to compare several (default: random, linucb, lm-linucb, oracle). One of: "
            + ", ".join(name for name in AGENT_NAMES if name not in ROLLOUT_AGENTS)
            + f" ({', '.join(ROLLOUT_AGENTS)}: `rlrec train`).",
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Independent seeds (vmapped, sharded over devices).")] = 8,
    steps: Annotated[int, typer.Option(min=1, help="Steps per seed.")] = 200,
    mode: Annotated[str, typer.Option(help="personal (one learner per user) or shared (one for a batch).")] = "personal",
    users: Annotated[int, typer.Option(min=1, help="Users per seed in shared mode.")] = 64,
    seed: Annotated[int, typer.Option(help="Root random seed.")] = 0,
    accuracy_k: Annotated[int, typer.Option(min=0, help="Size of each user's true top set for accuracy@k.")] = 10,
    env_overrides: EnvOverrides = None,
    hyperparameters: Hyperparameters = None,
    out: Annotated[
        Optional[Path],
        typer.Option(help="Folder for summary.csv, regret.png and config.json (default: a new runs/run-ENV-TIME)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run already in --out.")] = False,
) -> None:
    """Run agents on an environment: a table of regret, CTR, diversity and accuracy (95% CI), and a regret plot."""
    from rlrec.agents import AGENTS
    from rlrec.agents.base import check_hyperparameters
    from rlrec.bench.runner import MODES
    from rlrec.envs.registry import check_overrides
    from rlrec.files import FolderLock

    agents = agents or ["random", "linucb", "lm-linucb", "oracle"]
    if env_id.removeprefix("rlrec/") not in REGISTRY:
        _fail(f"Unknown environment {env_id!r}; choose one of: {', '.join(sorted(REGISTRY))}.")
    unknown = [name for name in agents if name not in AGENTS]
    if unknown:
        _fail(f"Unknown agent(s) {unknown}; choose from: {', '.join(AGENTS)}.")
    for name in agents:
        if name in ROLLOUT_AGENTS:
            _fail(f"{name} learns from rollouts: train it with `rlrec train --agent {name}`, then "
                  "`rlrec evaluate RUN_DIR`.")
    if mode not in MODES:
        _fail(f"--mode must be one of {MODES}, got {mode!r}.")
    overrides = _parse_assignments(env_overrides, "--set")
    hyper = _hyperparameters_for(agents, hyperparameters)
    check_overrides(env_id.removeprefix("rlrec/"), overrides)
    for name in agents:  # hyperparameters first: cheap, and a mistake should not wait for the catalog
        check_hyperparameters(AGENTS[name][0], hyper[name], agent=name)
    out = _run_folder(out, overwrite)
    with contextlib.ExitStack() as stack:
        if out is not None:  # held until the results are written: a second `rlrec run --out` here is refused
            stack.enter_context(FolderLock(out, "`rlrec run` folder"))
        _run_and_write(env_id, agents, overrides, hyper, out, seeds=seeds, steps=steps, mode=mode, users=users,
                       seed=seed, accuracy_k=accuracy_k)


def _run_and_write(env_id: str, agents: list[str], overrides: dict, hyper: dict, out: Path | None, **settings) -> None:
    """The part of `rlrec run` after its input is checked: build, run every agent, print, write."""
    import csv
    import json

    from rlrec.agents import make_agent
    from rlrec.bench import report
    from rlrec.bench.runner import run as run_agent
    from rlrec.bench.suite_run import catalog_extras
    from rlrec.envs import make
    from rlrec.files import atomic_write_text

    seeds, steps, mode = settings["seeds"], settings["steps"], settings["mode"]
    env, params = make(env_id, **overrides)
    built = [make_agent(name, env, **hyper[name]) for name in agents]
    popularity, genres = catalog_extras(env_id.removeprefix("rlrec/"), overrides)

    results, summaries = [], {}
    for agent in built:
        result = run_agent(
            env, params, agent, num_seeds=seeds, num_steps=steps, seed=settings["seed"], mode=mode,
            num_users=settings["users"], accuracy_k=settings["accuracy_k"], chunk_size=max(1, steps // 10),
            progress=True,
        )
        results.append(result)
        summaries[agent.name] = report.summarise(result, env.num_items(params), popularity, genres)

    wall_times = {agent.name: result.wall_time for agent, result in zip(built, results)}
    _print_summaries(f"{env.name}: {mode} mode, {seeds} seeds x {steps} steps, mean ± 95% CI", summaries, wall_times)
    _explain_missing_episodes(summaries, steps, int(params.max_steps))

    out = out or _new_run_folder(env.name)
    out.mkdir(parents=True, exist_ok=True)
    lines = [["env", "agent", "mode", "seeds", "steps", "metric", "mean", "ci95_half_width"]]
    for agent_name, summary in summaries.items():
        lines += [[env.name, agent_name, mode, seeds, steps, name, mean, half] for name, (mean, half) in summary.items()]
        lines.append([env.name, agent_name, mode, seeds, steps, "wall_time_s", wall_times[agent_name], ""])
    with io.StringIO() as text:
        csv.writer(text).writerows(lines)
        atomic_write_text(out / "summary.csv", text.getvalue())
    config = {
        "format": RUN_FORMAT, "env": env.name, "agents": agents, **settings,
        "users": settings["users"] if mode == "shared" else None, "env_overrides": overrides, "hyperparameters": hyper,
    }
    atomic_write_text(out / "config.json", json.dumps(config, indent=2, default=str) + "\n")
    report.plot_regret(results, out / "regret.png")
    console.print(f"wrote {out}/: summary.csv (every metric), regret.png, config.json")


def _explain_missing_episodes(summaries: dict[str, dict], steps: int, max_steps: int) -> None:
    """Says why the episode return is missing when no seed of any agent finished an episode."""
    if not any(np.isfinite(summary["episode_return"][0]) for summary in summaries.values()):
        console.print(f"episode return: no episode finished within {steps} steps (an episode lasts up to "
                      f"max_steps={max_steps} steps); give --steps {max_steps} or more to measure it.")


def _print_summaries(title: str, summaries: dict[str, dict], wall_times: dict[str, float] | None = None,
                     bold: dict[str, set[str]] | None = None, more: str = "summary.csv") -> None:
    """The terminal table of one env: agents as rows, as many metric columns as fit, values as ``45.8 ± 13.0``."""
    from rlrec.bench import report

    columns = {m: label for m, label in report.TERMINAL_COLUMNS.items()
               if any(m in s and np.isfinite(s[m][0]) for s in summaries.values())}
    rows: dict[str, dict[str, str]] = {name: {} for name in summaries}
    for m in columns:
        for name, text in zip(summaries, report.format_column([summary[m] for summary in summaries.values()])):
            rows[name][m] = text
    if wall_times:
        columns["wall_time"] = "wall s"
        for name, seconds in wall_times.items():
            rows[name]["wall_time"] = f"{seconds:.1f}"
    styles = {(name, m): "bold" for m, names in (bold or {}).items() for name in names}
    table, left_out = _fitted_table("agent", rows, columns, styles)
    console.print(f"[bold]{escape(title)}[/]")
    console.print(table)
    if left_out:
        console.print(f"not shown at this width, in {more}: {', '.join(left_out)}")


@app.command(short_help='Run a regret benchmark suite (resumable); --list them.')
def bench(
    suite_name: Annotated[
        str, typer.Option("--suite", "-s", help="Built-in suite (quick, standard) or a JSON file describing one.")
    ] = "quick",
    out: Annotated[Optional[Path], typer.Option(help="Run folder (default: runs/bench-SUITE); rerun to resume.")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Override the suite's seeds per cell.", min=1)] = None,
    steps: Annotated[Optional[int], typer.Option(help="Override the suite's steps per seed.", min=1)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Override the suite's root seed.")] = None,
    list_suites: Annotated[bool, typer.Option("--list", help="List the built-in suites and exit.")] = False,
) -> None:
    """Run a regret benchmark suite (envs x agents x seeds): tidy CSV/JSON, summary.md and plots, resumable."""
    import dataclasses

    from rlrec.bench.suite import SUITES, SuiteError, get_suite

    if list_suites:
        # Text, not a table: suite, env and agent names are printed whole at any width.
        for name, each in SUITES.items():
            console.print(f"[bold]{name}[/]: {escape(each.description)}", highlight=False)
            console.print(f"  {each.seeds} seeds x {each.steps} steps per cell, {each.mode} mode", highlight=False)
            console.print(f"  envs: {', '.join(each.envs)}", highlight=False)
            console.print(f"  agents: {', '.join(each.agents)}", highlight=False)
        console.print("run one with `rlrec bench --suite NAME`; a JSON file describes your own", highlight=False)
        return
    from rlrec.bench.suite_run import run_suite

    try:
        chosen = get_suite(suite_name)
        changes = {k: v for k, v in (("seeds", seeds), ("steps", steps), ("seed", seed)) if v is not None}
        chosen = dataclasses.replace(chosen, **changes).validate()
        out = out or Path("runs") / f"bench-{chosen.name}"
        if out.exists() and not out.is_dir():
            _fail(f"--out {out} is a file, not a folder; choose another --out for the benchmark run.")
        console.print(f"suite {chosen.name}: {len(chosen.cells)} cells ({len(chosen.envs)} envs x {len(chosen.agents)} "
                      f"agents), {chosen.seeds} seeds x {chosen.steps} steps each; results in {out}", highlight=False)
        result = run_suite(chosen, out)
    except SuiteError as error:
        _fail(str(error))
    if len(result.ran) < len(result.cells):
        console.print(f"resumed: {len(result.cells) - len(result.ran)} finished cells were read back from {out}")
    _print_suite(result)
    console.print(f"wrote {out}/: results.csv and results.json (every metric, per seed), summary.md, regret.png, "
                  "regret_vs_diversity.png", highlight=False)


def _print_suite(result) -> None:
    """One fitted table per env of a suite run, the best value of each column in bold (as in summary.md)."""
    from rlrec.bench import report

    suite, summary = result.suite, result.summary()
    for env in suite.envs:
        cells = {agent: summary[(env, agent)] for agent in suite.agents if (env, agent) in summary}
        if not cells:
            continue
        bold = {m: report.best_agents(cells, m, lower) for m, (_, lower) in report.SUITE_COLUMNS.items()}
        console.print()
        _print_summaries(f"{env}: {suite.seeds} seeds x {suite.steps} steps, mean ± 95% CI (best in bold)", cells,
                         bold=bold, more="results.csv")
        max_steps = suite.env_overrides.get(env, {}).get("max_steps", SETTINGS[REGISTRY[env].setting]["max_steps"])
        _explain_missing_episodes(cells, suite.steps, int(max_steps))


@app.command(short_help='Train an agent with metrics, checkpoints and resume.')
def train(
    env_id: Annotated[str, typer.Option("--env", help=ENV_HELP)] = "MovieLens-Session-v0",
    agent: Annotated[
        str, typer.Option("--agent", "-a", help=f"{', '.join(DEEP_AGENTS)} (or any agent: {', '.join(AGENT_NAMES)}).")
    ] = "ppo",
    seeds: Annotated[int, typer.Option(help="Independent training seeds (vmapped).", min=1)] = 4,
    users: Annotated[int, typer.Option(help="Simulated users per seed, stepping in parallel.", min=1)] = 256,
    iterations: Annotated[int, typer.Option(help="Training iterations (rollout + update each).", min=1)] = 300,
    chunk: Annotated[int, typer.Option(help="Iterations per metrics row and checkpoint.", min=1)] = 25,
    seed: Annotated[int, typer.Option(help="Root seed.")] = 0,
    env_overrides: EnvOverrides = None,
    hyperparameters: Hyperparameters = None,
    out: Annotated[Path, typer.Option(help="Run folder: config, metrics.csv, checkpoints.")] = Path("runs/train"),
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    list_hp: Annotated[bool, typer.Option("--list-hp", help="Show the agent's hyperparameters and exit.")] = False,
) -> None:
    """Train an agent (DQN/SlateQ, PPO, REINFORCE, ...) with checkpoints, metrics and resume."""
    from rlrec.agents import AGENTS, hyperparameter_specs
    from rlrec.train.checkpoint import CheckpointError
    import json

    from rlrec.files import atomic_write_text
    from rlrec.train.run import EVALUATION_FILE, TrainConfig, evaluate as evaluate_run, run_training

    if agent not in AGENTS:
        _fail(f"Unknown agent {agent!r}; choose one of {', '.join(AGENTS)}.")
    if list_hp:
        console.print(f"[bold]{agent}[/] hyperparameters (--hp name=value)")
        _print_settings([(name, repr(default), spec.describe(), spec.meaning)
                         for name, (default, spec) in sorted(hyperparameter_specs(agent).items())])
        return
    try:
        config = TrainConfig(
            env=env_id,
            agent=agent,
            hyperparameters=_hyperparameters_for([agent], hyperparameters)[agent],
            env_overrides=_parse_assignments(env_overrides, "--set"),
            seeds=seeds,
            users=users,
            iterations=iterations,
            chunk=chunk,
            seed=seed,
        )
        result = run_training(config, out, resume=resume)
    except (ValueError, FileExistsError, CheckpointError) as error:
        _fail(str(error))
    except KeyboardInterrupt as interrupt:
        console.print(f"[yellow]{interrupt}[/]")
        raise typer.Exit(code=130)
    speed = result.env_steps / max(result.wall_time, 1e-9)
    console.print(
        f"trained {agent} on {env_id}: {result.env_steps:,} env steps in {result.wall_time:.1f} s "
        f"({speed:,.0f} steps/s incl. compilation); run folder {out}", highlight=False,
    )
    console.print(f"evaluating the trained learners on fresh users (as `rlrec evaluate {out}` does)", highlight=False)
    summary = evaluate_run(out)  # the defaults of `rlrec evaluate`, so both report the same numbers
    # JSON has no NaN: an episode return with no finished episode is written as null.
    clean = {**summary, "seeds": [{k: None if isinstance(v, float) and not np.isfinite(v) else v
                                   for k, v in row.items()} for row in summary["seeds"]]}
    atomic_write_text(out / EVALUATION_FILE, json.dumps(clean, indent=2, allow_nan=False) + "\n")
    _print_evaluation(summary, out)
    console.print(f"wrote {out / EVALUATION_FILE}; `rlrec evaluate {out}` reproduces it", highlight=False)


def _print_evaluation(summary: dict, out: Path) -> None:
    from rlrec.metrics import mean_confidence_interval

    actions = "greedy" if summary["deterministic"] else "sampled"
    console.print(
        f"[bold]evaluation of {escape(str(out))} at iteration {summary['iteration']} on fresh users: "
        f"{summary['num_seeds']} seeds x {summary['num_steps']} steps per trained seed, {actions} actions[/]"
    )
    table = Table(show_edge=False, pad_edge=False)
    for column in ("trained seed", "episode return", "CTR", "regret / step"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in summary["seeds"]:
        episode_return = f"{row['episode_return']:.2f}" if np.isfinite(row["episode_return"]) else "-"
        table.add_row(str(row["trained_seed"]), episode_return, f"{row['ctr']:.3f}", f"{row['regret_per_step']:.4f}")
    returns = [row["episode_return"] for row in summary["seeds"] if np.isfinite(row["episode_return"])]
    if returns:
        mean, half = mean_confidence_interval(returns)
        table.add_row("all", f"{mean:.2f} ± {half:.2f}" if len(returns) > 1 else f"{mean:.2f}", "", "")
    console.print(table)
    if len(returns) < len(summary["seeds"]):
        console.print(f"episode return: no episode ended within {summary['num_steps']} steps for some trained seeds "
                      "(nan); evaluate longer with `rlrec evaluate RUN_DIR --steps N`.")


@app.command(short_help='Evaluate a trained checkpoint on fresh users.')
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `rlrec train`.")],
    step: Annotated[Optional[int], typer.Option(help="Checkpoint iteration (default: the latest).")] = None,
    seeds: Annotated[
        Optional[int],
        typer.Option(help="Evaluation seeds (fresh user streams) per trained seed [default: those of the evaluation "
                     "that ends `rlrec train`; the table says how many].", min=1, show_default=False),
    ] = None,
    steps: Annotated[
        Optional[int],
        typer.Option(help="Steps per evaluation seed [default: as `rlrec train`'s evaluation].", min=1,
                     show_default=False),
    ] = None,
    greedy: Annotated[
        Optional[bool], typer.Option("--greedy/--sampled", help="Greedy or sampled actions (default: per agent).")
    ] = None,
) -> None:
    """Evaluate a saved checkpoint, frozen, on fresh simulated users (episode return, CTR, regret)."""
    from rlrec.train.checkpoint import CheckpointError
    from rlrec.train.run import evaluate as evaluate_run

    try:
        given = {k: v for k, v in (("num_seeds", seeds), ("num_steps", steps)) if v is not None}
        summary = evaluate_run(run_dir, step=step, deterministic=greedy, **given)
    except (CheckpointError, ValueError) as error:
        _fail(str(error))
    _print_evaluation(summary, run_dir)


@app.command(short_help="List the environments; --knobs ID: one env's settings.")
def envs(
    knobs: Annotated[
        Optional[str],
        typer.Option("--knobs", metavar="ID", help="List what `--set name=value` (rlrec.make(ID, name=value)) "
                     "changes in env ID: every name with its default, valid values and meaning."),
    ] = None,
) -> None:
    """List the registered environments (gymnasium id: rlrec/<id>), or one env's settings with --knobs ID."""
    if knobs is None:
        listing = Table(box=None, show_header=False, pad_edge=False)
        listing.add_column(no_wrap=True)
        listing.add_column(overflow="fold")
        for env_id in sorted(REGISTRY):
            listing.add_row(env_id, REGISTRY[env_id].description)
        console.print(listing)
        console.print("gymnasium ids: rlrec/<id>; `rlrec envs --knobs ID` lists an env's settings", highlight=False)
        return
    from rlrec.envs.registry import overrides_of

    rows = [(row.name, str(row.default), row.valid, row.meaning) for row in overrides_of(knobs)]
    console.print(f"[bold]{escape(knobs)}[/]: `--set name=value`, or rlrec.make(id, name=value)")
    _print_settings(rows)


def _print_settings(rows: list[tuple[str, str, str, str]]) -> None:
    """``(name, default, valid values, meaning)`` rows: names and defaults whole, the rest wrapped at words."""
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("default", no_wrap=True)
    table.add_column("valid values: meaning", overflow="fold")
    for name, default, valid, meaning in rows:
        table.add_row(name, default, f"{valid}: {meaning}")
    console.print(table)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="rlrec")  # `python -m rlrec.cli` names itself as the console script does


if __name__ == "__main__":  # pragma: no cover
    main()
