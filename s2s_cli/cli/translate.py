"""`s2s translate`: sentences from arguments, a file or stdin, one output line per input line, in order."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from s2s_cli import console
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
from s2s_cli.config import Choice

MIN_CHUNK = 512  # input lines read ahead: sorting by length happens within a chunk


class Engine(Choice):
    S2S = "s2s"
    CTRANSLATE2 = "ctranslate2"


@app.command()
@handles_errors
def translate(
    text: Annotated[Optional[list[str]], typer.Argument(help="Sentences to translate; `-` reads stdin.")] = None,
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    input_file: InputOpt = None,
    beam: BeamOpt = 5,
    n_best: Annotated[int, typer.Option(min=1, help="Translations per input (at most --beam).")] = 1,
    length_penalty: LengthPenaltyOpt = 0.6,
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences decoded together.")] = 256,
    workers: WorkersOpt = None,
    engine: Annotated[
        Engine, typer.Option(help="s2s: the run dir's model; ctranslate2: a model converted with `s2s export`.")
    ] = Engine.S2S,
    model: Annotated[
        Optional[Path],
        typer.Option(help="The CTranslate2 model (`s2s export --format ctranslate2 DIR`) for --engine ctranslate2."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per input line.")] = False,
) -> None:
    """Translate sentences: one output line per input line, in order (--n-best K: K lines per input)."""
    from s2s_cli.inference.translator import Translator, decoding_workers

    if n_best > beam:
        raise typer.BadParameter(f"--n-best {n_best} exceeds --beam {beam}.")
    if (engine == Engine.CTRANSLATE2) != (model is not None):
        raise typer.BadParameter("--engine ctranslate2 and --model DIR go together.")
    sources = _sources(text or [], input_file)
    if engine == Engine.CTRANSLATE2:
        from s2s_cli.inference.ct2 import CT2Translator

        translator = CT2Translator(model, workers=decoding_workers(workers))
    else:
        translator = Translator.from_run_dir(run_dir, workers=decoding_workers(workers))
    # Read ahead enough lines that every worker gets two batches.
    for chunk in _chunks(sources, max(MIN_CHUNK, 2 * translator.workers * batch_size)):
        results = translator.translate(chunk, beam=beam, n_best=n_best, alpha=length_penalty, batch_size=batch_size)
        if translator.truncated:
            console.warn(
                f"{translator.truncated} input(s) longer than {translator.max_source_tokens} tokens were truncated."
            )
        for source, nbest in zip(chunk, results):
            if json_out:
                console.print_json({"source": source, "translations": [vars(t) for t in nbest]})
            else:
                sys.stdout.write("".join(t.text + "\n" for t in nbest))
        sys.stdout.flush()


def _sources(texts: list[str], input_file: Path | None) -> Iterator[str]:
    """Input lines from arguments, a file, or stdin (`-`, or no text with stdin not a terminal), streamed."""
    from s2s_cli.data.corpus import decode_lines, iter_lines, raw_lines

    if input_file is not None and texts:
        raise typer.BadParameter("give sentences or --input FILE, not both.")
    if input_file is not None:
        return iter_lines(input_file)
    if texts == ["-"] or (not texts and sys.stdin is not None and not sys.stdin.isatty()):
        if sys.stdin is None:
            raise typer.BadParameter("stdin is closed: give sentences or --input FILE.")
        return decode_lines(raw_lines(sys.stdin.buffer), "stdin")
    if not texts:
        raise typer.BadParameter("nothing to translate: give sentences, `-` for stdin, or --input FILE.")
    return iter(texts)


def _chunks(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
