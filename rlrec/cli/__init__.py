"""The ``rlrec`` command: info, catalog, embed, envs, run, bench, ope, train, evaluate.

Parsing and files live in this package, at the edge; everything below is plain library calls. This module is
the group (``app``): its option, its error handling and its list of commands. The commands live in modules of
their kind: ``data`` (info, catalog, embed, envs), ``run``, ``bench``, ``ope`` and ``train`` (train, evaluate); what
they print is in ``output``, the options run and train share in ``options``. Heavy libraries (JAX, pandas,
torch, ...) are imported inside the commands that use them, so help and listings answer without loading them.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
import typer.core

from rlrec.cli import bench, data, ope, run, train
from rlrec.cli.output import print_error

DEBUG_ENV_VAR = "RLREC_DEBUG"  # set to 1 to see the traceback behind an error line
BUG_EXIT_CODE = os.EX_SOFTWARE if hasattr(os, "EX_SOFTWARE") else 70  # sysexits.h: an internal software error
BUG_REPORT_HINT = (
    "This is a bug in rlrec, not a mistake in your input. Please report it with the command you ran, the traceback "
    "above and the output of `rlrec info`."
)


def _is_input_mistake(error: BaseException) -> bool:
    """Whether ``error`` means the input was wrong, shown as one error line (exit 2); anything else is a bug.

    Input mistakes are rlrec's own ``rlrec.errors.UserInputError`` family, raised where inputs are checked, and
    errors the operating system reports for a path (``OSError`` with an ``errno``: a folder that cannot be
    written, a full disk): those are about the machine and the user's files, not rlrec's code. A bare
    ``ValueError`` or ``OSError`` without an errno, a shape error from inside a compiled program included, is a
    bug.
    """
    from rlrec.errors import UserInputError

    return isinstance(error, UserInputError) or (isinstance(error, OSError) and error.errno is not None)


def _report_bug(error: BaseException) -> None:
    """The traceback of an unexpected exception, then what it means and what to report."""
    import traceback

    traceback.print_exception(error, file=sys.stderr)
    print_error(BUG_REPORT_HINT)


class _Commands(typer.core.TyperGroup):
    """The ``rlrec`` group: every input mistake ends in one ``error: ...`` line and exit code 2, never a traceback
    (usage errors from the parser included); ``RLREC_DEBUG=1`` shows the traceback. Any other exception is a bug:
    its traceback, a request to report it, and exit code ``BUG_EXIT_CODE``."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as error:  # the parser's usage errors (typer's click)
            if os.environ.get(DEBUG_ENV_VAR):
                raise
            print_error(f"{error.format_message()} (see `{ctx.info_name} --help`)")
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
                print_error(f"{option.split('=')[0]} goes before the command: `{ctx.info_name} "
                             f"{option.split('=')[0]} {ctx.invoked_subcommand} ...`")
            else:
                print_error(f"{error.format_message()} (see `{command} --help`)")
            raise typer.Exit(code=2) from None
        except Exception as error:
            if os.environ.get(DEBUG_ENV_VAR):
                raise
            if not _is_input_mistake(error):
                _report_bug(error)
                raise typer.Exit(code=BUG_EXIT_CODE) from None
            print_error(str(error) or type(error).__name__)
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
# added), whichever module each lives in; run and train write their --agent help when built.
_CLASSES = {run.run: run.RunCommand, train.train: train.TrainCommand}
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
    app.command(short_help=_short_help, cls=_CLASSES.get(_command))(_command)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="rlrec")  # `python -m rlrec.cli` names itself as the console script does
