"""`s2s serve`: an HTTP JSON translation server (FastAPI on uvicorn) speaking LibreTranslate's API.

Requests are batched together: a worker thread takes whatever texts are waiting (up to `max_batch`, waiting at
most `max_wait` seconds for more once it has one) and decodes them as one batch, so concurrent clients share
decoder batches. The queue is bounded: when it is full, a request gets 503 at once instead of waiting without end.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from s2s_cli import __version__
from s2s_cli.config import LENGTH_PENALTY
from s2s_cli.inference.translator import Translation

LANGUAGE_NAMES = {"en": "English", "zh": "Chinese", "de": "German", "fr": "French", "ja": "Japanese", "ko": "Korean"}


class Translates(Protocol):
    def translate(self, texts: list[str], **options: Any) -> list[list[Translation]]: ...


@dataclass(frozen=True)
class ServerConfig:
    src_lang: str | None
    tgt_lang: str | None
    beam: int = 5
    alpha: float = LENGTH_PENALTY
    max_batch: int = 64  # texts decoded together
    max_wait: float = 0.01  # seconds a batch waits for more texts once it has one
    queue_size: int = 1024  # texts waiting; beyond it, 503
    max_texts: int = 128  # per request; beyond it, 413
    max_chars: int = 20_000  # per request; beyond it, 413
    model: str = "s2s"


class Batcher:
    """Texts from many requests, decoded in shared batches, one batch at a time on each of `threads` threads
    (the translator's workers: on a CPU, one per core)."""

    def __init__(self, translator: Translates, config: ServerConfig, threads: int = 1) -> None:
        self.translator, self.config = translator, config
        self.waiting: queue.Queue[tuple[str, int, Future]] = queue.Queue(maxsize=config.queue_size)
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, daemon=True, name=f"s2s-batcher-{i}") for i in range(max(threads, 1))
        ]
        self.batches = 0

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def submit(self, texts: list[str], n_best: int) -> list[Future]:
        """Queue the texts (all of them, or none: queue.Full when there is no room)."""
        if self.waiting.maxsize - self.waiting.qsize() < len(texts):
            raise queue.Full
        futures = []
        for text in texts:
            future: Future = Future()
            self.waiting.put_nowait((text, n_best, future))
            futures.append(future)
        return futures

    def _run(self) -> None:
        while not (self.stopping.is_set() and self.waiting.empty()):
            try:
                batch = [self.waiting.get(timeout=0.1)]
            except queue.Empty:
                continue
            deadline = time.monotonic() + self.config.max_wait
            while len(batch) < self.config.max_batch:
                try:
                    batch.append(self.waiting.get(timeout=max(deadline - time.monotonic(), 0)))
                except queue.Empty:
                    break
            self._decode(batch)

    def _decode(self, batch: list[tuple[str, int, Future]]) -> None:
        n_best = max(n for _, n, _ in batch)
        try:
            results = self.translator.translate(
                [text for text, _, _ in batch],
                beam=max(self.config.beam, n_best),
                n_best=n_best,
                alpha=self.config.alpha,
            )
        except Exception as err:  # noqa: BLE001 - each request gets the error
            for _, _, future in batch:
                future.set_exception(err)
            return
        self.batches += 1
        for (_, n, future), translations in zip(batch, results):
            future.set_result(translations[:n])


def create_app(translator: Translates, config: ServerConfig):
    """The FastAPI app: POST /translate (LibreTranslate's request and response), GET /languages, /models, /health."""
    batcher = Batcher(translator, config, getattr(translator, "workers", 1))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        batcher.stop()  # uvicorn has answered every request in flight by now

    app = FastAPI(
        title="s2s translation server",
        version=__version__,
        description="LibreTranslate-compatible translation API of an s2s model.",
        lifespan=lifespan,
    )

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.post("/translate", summary="Translate text (LibreTranslate's API)")
    async def translate(request: Request):
        length = int(request.headers.get("content-length") or 0)
        if length > 4 * config.max_chars + 4096:
            return error(413, f"request too large: at most {config.max_chars} characters of text")
        body = await _body(request)
        if body is None:
            return error(400, "send JSON (or a form) with 'q', 'source' and 'target'")
        q, source, target = body.get("q"), body.get("source", "auto"), body.get("target")
        texts = [q] if isinstance(q, str) else q
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return error(400, "'q' must be a string or a list of strings")
        known_source = source in ("auto", config.src_lang) or config.src_lang is None
        if not known_source or target not in (None, config.tgt_lang):
            return error(400, f"this server translates {config.src_lang} to {config.tgt_lang}")
        if body.get("format", "text") not in ("text", "html"):
            return error(400, "'format' must be text or html")
        if len(texts) > config.max_texts or sum(map(len, texts)) > config.max_chars:
            return error(413, f"at most {config.max_texts} texts and {config.max_chars} characters a request")
        try:
            alternatives = max(0, int(body.get("alternatives", 0)))
        except (TypeError, ValueError):
            return error(400, "'alternatives' must be a whole number")
        try:
            futures = batcher.submit(texts, 1 + alternatives)
        except queue.Full:
            return error(503, "the server is busy: try again shortly")
        try:
            results = [await asyncio.wrap_future(f) for f in futures]
        except Exception as err:  # noqa: BLE001
            return error(500, f"translation failed: {err}")
        out: dict[str, Any] = {"translatedText": [r[0].text for r in results]}
        if alternatives:
            out["alternatives"] = [[t.text for t in r[1:]] for r in results]
        if source == "auto":
            out["detectedLanguage"] = [{"confidence": 100.0, "language": config.src_lang}] * len(texts)
        if isinstance(q, str):
            out = {key: value[0] for key, value in out.items()}
        return out

    @app.get("/languages", summary="The language pairs served (LibreTranslate's API)")
    async def languages():
        return [
            {
                "code": config.src_lang,
                "name": LANGUAGE_NAMES.get(config.src_lang or "", config.src_lang),
                "targets": [config.tgt_lang],
            }
        ]

    @app.get("/models", summary="The model served")
    async def models():
        return [{"name": config.model, "source": config.src_lang, "target": config.tgt_lang, "beam": config.beam}]

    @app.get("/health", summary="Whether the server answers, and its queue")
    async def health():
        return {"status": "ok", "queued": batcher.waiting.qsize(), "batches": batcher.batches}

    return app


async def _body(request: Request) -> dict | None:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None
    form = await request.form()
    return {
        key: form.getlist(key) if key == "q" and len(form.getlist(key)) > 1 else value for key, value in form.items()
    }
