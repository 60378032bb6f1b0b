"""`s2s serve`: LibreTranslate's API over HTTP, concurrent requests batched together, answers as `s2s translate`'s."""

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import SAMPLE

pytest.importorskip("fastapi", reason="s2s serve needs FastAPI")
from fastapi.testclient import TestClient  # noqa: E402

from s2s_cli.inference.server import ServerConfig, create_app  # noqa: E402
from s2s_cli.inference.translator import Translation, Translator  # noqa: E402

TEXTS = [line.split("\t")[0] for line in SAMPLE.read_text(encoding="utf-8").splitlines()[1000:1100]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body: dict, timeout: float = 120) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/translate", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def server(spm_transformer_run):
    port = free_port()
    command = [sys.executable, "-m", "s2s_cli", "serve", "-r", str(spm_transformer_run.path), "--port", str(port)]
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
            time.sleep(0.2)
    yield port, process
    if process.poll() is None:
        process.kill()


def test_50_concurrent_clients_get_what_translate_gives(server, spm_transformer_run):
    port, _ = server
    expected = {t: r[0].text for t, r in zip(TEXTS, Translator.from_run_dir(spm_transformer_run).translate(TEXTS))}
    assert len(set(expected.values())) > 10  # the model tells sentences apart: a mix-up would show

    def client(number: int) -> list[tuple[str, str]]:
        answers = []
        for i in range(20):
            text = TEXTS[(number * 7 + i) % len(TEXTS)]
            status, body = post(port, {"q": text, "source": "auto", "target": "zh"})
            assert status == 200, body
            answers.append((text, body["translatedText"]))
        return answers

    with ThreadPoolExecutor(50) as pool:
        answers = [a for answers in pool.map(client, range(50)) for a in answers]
    assert len(answers) == 1000 and all(got == expected[text] for text, got in answers)
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read())
    assert health["batches"] < 1000  # requests shared decoder batches


def test_lists_alternatives_languages_and_errors(server):
    port, _ = server
    status, body = post(port, {"q": TEXTS[:3], "source": "auto", "target": "zh", "alternatives": 2})
    assert status == 200 and len(body["translatedText"]) == 3 and all(len(a) <= 2 for a in body["alternatives"])
    assert post(port, {"q": "Hello.", "target": "de"})[0] == 400
    assert post(port, {"q": 5})[0] == 400
    assert post(port, {"q": "x" * 30_000})[0] == 413
    languages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/languages").read())
    assert languages[0]["targets"] == ["zh"]
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/docs").status == 200
    assert "/translate" in json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json").read())["paths"]


def test_sigterm_answers_the_requests_in_flight_then_exits(server):
    port, process = server
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post, port, {"q": TEXTS, "source": "auto", "target": "zh"})
        time.sleep(0.3)  # the request is in flight
        process.send_signal(signal.SIGTERM)
        status, body = pending.result(timeout=120)
    assert status == 200 and len(body["translatedText"]) == len(TEXTS)
    assert process.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done


class Stuck:
    """A translator whose batcher is never started: requests stay queued."""

    def translate(self, texts, **options):
        return [[Translation("", 0.0)] for _ in texts]


def test_a_full_queue_answers_503_at_once():
    app = create_app(Stuck(), ServerConfig("en", "zh", queue_size=2))
    client = TestClient(app)  # not entered: the batcher does not run, so nothing leaves the queue
    response = client.post("/translate", json={"q": ["a", "b", "c"], "source": "en", "target": "zh"})
    assert response.status_code == 503 and "busy" in response.json()["error"]


def test_the_batcher_decodes_waiting_texts_together():
    calls = []

    class Recording(Stuck):
        def translate(self, texts, **options):
            calls.append(len(texts))
            return super().translate(texts)

    from s2s_cli.inference.server import Batcher

    batcher = Batcher(Recording(), ServerConfig("en", "zh", max_batch=8, max_wait=0.5))
    futures = batcher.submit([f"t{i}" for i in range(20)], 1)
    batcher.start()
    assert all(f.result(timeout=10)[0].text == "" for f in futures)
    batcher.stop()
    assert calls == [8, 8, 4]
    with pytest.raises(queue.Full):
        Batcher(Recording(), ServerConfig("en", "zh", queue_size=3)).submit(["a"] * 4, 1)
