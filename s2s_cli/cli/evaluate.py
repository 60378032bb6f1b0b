"""`s2s evaluate`: translate the test split (or a file) and score it with sacreBLEU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from s2s_cli import console
from s2s_cli.cli.app import (
    DEFAULT_RUN_DIR,
    BeamOpt,
    InputOpt,
    JsonOpt,
    LengthPenaltyOpt,
    RunDirOpt,
    WorkersOpt,
    app,
    handles_errors,
)
from s2s_cli.config import LENGTH_PENALTY
from s2s_cli.files import count_lines


@app.command()
@handles_errors
def evaluate(
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    input_file: InputOpt = None,
    ref: Annotated[
        Optional[Path], typer.Option(help="References, line-aligned with --input (default: the test split's).")
    ] = None,
    hyp: Annotated[
        Optional[Path], typer.Option(help="Score this file of translations instead of translating --input.")
    ] = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Write the translations to this file.")
    ] = None,
    beam: BeamOpt = 5,
    length_penalty: LengthPenaltyOpt = LENGTH_PENALTY,
    workers: WorkersOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Translate the test split (or --input) and score it against references with sacreBLEU: BLEU, chrF, TER."""
    from s2s_cli.evaluation import evaluate as run_evaluate
    from s2s_cli.inference.translator import decoding_workers
    from s2s_cli.rundir import RunDir

    if (input_file is None) != (ref is None) and hyp is None:
        raise typer.BadParameter("--input and --ref go together.")
    run = RunDir(run_dir)
    tgt_lang = run.load_config().data.tgt_lang
    source = input_file or run.split_path("test", "src")
    total = count_lines(source) if hyp is None and console.is_terminal() and source.is_file() else None
    with console.CountBar(total, "sentences") as bar:
        scores = run_evaluate(
            run,
            input_file,
            ref,
            hyp,
            output,
            beam=beam,
            alpha=length_penalty,
            workers=decoding_workers(workers) if hyp is None else 1,
            on_batch=bar.advance,
        )
    if json_out:
        console.print_json({**scores.to_dict(), "beam": beam, "tgt_lang": tgt_lang})
        return
    out = console.stdout()
    out.print(
        console.table(
            f"{scores.sentences} sentences, beam {beam}",
            [("BLEU", f"{scores.bleu:.2f}"), ("chrF", f"{scores.chrf:.2f}"), ("TER", f"{scores.ter:.2f}")],
        )
    )
    for name, signature in scores.signature.items():
        out.print(f"{name}: {signature}")
