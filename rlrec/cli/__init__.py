"""The ``rlrec`` command: info, catalog, embed, envs, run, bench, ope, train, evaluate.

Parsing and files live in this package, at the edge; everything below is plain library calls. This module is
the group (``app``): its option, its error handling and its list of commands. The commands live in modules of
their kind: ``data`` (info, catalog, embed, envs), ``run``, ``bench``, ``ope`` and ``train`` (train, evaluate); what
they print is in ``output``, the options run and train share in ``options``. Heavy libraries (JAX, pandas,
torch, ...) are imported inside the commands that use them, so help and listings answer without loading them.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
import typer.core

from rlrec.cli import bench, data, ope, run, train
from rlrec.cli.output import _print_error

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


# The commands, added here in the order `rlrec --help` lists them (typer lists them in the order they are
# added), whichever module each lives in.
for _command, _short_help in (
    (data.info, "Versions, JAX devices, the caches and the default LM."),
    (data.catalog, "Summarise a built-in catalog; the items nearest a query."),
    (data.embed, "Encode a column of texts with the LM into an .npz file."),
    (run.run, "Run agents on an env: regret, CTR, diversity; a plot."),
    (bench.bench, "Run a regret benchmark suite (resumable); --list them."),
    (ope.ope, "Score off-policy estimators against the exact truth."),
    (train.train, "Train an agent with metrics, checkpoints and resume."),
    (train.evaluate, "Evaluate a trained checkpoint on fresh users."),
    (data.envs, "List the environments; --knobs ID: one env's settings."),
):
    app.command(short_help=_short_help)(_command)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="rlrec")  # `python -m rlrec.cli` names itself as the console script does
