"""The Typer app, its error handling, and the option types the commands share."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
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
    """Turn expected errors into one line on stderr and their exit code (--debug shows the traceback).

    Expected are s2s's own errors, and what the machine can refuse any command: a full disk, a missing permission,
    memory. A closed stdout (`| head -1`) ends the command quietly."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            if state["debug"]:
                return command(*args, **kwargs)
            with console.native_logs_filtered():
                return command(*args, **kwargs)
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            console.error("interrupted.")
            raise typer.Exit(130) from None
        except Exception as err:
            message, code = _expected(err)
            if message is None or state["debug"]:
                raise
            console.error(message)
            try:
                sys.stdout.flush()
            except OSError:  # stdout itself failed (a full disk): the interpreter's last flush would fail again
                _silence_stdout()
            raise typer.Exit(code) from None

    return wrapper


def _expected(err: Exception) -> tuple[str | None, int]:
    """The one line and exit code for an expected error; (None, 1) for a bug, which keeps its traceback."""
    if isinstance(err, S2SError):
        return str(err), err.exit_code
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror} (check the path, its permissions and the free disk space).", 1
    if isinstance(err, MemoryError) or type(err).__name__ == "ResourceExhaustedError":
        return "out of memory: lower --batch-size / --batch-tokens or --beam, or use a smaller model.", 1
    return None, 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush into a closed pipe does not fail too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
