"""`s2s export`: the trained model as a string-in/string-out TensorFlow SavedModel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from s2s_cli import console
from s2s_cli.cli.app import (
    DEFAULT_RUN_DIR,
    BeamOpt,
    JsonOpt,
    LengthPenaltyOpt,
    RunDirOpt,
    app,
    force_option,
    handles_errors,
)


@app.command()
@handles_errors
def export(
    out_dir: Annotated[
        Path, typer.Argument(help="Directory for the SavedModel, e.g. models/en-zh/1 (TF Serving's version folder).")
    ],
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    beam: BeamOpt = 5,
    length_penalty: LengthPenaltyOpt = 0.6,
    force: Annotated[bool, force_option("Replace OUT_DIR if it exists.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Export the trained model as a string-in/string-out TensorFlow SavedModel for TensorFlow Serving.

    Tokenization, search and detokenization run inside the graph: clients send raw sentences and get translations.
    """
    from s2s_cli.inference.export import export as run_export
    from s2s_cli.rundir import RunDir

    metadata = run_export(RunDir(run_dir), out_dir, beam=beam, alpha=length_penalty, force=force)
    console.info(f"serve with: tensorflow_model_server --model_base_path={out_dir.resolve().parent} --model_name=s2s")
    if json_out:
        console.print_json({"path": str(out_dir), **metadata})
    else:
        sys.stdout.write(f"{out_dir}\n")
