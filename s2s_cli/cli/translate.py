"""`s2s translate`: sentences from arguments, a file or stdin, one output line per input line, in order."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from s2s_cli import console
from s2s_cli.cli import inputs
from s2s_cli.cli.app import (
    DEFAULT_RUN_DIR,
    BeamOpt,
    InputOpt,
    LengthPenaltyOpt,
    RunDirOpt,
    WorkersOpt,
    app,
    handles_errors,
)
from s2s_cli.cli.engine import Engine, EngineOpt, ModelOpt, ctranslate2_model
from s2s_cli.config import LENGTH_PENALTY
from s2s_cli.files import count_lines

MIN_CHUNK = 512  # input lines read ahead: sorting by length happens within a chunk


@app.command()
@handles_errors
def translate(
    text: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="Sentences to translate; `-` (or none, with a pipe) reads stdin; none at a terminal prompts."
        ),
    ] = None,
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    input_file: InputOpt = None,
    beam: BeamOpt = 5,
    n_best: Annotated[int, typer.Option(min=1, help="Translations per input (at most --beam).")] = 1,
    length_penalty: LengthPenaltyOpt = LENGTH_PENALTY,
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences decoded together.")] = 256,
    workers: WorkersOpt = None,
    max_length: Annotated[
        Optional[int],
        typer.Option(min=1, help="Longest translation in tokens.", show_default="twice the longest training source"),
    ] = None,
    max_length_ratio: Annotated[
        float, typer.Option(min=0.0, help="Longest translation: this many times the source's tokens, plus 10.")
    ] = 1.5,
    no_unk: Annotated[bool, typer.Option("--no-unk/--unk", help="Never output the unknown token.")] = False,
    sample: Annotated[
        bool, typer.Option("--sample/--search", help="Draw each token instead of searching (back-translation).")
    ] = False,
    top_k: Annotated[int, typer.Option(min=0, help="--sample: from the K most likely tokens; 0 = all.")] = 0,
    top_p: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="--sample: from the most likely tokens of probability P.")
    ] = 1.0,
    temperature: Annotated[float, typer.Option(min=0.01, help="--sample: below 1 sharper, above 1 flatter.")] = 1.0,
    seed: Annotated[int, typer.Option(help="--sample: the same seed, input and batch size give the same draws.")] = 0,
    engine: EngineOpt = Engine.AUTO,
    model: ModelOpt = None,
    align: Annotated[
        bool,
        typer.Option(
            "--align/--no-align",
            help="Show which source tokens each target token attended to (the RNN's attention; the Transformer's "
            "last-layer cross-attention, averaged over heads): a grid, or 'alignment' in --json.",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per input line.")] = False,
) -> None:
    """Translate sentences: one output line per input line, in order (--n-best K: K lines per input)."""
    from s2s_cli.inference.common import Sampling, cpu_workers

    if n_best > beam:
        raise typer.BadParameter(f"--n-best {n_best} exceeds --beam {beam}.")
    model = ctranslate2_model(engine, model, run_dir, align)
    kind, lines = inputs.sources(text or [], input_file)
    if model is not None:  # without TensorFlow
        from s2s_cli.inference.ct2 import CT2Translator

        translator = CT2Translator(model, workers=cpu_workers(workers))
    else:
        from s2s_cli.inference.translator import Translator, decoding_workers

        translator = Translator.from_run_dir(run_dir, workers=decoding_workers(workers))
    options = {
        "beam": beam,
        "n_best": n_best,
        "alpha": length_penalty,
        "batch_size": batch_size,
        "no_unk": no_unk,
        "sampling": Sampling(top_k, top_p, temperature, seed) if sample else None,
        "max_length": max_length,
        "max_length_ratio": max_length_ratio,
    }
    size = max(MIN_CHUNK, 2 * translator.workers * batch_size)  # every worker gets two batches
    groups = inputs.streamed(lines, size) if kind == "pipe" else inputs.chunks(lines, 1 if kind == "prompt" else size)
    total = count_lines(input_file) if kind == "file" and console.is_terminal() else None
    with console.CountBar(total, "sentences") as bar:
        for chunk in groups:
            results = translator.translate(chunk, on_batch=bar.advance, **options)
            if translator.truncated:
                console.warn(
                    f"{translator.truncated} input(s) longer than {translator.max_source_tokens} tokens were truncated."
                )
            alignments = translator.align(chunk, [r[0].text for r in results]) if align else [None] * len(chunk)
            for source, nbest, alignment in zip(chunk, results, alignments):
                if json_out:
                    row = {"source": source, "translations": [vars(t) for t in nbest]}
                    console.print_json({**row, "alignment": vars(alignment)} if alignment else row)
                else:
                    sys.stdout.write("".join(t.text + "\n" for t in nbest))
                    if alignment:
                        sys.stdout.flush()
                        console.stdout().print(console.alignment_grid(alignment))
            sys.stdout.flush()
