"""Decoding speed: sentences and target tokens per second, and peak memory, of s2s's search or of CTranslate2 on
the same weights, printed as JSON.

python bench/decode_speed.py --run-dir runs/default --input test.src [--beam 1|5] [--batch-size 256]
    [--workers N] [--repeat 3] [--engine s2s|ctranslate2 --model CT2_DIR] --json

With --engine ctranslate2 and no --model, the run dir is converted first (--quantization, default float32).
Run each engine in its own process: peak memory is the process's.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from s2s_cli.data.corpus import read_lines
from s2s_cli.inference.translator import Translator, decoding_workers
from s2s_cli.rundir import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True, help="one source sentence per line")
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None, help="batches decoded at once (default: s2s translate's)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the median is reported (noisy machines)")
    parser.add_argument("--engine", choices=["s2s", "ctranslate2"], default="s2s")
    parser.add_argument("--model", type=Path, help="a CTranslate2 model of the run dir (default: convert it)")
    parser.add_argument("--quantization", default="float32", help="CTranslate2 weights when converting")
    parser.add_argument("--precision", choices=["float32", "bf16"], help="s2s: decode in this (default: the run's)")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    lines = read_lines(args.input)
    workers = decoding_workers(args.workers)  # before TensorFlow starts: it sets the thread pools
    with tempfile.TemporaryDirectory() as tmp:
        if args.engine == "ctranslate2":
            from s2s_cli.inference.ct2 import CT2Translator, convert

            model = args.model or Path(tmp) / "ct2"
            if args.model is None:
                convert(RunDir(args.run_dir), model, args.quantization)
            translator = CT2Translator(model, workers=workers)
        else:
            translator = Translator.from_run_dir(args.run_dir, workers=workers, precision=args.precision)
        translator.translate(lines[: args.batch_size], beam=args.beam, batch_size=args.batch_size)  # compile
        times = []
        for _ in range(max(args.repeat, 1)):
            started = time.perf_counter()
            outputs = translator.translate(lines, beam=args.beam, batch_size=args.batch_size)
            times.append(time.perf_counter() - started)
    elapsed = statistics.median(times)
    tokens = sum(len(ids) + 1 for ids in translator.tgt_tok.encode([o[0].text for o in outputs]))
    result = {
        "engine": args.engine,
        "quantization": args.quantization if args.engine == "ctranslate2" else None,
        "precision": args.precision if args.engine == "s2s" else None,
        "sentences_per_sec": round(len(lines) / elapsed, 1),
        "tokens_per_sec": round(tokens / elapsed, 1),
        "beam": args.beam,
        "batch_size": args.batch_size,
        "workers": workers,
        "sentences": len(lines),
        "seconds": round(elapsed, 2),
        "seconds_each": [round(t, 2) for t in times],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
