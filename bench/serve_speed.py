"""HTTP serving speed of `s2s serve`: requests per second and p50/p99 latency at several numbers of concurrent
clients, each request one sentence, printed as JSON.

python bench/serve_speed.py --run-dir R --input test.src [--requests 400] [--concurrency 1,8,50]
    [--model CT2_DIR] [--batch-size 64] [--max-wait-ms 10] --json
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True, help="one source sentence per line")
    parser.add_argument("--requests", type=int, default=400, help="requests at each concurrency")
    parser.add_argument("--concurrency", default="1,8,50")
    parser.add_argument("--model", type=Path, help="serve this CTranslate2 model instead")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    sentences = args.input.read_text(encoding="utf-8").splitlines()
    port = _free_port()
    command = [sys.executable, "-m", "s2s_cli", "serve", "-r", str(args.run_dir), "--port", str(port)]
    command += ["--batch-size", str(args.batch_size), "--max-wait-ms", str(args.max_wait_ms), "--beam", str(args.beam)]
    command += ["--model", str(args.model)] if args.model else []
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port, server)
        results = [_measure(port, sentences, int(c), args.requests) for c in args.concurrency.split(",")]
    finally:
        server.terminate()
        server.wait(timeout=60)
    out = {
        "engine": "ctranslate2" if args.model else "s2s",
        "beam": args.beam,
        "batch_size": args.batch_size,
        "max_wait_ms": args.max_wait_ms,
        "results": results,
    }
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))


def _measure(port: int, sentences: list[str], concurrency: int, requests: int) -> dict:
    def one(i: int) -> float:
        body = json.dumps({"q": sentences[i % len(sentences)], "source": "auto"}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/translate", body, {"Content-Type": "application/json"}
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = sorted(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": requests,
        "requests_per_sec": round(requests / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("the server did not start")
            time.sleep(0.2)


if __name__ == "__main__":
    main()
