"""The Typer app, its error handling, and the option types the commands share."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from s2s_cli import console
from s2s_cli.errors import S2SError
from s2s_cli.rundir import DEFAULT_RUN_DIR

app = typer.Typer(
    name="s2s",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
state = {"debug": bool(os.environ.get("S2S_DEBUG"))}

RunDirOpt = Annotated[Path, typer.Option("--run-dir", "-r", help="Run directory holding config, data and model.")]
BeamOpt = Annotated[int, typer.Option("--beam", "-b", min=1, help="Beam size; 1 is greedy search.")]
LengthPenaltyOpt = Annotated[
    float, typer.Option("--length-penalty", min=0.0, help="GNMT length penalty alpha; 0 disables it.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
InputOpt = Annotated[Optional[Path], typer.Option("--input", "-i", help="Source sentences, one per line.")]
WorkersOpt = Annotated[
    Optional[int],
    typer.Option(
        min=1,
        help="Batches decoded at once, each on its own thread (default: one per CPU core, up to 4; 1 with a GPU).",
    ),
]

__all__ = ["DEFAULT_RUN_DIR", "app", "handles_errors", "default_of", "force_option", "state"]


def force_option(help: str):  # noqa: A002
    return typer.Option("--force/--no-force", help=help)


def default_of(section: type, name: str) -> str:
    """A config field's default as `--help` shows it, for options whose Python default is None (not given)."""
    value = {f.name: f for f in dataclasses.fields(section)}[name].default
    return str(value)


def handles_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors into one line on stderr and their exit code (--debug shows the traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            if state["debug"]:
                return command(*args, **kwargs)
            with console.native_logs_silenced():
                return command(*args, **kwargs)
        except S2SError as err:
            if state["debug"]:
                raise
            console.error(str(err))
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            console.error("interrupted.")
            raise typer.Exit(130) from None

    return wrapper
