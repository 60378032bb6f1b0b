"""`s2s export`: the trained model as a string-in/string-out TensorFlow SavedModel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

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
from s2s_cli.config import LENGTH_PENALTY, Choice


class Format(Choice):
    SAVEDMODEL = "savedmodel"
    CTRANSLATE2 = "ctranslate2"


@app.command()
@handles_errors
def export(
    out_dir: Annotated[
        Optional[Path],
        typer.Argument(
            help="Directory for the SavedModel, e.g. models/en-zh/1 (TF Serving's version folder). With --format "
            "ctranslate2 it may be left out: the model then goes into the run dir, and `s2s translate` uses it.",
            show_default=False,
        ),
    ] = None,
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    beam: BeamOpt = 5,
    length_penalty: LengthPenaltyOpt = LENGTH_PENALTY,
    force: Annotated[bool, force_option("Replace OUT_DIR if it exists.")] = False,
    format: Annotated[  # noqa: A002
        Format, typer.Option("--format", help="savedmodel (TensorFlow Serving) or ctranslate2 (a Transformer only).")
    ] = Format.SAVEDMODEL,
    quantization: Annotated[
        str, typer.Option(help="CTranslate2 weight type: float32, int16, int8, float16, int8_float16, ...")
    ] = "float32",
    json_out: JsonOpt = False,
) -> None:
    """Export the trained model: a string-in/string-out TensorFlow SavedModel, or a CTranslate2 model.

    In the SavedModel, tokenization, search and detokenization run inside the graph: clients send raw sentences and
    get translations. The CTranslate2 model holds the same weights, for `s2s translate --engine ctranslate2`.
    """
    from s2s_cli.rundir import RunDir

    if format == Format.CTRANSLATE2:
        from s2s_cli.inference.ct2 import KEPT, convert

        kept = out_dir is None
        out_dir = run_dir / KEPT if kept else out_dir
        metadata = convert(RunDir(run_dir), out_dir, quantization, force=force)
        how = f"-r {run_dir} TEXT (while the weights stay as they are)" if kept else f"--model {out_dir} TEXT"
        console.info(f"translate with: s2s translate {how}")
    elif out_dir is None:
        raise typer.BadParameter("give OUT_DIR, the directory for the SavedModel.")
    else:
        from s2s_cli.inference.export import export as run_export

        metadata = run_export(RunDir(run_dir), out_dir, beam=beam, alpha=length_penalty, force=force)
        server = f"tensorflow_model_server --model_base_path={out_dir.resolve().parent} --model_name=s2s"
        console.info(f"serve with: {server}")
    if json_out:
        console.print_json({"path": str(out_dir), **metadata})
    else:
        sys.stdout.write(f"{out_dir}\n")
