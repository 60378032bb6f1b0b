"""`s2s prepare`: a corpus -> a run dir with splits and tokenizers."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from s2s_cli import console
from s2s_cli.cli.app import DEFAULT_RUN_DIR, JsonOpt, RunDirOpt, app, force_option, handles_errors
from s2s_cli.config import DataConfig, SpmModelType, TokenizerKind

DEFAULTS = DataConfig()


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
    tokenizer: Annotated[
        TokenizerKind, typer.Option(help="spm (SentencePiece), char or word (CJK split into characters).")
    ] = DEFAULTS.tokenizer,
    spm_model_type: Annotated[SpmModelType, typer.Option(help="SentencePiece model type.")] = DEFAULTS.spm_model_type,
    vocab_size: Annotated[
        int, typer.Option(help="Vocabulary size per side (a small corpus gets fewer).")
    ] = DEFAULTS.vocab_size,
    joint: Annotated[bool, typer.Option(help="One vocabulary shared by source and target.")] = DEFAULTS.joint,
    valid_size: Annotated[str, typer.Option(help="Validation pairs: a count, or a fraction (at most 3,000).")] = str(
        DEFAULTS.valid_size
    ),
    test_size: Annotated[str, typer.Option(help="Test pairs: a count, or a fraction (at most 3,000).")] = str(
        DEFAULTS.test_size
    ),
    max_len: Annotated[
        int, typer.Option(help="Drop training pairs with a side longer than this many tokens.")
    ] = DEFAULTS.max_len,
    valid: Annotated[
        Optional[list[Path]],
        typer.Option(help="Validation set instead of a split: a TSV, or --valid SRC --valid TGT."),
    ] = None,
    test: Annotated[
        Optional[list[Path]], typer.Option(help="Test set instead of a split: a TSV, or --test SRC --test TGT.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the train/valid/test split.")] = DEFAULTS.seed,
    spm_sample: Annotated[
        int, typer.Option(help="Sentences a side SentencePiece trains on, sampled from a larger corpus.")
    ] = DEFAULTS.spm_sample,
    tokenizers_from: Annotated[
        Optional[Path],
        typer.Option(
            help="Reuse this run dir's tokenizers and languages (to fine-tune its model on this corpus with "
            "`s2s train --init-from`); the tokenizer and language options are then taken from it."
        ),
    ] = None,
    strict: Annotated[bool, typer.Option(help="Fail on a malformed line instead of skipping it.")] = False,
    force: Annotated[bool, force_option("Replace an existing run dir.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Read and clean a parallel corpus, split it, train tokenizers, and write the run dir."""
    from s2s_cli.data.prepare import prepare as run_prepare

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
        spm_sample=spm_sample,
    )
    for name, files in (("--valid", valid), ("--test", test)):
        if files and len(files) > 2:
            raise typer.BadParameter(f"{name} takes one TSV file or a source and a target file.")
    with console.PhaseBar() as bar:
        result = run_prepare(
            corpus,
            tgt_file,
            run_dir,
            data,
            force=force,
            strict=strict,
            valid_files=valid or (),
            test_files=test or (),
            tokenizers_from=tokenizers_from,
            progress=bar.update,
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
    if result.coverage is not None:
        cov = result.coverage
        rows.append(("unknown tokens in train (src / tgt)", f"{cov.src_unk_rate:.2%} / {cov.tgt_unk_rate:.2%}"))
        rows.append(("characters not covered", " ".join(cov.uncovered) or "none"))
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
                "coverage": dataclasses.asdict(result.coverage) if result.coverage else None,
            }
        )
    else:
        console.info(f"next: s2s train --run-dir {run_dir}")
