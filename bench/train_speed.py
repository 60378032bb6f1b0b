"""Training throughput: target tokens per second of the s2s trainer on a parallel corpus, printed as JSON.

python bench/train_speed.py --data ../shared/data/multi30k --seconds 60 [--emb 256 --hidden 256 --vocab 8000]
    [--precision float32|bf16] [--batch-tokens 4096] --json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from model_options import add_corpus_options, add_model_options, model_config, model_settings, train_files

from s2s_cli.config import DataConfig, RunConfig, TrainConfig
from s2s_cli.data.batching import dataset
from s2s_cli.data.prepare import prepare
from s2s_cli.rundir import RunDir
from s2s_cli.training.runner import build_trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_options(parser)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup-steps", type=int, default=5)
    add_model_options(parser)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--precision", default="float32", choices=["float32", "bf16"])
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    src_file, tgt_file = train_files(args)

    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        data = DataConfig(vocab_size=args.vocab, valid_size=10, test_size=10)
        prepare(src_file, tgt_file, run.path, data)
        config = RunConfig(
            data=run.load_config().data,
            model=model_config(args),
            train=TrainConfig(batch_tokens=args.batch_tokens, precision=args.precision),
        )
        trainer = build_trainer(run, config)
        steps, tokens, started = 0, 0, None
        for (src, tgt_in), tgt_out in dataset(trainer.data.train, trainer.batches(0)).repeat():
            _, n, _ = trainer.train_step(src, tgt_in, tgt_out)
            steps += 1
            if steps == args.warmup_steps:
                float(n)  # wait for the warm-up steps to finish before starting the clock
                started = time.perf_counter()
            elif steps > args.warmup_steps:
                tokens += int(n)
                if time.perf_counter() - started >= args.seconds:
                    break
        elapsed = time.perf_counter() - started
        result = {
            "tgt_tokens_per_sec": round(tokens / elapsed, 1),
            "steps_per_sec": round((steps - args.warmup_steps) / elapsed, 2),
            "params": trainer.model.count_params(),
            **model_settings(args),
            "src_vocab": trainer.data.src_tok.vocab_size,
            "tgt_vocab": trainer.data.tgt_tok.vocab_size,
            "batch_tokens": args.batch_tokens,
            "precision": args.precision,
            "seconds": round(elapsed, 1),
        }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
