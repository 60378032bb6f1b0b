"""`s2s serve`: a translation server for the run dir's model (LibreTranslate's HTTP API)."""

from __future__ import annotations

from typing import Annotated

import typer

from s2s_cli import console
from s2s_cli.cli.app import DEFAULT_RUN_DIR, BeamOpt, LengthPenaltyOpt, RunDirOpt, WorkersOpt, app, handles_errors
from s2s_cli.cli.engine import Engine, EngineOpt, ModelOpt, ctranslate2_model
from s2s_cli.config import LENGTH_PENALTY


@app.command()
@handles_errors
def serve(
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 5000,
    beam: BeamOpt = 5,
    length_penalty: LengthPenaltyOpt = LENGTH_PENALTY,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts decoded together, from any requests.")] = 64,
    max_wait_ms: Annotated[
        float, typer.Option(min=0.0, help="How long a batch waits for more texts once it has one.")
    ] = 10.0,
    queue_size: Annotated[int, typer.Option(min=1, help="Texts that may wait; beyond them, 503.")] = 1024,
    max_chars: Annotated[int, typer.Option(min=1, help="Characters of text a request may send; beyond, 413.")] = 20_000,
    workers: WorkersOpt = None,
    engine: EngineOpt = Engine.AUTO,
    model: ModelOpt = None,
) -> None:
    """Serve translations over HTTP: POST /translate with LibreTranslate's request and response, GET /languages,
    /models, /health; OpenAPI docs at /docs. Ctrl-C or SIGTERM finish the requests in flight, then stop."""
    try:
        import uvicorn

        from s2s_cli.inference.server import ServerConfig, create_app
    except ImportError:
        raise typer.BadParameter("s2s serve needs FastAPI and uvicorn: pip install 's2s-cli[serve]'.") from None
    from s2s_cli.inference.translator import Translator, decoding_workers
    from s2s_cli.rundir import RunDir

    count = decoding_workers(workers)
    model = ctranslate2_model(engine, model, run_dir)
    if model is not None:
        from s2s_cli.inference.ct2 import CT2Translator

        translator = CT2Translator(model, workers=count)
        langs = (translator.metadata["src_lang"], translator.metadata["tgt_lang"])
    else:
        translator = Translator.from_run_dir(RunDir(run_dir), workers=count)
        langs = (translator.config.data.src_lang, translator.config.data.tgt_lang)
    translator.translate(["warm up"], beam=beam)  # trace the search before the first request
    config = ServerConfig(
        *langs,
        beam=beam,
        alpha=length_penalty,
        max_batch=batch_size,
        max_wait=max_wait_ms / 1000,
        queue_size=queue_size,
        max_chars=max_chars,
        model=str(model or run_dir),
    )
    console.info(f"serving {langs[0] or '?'} -> {langs[1] or '?'} on http://{host}:{port} (docs: /docs)")
    uvicorn.run(create_app(translator, config), host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)
