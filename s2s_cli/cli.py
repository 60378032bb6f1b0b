"""The `s2s` command line: each command validates its flags, calls one core function and renders the result."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from s2s_cli import __version__, console
from s2s_cli.errors import S2SError

app = typer.Typer(
    name="s2s",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": bool(os.environ.get("S2S_DEBUG"))}

RunDirOpt = Annotated[Path, typer.Option("--run-dir", "-r", help="Run directory holding config, data and model.")]
BeamOpt = Annotated[int, typer.Option("--beam", "-b", min=1, help="Beam size; 1 is greedy search.")]
LengthPenaltyOpt = Annotated[
    float, typer.Option("--length-penalty", min=0.0, help="GNMT length penalty alpha; 0 disables it.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
WorkersOpt = Annotated[
    Optional[int],
    typer.Option(
        min=1,
        help="Batches decoded at once, each on its own thread (default: one per CPU core, up to 4; 1 with a GPU).",
    ),
]
DEFAULT_RUN_DIR = Path("runs/default")


def handles_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors into one line on stderr and exit code 1 (--debug shows the traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            if _state["debug"]:
                return command(*args, **kwargs)
            with console.native_logs_silenced():
                return command(*args, **kwargs)
        except S2SError as err:
            if _state["debug"]:
                raise
            console.error(str(err))
            raise typer.Exit(getattr(err, "exit_code", 1)) from None
        except KeyboardInterrupt:
            console.error("interrupted.")
            raise typer.Exit(130) from None

    return wrapper


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
    _state["debug"] = debug or bool(os.environ.get("S2S_DEBUG"))


def _split_size(value: str) -> float:
    try:
        size = float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither a count nor a fraction") from None
    if size < 0 or (size >= 1 and size != int(size)):
        raise typer.BadParameter("give a whole count (e.g. 500) or a fraction below 1 (e.g. 0.05)")
    return size


@app.command()
@handles_errors
def prepare(
    corpus: Annotated[Path, typer.Argument(help="A TSV file (source<TAB>target[<TAB>ignored]) or the source file.")],
    tgt_file: Annotated[Optional[Path], typer.Argument(help="The target file, line-aligned with CORPUS.")] = None,
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    src_lang: Annotated[Optional[str], typer.Option(help="Source language code (detected if omitted).")] = None,
    tgt_lang: Annotated[
        Optional[str], typer.Option(help="Target language code, e.g. zh (detected if omitted).")
    ] = None,
    tokenizer: Annotated[str, typer.Option(help="spm (SentencePiece), char or word.")] = "spm",
    spm_model_type: Annotated[str, typer.Option(help="SentencePiece model: unigram or bpe.")] = "unigram",
    vocab_size: Annotated[int, typer.Option(help="Vocabulary size per side (a small corpus gets fewer).")] = 4000,
    joint: Annotated[bool, typer.Option(help="One vocabulary shared by source and target.")] = False,
    valid_size: Annotated[str, typer.Option(help="Validation pairs: a count or a fraction.")] = "0.05",
    test_size: Annotated[str, typer.Option(help="Test pairs: a count or a fraction.")] = "0.05",
    max_len: Annotated[int, typer.Option(help="Drop training pairs with a side longer than this many tokens.")] = 100,
    valid: Annotated[
        Optional[list[Path]],
        typer.Option(help="Validation set instead of a split: a TSV, or --valid SRC --valid TGT."),
    ] = None,
    test: Annotated[
        Optional[list[Path]], typer.Option(help="Test set instead of a split: a TSV, or --test SRC --test TGT.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the train/valid/test split.")] = 1,
    strict: Annotated[bool, typer.Option(help="Fail on a malformed line instead of skipping it.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing run dir.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Read and clean a parallel corpus, split it, train tokenizers, and write the run dir."""
    from s2s_cli.config import DataConfig
    from s2s_cli.preparation import prepare as run_prepare

    data = DataConfig(
        src_lang=src_lang,
        tgt_lang=tgt_lang,
        tokenizer=tokenizer,
        spm_model_type=spm_model_type,
        vocab_size=vocab_size,
        joint=joint,
        max_len=max_len,
        valid_size=_split_size(valid_size),
        test_size=_split_size(test_size),
        seed=seed,
    )
    for name, files in (("--valid", valid), ("--test", test)):
        if files and len(files) > 2:
            raise typer.BadParameter(f"{name} takes one TSV file or a source and a target file.")
    result = run_prepare(
        corpus, tgt_file, run_dir, data, force=force, strict=strict, valid_files=valid or (), test_files=test or ()
    )
    stats = result.stats
    rows = [("pairs read", stats.read), ("pairs kept", stats.kept)]
    rows += [
        (f"dropped: {reason}", f"{n} (e.g. line {', '.join(map(str, stats.examples[reason]))})")
        for reason, n in stats.dropped.most_common()
    ]
    if stats.extra_columns:
        rows.append(("lines with extra columns (ignored)", stats.extra_columns))
    rows.append((f"dropped: longer than {max_len} tokens (train)", result.too_long))
    rows += [(f"{name} pairs", n) for name, n in result.split_sizes.items()]
    cfg = result.config.data
    rows += [
        ("languages", f"{cfg.src_lang or '?'} -> {cfg.tgt_lang or '?'}"),
        ("vocabulary (src / tgt)", f"{result.src_vocab} / {result.tgt_vocab}"),
    ]
    console.stderr().print(console.table(f"prepared {run_dir}", rows))
    if json_out:
        console.print_json(
            {
                "run_dir": str(run_dir),
                "read": stats.read,
                "kept": stats.kept,
                "dropped": dict(stats.dropped),
                "extra_columns": stats.extra_columns,
                "too_long": result.too_long,
                "splits": result.split_sizes,
                "src_lang": cfg.src_lang,
                "tgt_lang": cfg.tgt_lang,
                "src_vocab": result.src_vocab,
                "tgt_vocab": result.tgt_vocab,
            }
        )
    else:
        console.info(f"next: s2s train --run-dir {run_dir}")


