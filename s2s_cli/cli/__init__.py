"""The `s2s` command line: each command validates its flags, calls one core function and renders the result.

One module per command; importing them registers them on the app.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from s2s_cli import __version__
from s2s_cli.cli import (  # noqa: F401 - importing the command modules registers them
    average,
    compare,
    doctor,
    evaluate,
    export,
    prepare,
    serve,
    train,
    translate,
)
from s2s_cli.cli.app import app, state

__all__ = ["app", "main"]


def _version(value: bool) -> None:
    if value:
        print(f"s2s {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Train and use your own neural machine translation (sequence-to-sequence) models.

    Typical use: `s2s prepare corpus.tsv`, `s2s train`, `s2s evaluate`, `s2s translate "Hello, world."`.
    All commands work on one run directory (default runs/default).
    """
    state["debug"] = debug or bool(os.environ.get("S2S_DEBUG"))


def main() -> None:
    app()
