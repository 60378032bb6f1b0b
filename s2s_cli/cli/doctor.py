"""`s2s doctor`: check a corpus or a prepared run dir before spending a night training on it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from s2s_cli import console
from s2s_cli.cli.app import DEFAULT_RUN_DIR, JsonOpt, RunDirOpt, app, handles_errors
from s2s_cli.config import DataConfig

CHECKS = {
    "over_max_len": "pairs with a side over --max-len",
    "ratio_outliers": "length ratio far from the corpus' (misaligned?)",
    "copies": "target identical to source",
    "wrong_script": "target not in the target language's script",
}


@app.command()
@handles_errors
def doctor(
    corpus: Annotated[
        Optional[Path], typer.Argument(help="A corpus to check as `s2s prepare` would read it (default: the run dir).")
    ] = None,
    tgt_file: Annotated[Optional[Path], typer.Argument(help="The target file, line-aligned with CORPUS.")] = None,
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    max_len: Annotated[int, typer.Option(help="The --max-len to check a raw corpus against.")] = DataConfig().max_len,
    tgt_lang: Annotated[Optional[str], typer.Option(help="Target language of a raw corpus (else detected).")] = None,
    steps: Annotated[
        int, typer.Option(min=0, help="Updates to time for the training estimate of a run dir; 0 skips it.")
    ] = 5,
    json_out: JsonOpt = False,
) -> None:
    """Lengths, over-long, misaligned, copied and wrong-script pairs; with a run dir also tokenizer coverage of the
    validation and test splits, and the time and memory an epoch of training takes on this machine."""
    from s2s_cli.rundir import RunDir
    from s2s_cli.training.preflight import diagnose_corpus, diagnose_run
    from s2s_cli.training.runner import plan_config

    if corpus is not None:
        diagnosis = diagnose_corpus(corpus, tgt_file, DataConfig(max_len=max_len, tgt_lang=tgt_lang))
    else:
        run = RunDir(run_dir)
        config = run.load_config() if run.has_weights() else plan_config(run, {}, {}, resume=False, force=True)
        diagnosis = diagnose_run(run, config, steps)
    if json_out:
        cleaning = diagnosis.cleaning
        console.print_json(
            {
                "report": dataclasses.asdict(diagnosis.report),
                "cleaning": {"read": cleaning.read, "kept": cleaning.kept, "dropped": dict(cleaning.dropped)}
                if cleaning
                else None,
                "estimate": dataclasses.asdict(diagnosis.estimate) if diagnosis.estimate else None,
            }
        )
        return
    report = diagnosis.report
    rows = [("pairs", report.pairs)]
    for side, lengths in (("source", report.src_lengths), ("target", report.tgt_lengths)):
        rows.append((f"{side} {report.unit}: median / p90 / p99 / max", " / ".join(f"{v:g}" for v in lengths.values())))
    for name, label in CHECKS.items():
        examples = report.examples[name]
        where = f" (e.g. pair {', '.join(map(str, examples))})" if examples else ""
        rows.append((label, f"{report.counts[name]}{where}"))
    for split, rates in report.coverage.items():
        rows.append((f"unknown tokens in {split} (src / tgt)", f"{rates['src']:.2%} / {rates['tgt']:.2%}"))
    if report.coverage:
        rows.append(("target characters not covered", " ".join(report.uncovered) or "none"))
    if diagnosis.cleaning is not None:
        rows += [(f"dropped when read: {reason}", n) for reason, n in diagnosis.cleaning.dropped.most_common()]
    estimate = diagnosis.estimate
    if estimate is not None:
        rows += [
            ("model parameters", f"{estimate.params:,}"),
            (
                "training: time per epoch",
                f"{_duration(estimate.seconds_per_epoch)} ({estimate.updates_per_epoch} updates)",
            ),
            ("training: target tokens/s", f"{estimate.tgt_tokens_per_sec:,.0f}"),
            ("training: peak memory (MB)", f"{estimate.peak_rss_mb:,.0f}"),
        ]
    console.stdout().print(console.table("s2s doctor", rows))


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