@app.command()
@handles_errors
def train(
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs to train (default 30).")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many optimizer steps in total.")] = None,
    max_minutes: Annotated[
        Optional[float], typer.Option(help="Stop after this many minutes of this run (validation included).")
    ] = None,
    valid_every: Annotated[
        Optional[int], typer.Option(help="Validate every N steps instead of after every epoch.")
    ] = None,
    batch_tokens: Annotated[
        Optional[int], typer.Option(help="Tokens per batch, padding included (default 4096).")
    ] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Sentences per batch instead of --batch-tokens.")] = None,
    arch: Annotated[Optional[str], typer.Option(help="Architecture: transformer (default) or rnn.")] = None,
    cell: Annotated[Optional[str], typer.Option(help="Recurrent cell: lstm or gru.")] = None,
    emb_dim: Annotated[Optional[int], typer.Option(help="RNN embedding size (default 256).")] = None,
    hidden: Annotated[Optional[int], typer.Option(help="RNN hidden size (default 256).")] = None,
    layers: Annotated[Optional[int], typer.Option(help="Encoder and decoder layers (default 3).")] = None,
    dropout: Annotated[Optional[float], typer.Option(help="Dropout rate (default 0.2).")] = None,
    attention: Annotated[
        Optional[str], typer.Option(help="RNN attention: general, dot (Luong) or bahdanau (additive).")
    ] = None,
    d_model: Annotated[Optional[int], typer.Option(help="Transformer model size (default 256).")] = None,
    heads: Annotated[Optional[int], typer.Option(help="Transformer attention heads (default 4).")] = None,
    ff_dim: Annotated[
        Optional[int],
        typer.Option(
            help="Transformer feed-forward size (default 1024; 512 trains 21% and decodes about 15% faster, "
            "at 0.9 BLEU less on the Multi30k test set)."
        ),
    ] = None,
    tie_embeddings: Annotated[Optional[bool], typer.Option(help="Share target embedding and output matrix.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (default 1e-3).")] = None,
    warmup: Annotated[
        Optional[int],
        typer.Option(
            help="Warm-up steps, then inverse-sqrt decay (default: 400, at most a tenth of the planned steps)."
        ),
    ] = None,
    clip_norm: Annotated[Optional[float], typer.Option(help="Global gradient-norm clip; 0 disables.")] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(help="Label smoothing (default 0.1).")] = None,
    patience: Annotated[
        Optional[int], typer.Option(help="Stop after N validations without improvement; 0 never.")
    ] = None,
    select: Annotated[Optional[str], typer.Option(help="Keep the best weights by bleu or loss.")] = None,
    valid_beam: Annotated[Optional[int], typer.Option(help="Beam for validation decoding (default 1).")] = None,
    precision: Annotated[
        Optional[str],
        typer.Option(
            help="auto (default: bf16 where the hardware has native bfloat16 matmuls, else float32), float32, or bf16 "
            "(mixed bfloat16)."
        ),
    ] = None,
    keep: Annotated[Optional[int], typer.Option(help="Step checkpoints to keep (default 2).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for initialization, shuffling and dropout.")] = None,
    strategy: Annotated[
        Optional[str],
        typer.Option(
            help="Distribution: auto (default), one (single device), mirrored (all local GPUs), or multi-worker "
            "(the cluster in TF_CONFIG; run the same command on every worker)."
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
    force: Annotated[bool, typer.Option(help="Start over, replacing an earlier training in the run dir.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Train the model on the run dir's data; validate each epoch and keep the best weights."""
    from dataclasses import fields

    from s2s_cli.config import ModelConfig, TrainConfig
    from s2s_cli.rundir import RunDir
    from s2s_cli.training import plan_config
    from s2s_cli.training import train as run_train

    given = {k: v for k, v in locals().items() if v is not None}
    run = RunDir(run_dir)
    config = plan_config(
        run,
        model={f.name: given[f.name] for f in fields(ModelConfig) if f.name in given},
        train={f.name: given[f.name] for f in fields(TrainConfig) if f.name in given},
        resume=resume,
        force=force,
    )
    console.info(f"TensorBoard: tensorboard --logdir {run.logs_dir}")
    with console.TrainBar(config.train.max_steps) as bar:
        result = run_train(run, config, resume=resume, progress=bar)
    best = f" (valid BLEU {result.best_valid_bleu:.2f})" if result.best_valid_bleu is not None else ""
    console.info(
        f"trained {result.steps} steps ({result.epochs} epochs, {result.seconds:.0f}s, "
        f"{result.tgt_tokens_per_sec:,.0f} tgt tok/s); stopped by {result.stopped}; best step {result.best_step}"
        f"{best}; last valid BLEU {result.valid_bleu:.2f}"
    )
    if json_out:
        console.print_json(result.to_dict())


@app.command()
@handles_errors
def evaluate(
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    src: Annotated[Optional[Path], typer.Option(help="Source file to translate (default: the test split).")] = None,
    ref: Annotated[Optional[Path], typer.Option(help="Reference translations, line-aligned with --src.")] = None,
    hyp: Annotated[
        Optional[Path], typer.Option(help="Score this hypothesis file instead of translating --src.")
    ] = None,
    output: Annotated[Optional[Path], typer.Option(help="Write the hypotheses to this file.")] = None,
    beam: BeamOpt = 5,
    length_penalty: LengthPenaltyOpt = 0.6,
    workers: WorkersOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Translate the test split (or --src) and score it against references with sacreBLEU."""
    from s2s_cli.corpus import read_lines
    from s2s_cli.evaluation import score
    from s2s_cli.rundir import RunDir, write_text_atomic
    from s2s_cli.translation import Translator, decoding_workers

    if (src is None) != (ref is None) and hyp is None:
        raise typer.BadParameter("--src and --ref go together.")
    run = RunDir(run_dir)
    config = run.load_config()
    ref_lines = read_lines(ref or run.split_path("test", "tgt"))
    if hyp is not None:
        hyps = read_lines(hyp)
    else:
        src_lines = read_lines(src or run.split_path("test", "src"))
        if len(src_lines) != len(ref_lines):
            raise S2SError(f"{len(src_lines)} source lines but {len(ref_lines)} reference lines: give aligned files.")
        translator = Translator.from_run_dir(run, workers=decoding_workers(workers))
        hyps = [t[0].text for t in translator.translate(src_lines, beam=beam, alpha=length_penalty)]
    if output is not None:
        write_text_atomic(output, "".join(h + "\n" for h in hyps))
    scores = score(hyps, ref_lines, config.data.tgt_lang)
    if json_out:
        console.print_json({**scores.to_dict(), "beam": beam, "tgt_lang": config.data.tgt_lang})
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


@app.command()
@handles_errors
def translate(
    text: Annotated[Optional[list[str]], typer.Argument(help="Sentences to translate; `-` reads stdin.")] = None,
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    input_file: Annotated[Optional[Path], typer.Option("--input", "-i", help="Translate each line of a file.")] = None,
    beam: BeamOpt = 5,
    n_best: Annotated[int, typer.Option(min=1, help="Translations per input (at most --beam).")] = 1,
    length_penalty: LengthPenaltyOpt = 0.6,
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences decoded together.")] = 256,
    workers: WorkersOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per input line.")] = False,
) -> None:
    """Translate sentences: one output line per input line, in order."""
    from s2s_cli.translation import Translator, decoding_workers

    if n_best > beam:
        raise typer.BadParameter(f"--n-best {n_best} exceeds --beam {beam}.")
    sources = _sources(text or [], input_file)
    translator = Translator.from_run_dir(run_dir, workers=decoding_workers(workers))
    # Read ahead enough lines that every worker gets two batches: sorting by length happens within a chunk.
    for chunk in _chunks(sources, max(512, 2 * translator.workers * batch_size)):
        results = translator.translate(chunk, beam=beam, n_best=n_best, alpha=length_penalty, batch_size=batch_size)
        if translator.truncated:
            console.warn(
                f"{translator.truncated} input(s) longer than {translator.config.data.max_len} tokens were truncated."
            )
        for source, nbest in zip(chunk, results):
            if json_out:
                console.print_json({"source": source, "translations": [vars(t) for t in nbest]})
            else:
                sys.stdout.write("".join(t.text + "\n" for t in nbest))
        sys.stdout.flush()


@app.command()
@handles_errors
def export(
    out_dir: Annotated[
        Path, typer.Argument(help="Directory for the SavedModel, e.g. models/en-zh/1 (TF Serving's version folder).")
    ],
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    beam: BeamOpt = 5,
    length_penalty: LengthPenaltyOpt = 0.6,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT_DIR if it exists.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Export the trained model as a string-in/string-out TensorFlow SavedModel for TensorFlow Serving.

    Tokenization, search and detokenization run inside the graph: clients send raw sentences and get translations.
    """
    from s2s_cli.export import export as run_export
    from s2s_cli.rundir import RunDir

    metadata = run_export(RunDir(run_dir), out_dir, beam=beam, alpha=length_penalty, force=force)
    console.info(f"serve with: tensorflow_model_server --model_base_path={out_dir.resolve().parent} --model_name=s2s")
    if json_out:
        console.print_json({"path": str(out_dir), **metadata})
    else:
        sys.stdout.write(f"{out_dir}\n")


def _sources(texts: list[str], input_file: Path | None) -> Iterator[str]:
    """Input lines from arguments, a file, or stdin (`-`), streamed."""
    from s2s_cli.corpus import iter_lines

    if input_file is not None and texts:
        raise typer.BadParameter("give sentences or --input FILE, not both.")
    if input_file is not None:
        return iter_lines(input_file)
    if texts == ["-"]:
        return (line.rstrip("\r\n") for line in sys.stdin)
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


def main() -> None:
    app()
