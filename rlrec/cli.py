"""The ``rlrec`` command: info, catalog, embed, envs, run, bench, train, evaluate.

Parsing and files live here, at the edge; everything below is plain library calls.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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


# Options shared by `run` and `train`.
EnvOverrides = Annotated[Optional[list[str]], typer.Option("--set", help="Env override name=value (repeatable).")]
Hyperparameters = Annotated[
    Optional[list[str]], typer.Option("--hp", help="Agent hyperparameter name=value (repeatable).")
]


def _fail(message: str) -> None:
    _print_error(message)
    raise typer.Exit(code=2)


@app.command()
def info() -> None:
    """Versions, JAX devices, the embedding cache and the default language model."""
    import importlib.metadata as metadata

    import jax

    from rlrec import __version__, compilation, lm

    table = Table(title="rlrec", show_header=False)
    table.add_row("rlrec", __version__)
    table.add_row("python", platform.python_version())
    for package in ("jax", "jaxlib", "flax", "optax", "chex", "gymnasium", "numpy", "torch", "transformers"):
        try:
            table.add_row(package, metadata.version(package))
        except metadata.PackageNotFoundError:
            table.add_row(package, "not installed")
    table.add_row("jax backend", jax.default_backend())
    table.add_row("jax devices", ", ".join(str(device) for device in jax.devices()))
    table.add_row("embedding cache", str(lm.default_cache_dir()))
    folder = jax.config.jax_compilation_cache_dir
    if folder:
        files, size = compilation.compilation_cache_size(folder)
        table.add_row("compilation cache", f"{folder} ({files} programs, {size / 2**20:.1f} MiB)")
    else:
        table.add_row("compilation cache", "off")
    table.add_row("default model", f"{lm.DEFAULT_MODEL_NAME} at {lm.default_model_path()}")
    console.print(table)


@app.command()
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
        sample.add_column("item_id")
        sample.add_column("text")
        sample.add_column("popularity", justify="right")
        for i in range(min(samples, len(items))):
            sample.add_row(str(items.item_ids[i]), items.texts[i], f"{items.popularity[i]:.0f}")
        console.print(sample)
    if query:
        nearest = items.nearest(query, k)
        found = Table(title=f"nearest to {query!r}")
        found.add_column("item_id")
        found.add_column("cosine", justify="right")
        found.add_column("text")
        for row in nearest.itertuples():
            found.add_row(str(row.item_id), f"{row.similarity:.3f}", row.text)
        console.print(found)


@app.command()
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


@app.command()
def run(
    env_id: Annotated[str, typer.Option("--env", help="Environment id (see `rlrec envs`).")] = "MovieLens-BanditSlate-v0",
    agents: Annotated[
        Optional[list[str]], typer.Option("--agent", "-a", help="Agent name; repeat to compare several.")
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Independent seeds (vmapped, sharded over devices).")] = 8,
    steps: Annotated[int, typer.Option(min=1, help="Steps per seed.")] = 200,
    mode: Annotated[str, typer.Option(help="personal (one learner per user) or shared (one for a batch).")] = "personal",
    users: Annotated[int, typer.Option(min=1, help="Users per seed in shared mode.")] = 64,
    seed: Annotated[int, typer.Option(help="Root random seed.")] = 0,
    accuracy_k: Annotated[int, typer.Option(min=0, help="Size of each user's true top set for accuracy@k.")] = 10,
    env_overrides: EnvOverrides = None,
    hyperparameters: Hyperparameters = None,
    out: Annotated[Path, typer.Option(help="Folder for the summary CSV and the regret plot.")] = Path("runs"),
) -> None:
    """Run agents on an environment: a table of regret, CTR, diversity and accuracy (95% CI), and a regret plot."""
    import csv

    from rlrec.agents import AGENTS, make_agent
    from rlrec.agents.base import check_hyperparameters
    from rlrec.bench import report
    from rlrec.bench.runner import MODES, run as run_agent
    from rlrec.bench.suite import catalog_extras
    from rlrec.envs import REGISTRY, make
    from rlrec.envs.registry import check_overrides

    agents = agents or ["random", "linucb", "lm-linucb", "oracle"]
    if env_id.removeprefix("rlrec/") not in REGISTRY:
        _fail(f"Unknown environment {env_id!r}; choose one of: {', '.join(sorted(REGISTRY))}.")
    unknown = [name for name in agents if name not in AGENTS]
    if unknown:
        _fail(f"Unknown agent(s) {unknown}; choose from: {', '.join(AGENTS)}.")
    if mode not in MODES:
        _fail(f"--mode must be one of {MODES}, got {mode!r}.")
    overrides = _parse_assignments(env_overrides, "--set")
    hyper = _hyperparameters_for(agents, hyperparameters)
    check_overrides(env_id.removeprefix("rlrec/"), overrides)
    for name in agents:  # hyperparameters first: cheap, and a mistake should not wait for the catalog
        check_hyperparameters(AGENTS[name][0], hyper[name], agent=name)
    env, params = make(env_id, **overrides)
    built = [make_agent(name, env, **hyper[name]) for name in agents]
    for agent in built:
        if getattr(agent, "learns_from_rollouts", False):
            _fail(f"{agent.name} learns from rollouts: train it with `rlrec train --agent {agent.name}`, then "
                  "`rlrec evaluate RUN_DIR`.")
    popularity, genres = catalog_extras(env_id.removeprefix("rlrec/"), overrides)

    results, rows = [], []
    for agent in built:
        result = run_agent(
            env, params, agent, num_seeds=seeds, num_steps=steps, seed=seed, mode=mode, num_users=users,
            accuracy_k=accuracy_k, chunk_size=max(1, steps // 10), progress=True,
        )
        results.append(result)
        summary = report.summarise(result, env.num_items(params), popularity, genres)
        rows.append((agent.name, summary, result.wall_time))

    names = [name for name in report.SUMMARY_METRICS if name in rows[0][1]]
    table = Table(title=f"{env.name}: {mode} mode, {seeds} seeds x {steps} steps (mean ± 95% CI)")
    table.add_column("metric")
    for agent_name, _, _ in rows:
        table.add_column(agent_name, justify="right")
    for name in names:
        table.add_row(name.replace("_", " "), *[report.format_value(*summary[name]) for _, summary, _ in rows])
    table.add_row("wall time (s)", *[f"{wall:.1f}" for _, _, wall in rows])
    console.print(table)

    out.mkdir(parents=True, exist_ok=True)
    stem = f"{env.name}-{mode}"
    csv_path = out / f"{stem}-summary.csv"
    temporary = csv_path.with_name(f".{csv_path.name}.tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["env", "agent", "mode", "seeds", "steps", "metric", "mean", "ci95_half_width"])
        for agent_name, summary, _ in rows:
            for name, (mean, half) in summary.items():
                writer.writerow([env.name, agent_name, mode, seeds, steps, name, mean, half])
    temporary.replace(csv_path)
    plot_path = report.plot_regret(results, out / f"{stem}-regret.png")
    console.print(f"wrote {csv_path} and {plot_path}")


@app.command()
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

    from rich.markdown import Markdown

    from rlrec.bench.suite import SUITES, SuiteError, get_suite, run_suite

    if list_suites:
        table = Table(title="benchmark suites (rlrec bench --suite NAME)")
        for column in ("name", "envs", "agents", "seeds x steps", "description"):
            table.add_column(column)
        for name, each in SUITES.items():
            table.add_row(name, "\n".join(each.envs), ", ".join(each.agents), f"{each.seeds} x {each.steps}", each.description)
        console.print(table)
        return
    try:
        chosen = get_suite(suite_name)
        changes = {k: v for k, v in (("seeds", seeds), ("steps", steps), ("seed", seed)) if v is not None}
        chosen = dataclasses.replace(chosen, **changes).validate()
        out = out or Path("runs") / f"bench-{chosen.name}"
        if out.exists() and not out.is_dir():
            _fail(f"--out {out} is a file, not a folder; choose another --out for the benchmark run.")
        console.print(f"suite {chosen.name}: {len(chosen.cells)} cells ({len(chosen.envs)} envs x {len(chosen.agents)} "
                      f"agents), {chosen.seeds} seeds x {chosen.steps} steps each; results in {out}")
        result = run_suite(chosen, out)
    except SuiteError as error:
        _fail(str(error))
    if len(result.ran) < len(result.cells):
        console.print(f"resumed: {len(result.cells) - len(result.ran)} finished cells were read back from {out}")
    console.print(Markdown((out / "summary.md").read_text()))
    console.print(f"wrote {out}/results.csv, results.json, summary.md, regret.png, regret_vs_diversity.png")


@app.command()
def train(
    env_id: Annotated[str, typer.Option("--env", help="Environment id (see `rlrec envs`).")] = "MovieLens-Session-v0",
    agent: Annotated[str, typer.Option("--agent", "-a", help="dqn, slateq, ppo, reinforce (or any agent).")] = "ppo",
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
    from rlrec.train.run import TrainConfig, evaluate as evaluate_run, run_training

    if agent not in AGENTS:
        _fail(f"Unknown agent {agent!r}; choose one of {', '.join(AGENTS)}.")
    if list_hp:
        table = Table(title=f"{agent} hyperparameters (--hp name=value)")
        for column in ("name", "default", "valid values", "meaning"):
            table.add_column(column, overflow="fold")
        for name, (default, spec) in sorted(hyperparameter_specs(agent).items()):
            table.add_row(name, repr(default), spec.describe(), spec.meaning)
        console.print(table)
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
        f"({speed:,.0f} steps/s incl. compilation); run folder {out}"
    )
    summary = evaluate_run(out, num_seeds=8, num_steps=200)
    _print_evaluation(summary, out)


def _print_evaluation(summary: dict, out: Path) -> None:
    from rlrec.metrics import mean_confidence_interval

    table = Table(title=f"evaluation of {out} on fresh users ({'greedy' if summary['deterministic'] else 'sampled'} actions)")
    for column in ("trained seed", "episode return", "CTR", "regret / step"):
        table.add_column(column, justify="right")
    for row in summary["seeds"]:
        table.add_row(
            str(row["trained_seed"]), f"{row['episode_return']:.2f}", f"{row['ctr']:.3f}", f"{row['regret_per_step']:.4f}"
        )
    returns = [row["episode_return"] for row in summary["seeds"]]
    mean, half = mean_confidence_interval(returns)
    table.add_row("all", f"{mean:.2f} ± {half:.2f}" if len(returns) > 1 else f"{mean:.2f}", "", "")
    console.print(table)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `rlrec train`.")],
    step: Annotated[Optional[int], typer.Option(help="Checkpoint iteration (default: the latest).")] = None,
    seeds: Annotated[int, typer.Option(help="Evaluation seeds (fresh user streams) per trained seed.", min=1)] = 16,
    steps: Annotated[int, typer.Option(help="Steps per evaluation seed.", min=1)] = 200,
    greedy: Annotated[
        Optional[bool], typer.Option("--greedy/--sampled", help="Greedy or sampled actions (default: per agent).")
    ] = None,
) -> None:
    """Evaluate a saved checkpoint, frozen, on fresh simulated users (episode return, CTR, regret)."""
    from rlrec.train.checkpoint import CheckpointError
    from rlrec.train.run import evaluate as evaluate_run

    try:
        summary = evaluate_run(run_dir, step=step, num_seeds=seeds, num_steps=steps, deterministic=greedy)
    except (CheckpointError, ValueError) as error:
        _fail(str(error))
    _print_evaluation(summary, run_dir)


@app.command()
def envs() -> None:
    """List the registered environments."""
    from rlrec.envs.registry import REGISTRY

    table = Table(title="rlrec environments (gymnasium id: rlrec/<id>)")
    table.add_column("id")
    table.add_column("description")
    for env_id in sorted(REGISTRY):
        table.add_row(env_id, REGISTRY[env_id].description)
    console.print(table)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="rlrec")  # `python -m rlrec.cli` names itself as the console script does


if __name__ == "__main__":  # pragma: no cover
    main()
