"""`s2s average`: average the last step checkpoints into the run's model."""

from __future__ import annotations

import dataclasses
import sys
from typing import Annotated, Optional

import typer

from s2s_cli import console
from s2s_cli.cli.app import DEFAULT_RUN_DIR, JsonOpt, RunDirOpt, app, handles_errors
from s2s_cli.cli.engine import KeepOpt, keep_ctranslate2


@app.command()
@handles_errors
def average(
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    last: Annotated[int, typer.Option(min=1, help="Average the last N step checkpoints.")] = 5,
    steps: Annotated[
        Optional[str], typer.Option(help="Average the checkpoints of these steps instead, e.g. 3000,3200,3400.")
    ] = None,
    ctranslate2: KeepOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Average step checkpoints into model.weights.h5 (the best step's weights stay in model.unaveraged.weights.h5).

    Averaging the last checkpoints often scores better than any one of them; the validation BLEU of the average
    and of the best single step are printed. Train with --keep N to keep N checkpoints.
    """
    from s2s_cli.rundir import RunDir
    from s2s_cli.training.averaging import average as run_average

    chosen = _steps(steps) if steps else None
    run = RunDir(run_dir)
    result = run_average(run, last=None if chosen else last, steps=chosen)
    best = f"{result.best_bleu:.2f} (step {result.best_step})" if result.best_bleu is not None else "unknown"
    console.info(f"averaged steps {', '.join(map(str, result.steps))}: valid BLEU {result.bleu:.2f}, best step {best}")
    if ctranslate2:
        keep_ctranslate2(run)
    if json_out:
        console.print_json(dataclasses.asdict(result))
    else:
        sys.stdout.write(f"{result.bleu:.2f}\n")


def _steps(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"--steps {value!r}: give step numbers separated by commas.") from None
