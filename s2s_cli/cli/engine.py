"""Which engine translates: s2s's own (TensorFlow) or CTranslate2, and the run dir's own CTranslate2 copy that
`s2s train` and `s2s average` keep beside the weights."""

from __future__ import annotations

import time
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Optional

import typer

from s2s_cli import console
from s2s_cli.config import Choice
from s2s_cli.errors import S2SError
from s2s_cli.rundir import RunDir


class Engine(Choice):
    AUTO = "auto"
    S2S = "s2s"
    CTRANSLATE2 = "ctranslate2"


EngineOpt = Annotated[
    Engine,
    typer.Option(
        help="s2s: the run dir's model in TensorFlow; ctranslate2: a model converted to CTranslate2 (--model, or the "
        "run dir's own copy); auto: the run dir's own CTranslate2 copy while it matches the weights and ctranslate2 "
        "is installed (it starts in under a second), else s2s.",
    ),
]
ModelOpt = Annotated[
    Optional[Path],
    typer.Option(help="A CTranslate2 model (`s2s export --format ctranslate2 DIR`) to use instead of the run dir."),
]
KeepOpt = Annotated[
    bool,
    typer.Option(
        "--ctranslate2/--no-ctranslate2",
        help="Keep a CTranslate2 copy of the Transformer's weights in the run dir (when ctranslate2 is installed), "
        "which `s2s translate` and `s2s serve` then start from in under a second.",
    ),
]


def ctranslate2_model(engine: Engine, model: Path | None, run_dir: Path, align: bool = False) -> Path | None:
    """The CTranslate2 model to translate with, or None for s2s's own engine."""
    from s2s_cli.inference.ct2 import KEPT, kept_model

    if model is not None and engine == Engine.S2S:
        raise typer.BadParameter("--model is a CTranslate2 model: drop --engine s2s, or drop --model.")
    if engine == Engine.S2S or (engine == Engine.AUTO and (align or find_spec("ctranslate2") is None)):
        return None
    if align:
        raise typer.BadParameter("--align needs s2s's own engine (--engine s2s).")
    kept = model or kept_model(RunDir(run_dir))
    if kept is None and engine == Engine.CTRANSLATE2:
        raise typer.BadParameter(
            f"no CTranslate2 model: give --model DIR, or convert the run's present weights into {run_dir / KEPT} "
            f"with `s2s export --format ctranslate2 -r {run_dir}`."
        )
    return kept


def keep_ctranslate2(run: RunDir) -> None:
    """Convert the run's present weights into its own CTranslate2 copy, where that can be done. A failure here
    leaves the training saved: it is a warning, and `s2s translate` falls back to s2s's engine."""
    from s2s_cli.inference.ct2 import keep

    start = time.monotonic()
    try:
        path = keep(run)
    except (S2SError, OSError) as err:
        console.warn(f"no CTranslate2 copy kept ({err}); `s2s translate` uses s2s's engine.")
        return
    if path is not None:
        console.info(f"kept a CTranslate2 copy in {path} ({time.monotonic() - start:.1f}s) for a fast `s2s translate`")
