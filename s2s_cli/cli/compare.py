"""`s2s compare`: is B really better than A? Paired significance tests of two systems on one test set."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from s2s_cli import console
from s2s_cli.cli.app import BeamOpt, InputOpt, JsonOpt, WorkersOpt, app, handles_errors
from s2s_cli.config import Choice


class Test(Choice):
    BS = "bs"
    AR = "ar"


@app.command()
@handles_errors
def compare(
    system_a: Annotated[Path, typer.Argument(help="The baseline: a file of translations, or a trained run dir.")],
    system_b: Annotated[Path, typer.Argument(help="The system compared with it: a file, or a run dir.")],
    ref: Annotated[
        Optional[Path],
        typer.Option(help="References (default: the test split of the first run dir among A and B)."),
    ] = None,
    input_file: InputOpt = None,
    beam: BeamOpt = 5,
    test: Annotated[
        Test, typer.Option(help="bs: paired bootstrap resampling; ar: approximate randomization.")
    ] = Test.BS,
    samples: Annotated[
        int, typer.Option(min=0, help="Resamples (bs) or trials (ar); 0 = sacreBLEU's default (1000 / 10000).")
    ] = 0,
    workers: WorkersOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare two systems' BLEU and chrF on one test set, with 95% confidence intervals and p-values.

    A run dir is translated first (its test split, or --input). A small p-value (below 0.05, say) means the
    difference is unlikely to be chance.
    """
    from s2s_cli.evaluation import compare as run_compare
    from s2s_cli.evaluation import system_outputs

    named, refs, lang = system_outputs([system_a, system_b], ref, input_file, beam, workers)
    result = run_compare(named, refs, lang, test=test.value, samples=samples)
    if json_out:
        console.print_json(dataclasses.asdict(result))
        return
    rows = []
    for system in (result.baseline, result.system):
        rows.append(
            (
                system.name,
                f"BLEU {system.bleu:.2f} ± {system.bleu_ci:.2f}   chrF {system.chrf:.2f} ± {system.chrf_ci:.2f}",
            )
        )
    rows.append(("p-value of B - A", f"BLEU {result.bleu_p:.4f}   chrF {result.chrf_p:.4f}"))
    out = console.stdout()
    out.print(console.table(f"{len(refs)} sentences, {test.value} with {result.samples} samples", rows))
    for name, signature in result.signatures.items():
        out.print(f"{name}: {signature}")
