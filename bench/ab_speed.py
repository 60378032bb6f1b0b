"""Training speed of variants of one step, alternated in one process on the same batches (each round runs every
variant, in an order rotated from round to round), so that the machine's drift and the cost of coming first fall on
every variant alike; prints each variant's median target tokens/s as JSON.

python bench/ab_speed.py --data ../shared/data/multi30k --variants default no-inner-dropout
    [--rounds 6 --steps 8 --precision float32|bf16 --vocab 4000 --batch-tokens 4096] --json

Variants: default (the step as `s2s train` runs it), no-inner-dropout (--attention-dropout 0 --activation-dropout
0), no-attention-dropout, no-activation-dropout (one of the two), dense-embedding-grads (an embedding's gradient
summed per token before clipping and Adam), keras-dropout (Keras' own dropout layer, a float drawn per element,
in place of s2s's byte per element), where-mask (attention masked by a select on the scores, in place of an added
bias).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

from keras import layers, ops
from model_options import add_corpus_options, train_files

from s2s_cli.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from s2s_cli.data.batching import collate
from s2s_cli.data.prepare import prepare
from s2s_cli.models.base import NEG_INF, Dropout
from s2s_cli.models.transformer import MultiHeadAttention
from s2s_cli.rundir import RunDir
from s2s_cli.training.runner import build_trainer

VARIANTS = {  # ModelConfig and TrainConfig fields
    "default": {},
    "no-inner-dropout": {"attention_dropout": 0.0, "activation_dropout": 0.0},
    "no-attention-dropout": {"attention_dropout": 0.0},
    "no-activation-dropout": {"activation_dropout": 0.0},
    "dense-embedding-grads": {"dense_embedding_grads": True},
    "keras-dropout": {"keras_dropout": True},
    "where-mask": {"where_mask": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_options(parser)
    parser.add_argument("--variants", nargs="+", default=["default", "no-inner-dropout"], choices=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds; each variant runs once a round")
    parser.add_argument("--steps", type=int, default=8, help="updates per variant and round")
    parser.add_argument("--vocab", type=int, default=4000)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--precision", default="float32", choices=["float32", "bf16"])
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    src_file, tgt_file = train_files(args)

    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        prepare(src_file, tgt_file, run.path, DataConfig(vocab_size=args.vocab, valid_size=10, test_size=10))
        trainers = {name: _trainer(run, args, VARIANTS[name]) for name in args.variants}
        first = next(iter(trainers.values()))
        batches = first.batches(0)
        needed = (args.rounds + 1) * args.steps
        inputs = [collate(first.data.train, batches[i % len(batches)]) for i in range(needed)]
        rates: dict[str, list[float]] = {name: [] for name in trainers}
        for r in range(args.rounds + 1):  # round 0 traces the graphs and is not timed
            names = list(trainers)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                trainer = trainers[name]
                started, tokens = time.perf_counter(), 0
                for (src, tgt_in), tgt_out in inputs[r * args.steps : (r + 1) * args.steps]:
                    _, n, _ = trainer.train_step(src, tgt_in, tgt_out)
                    tokens += int(n)
                if r:
                    rates[name].append(tokens / (time.perf_counter() - started))
    result = {
        "tgt_tokens_per_sec": {name: round(statistics.median(r), 1) for name, r in rates.items()},
        "per_round": {name: [round(x) for x in r] for name, r in rates.items()},
        "rounds": args.rounds,
        "steps": args.steps,
        "precision": args.precision,
        "vocab": args.vocab,
        "batch_tokens": args.batch_tokens,
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


def _trainer(run: RunDir, args: argparse.Namespace, variant: dict):
    variant = dict(variant)
    keras_dropout = variant.pop("keras_dropout", False)
    where_mask = variant.pop("where_mask", False)
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model = {k: v for k, v in variant.items() if k in model_fields}
    train = {k: v for k, v in variant.items() if k not in model_fields}
    config = RunConfig(
        data=run.load_config().data,
        model=ModelConfig(**model),
        train=TrainConfig(batch_tokens=args.batch_tokens, precision=args.precision, warmup=400, **train),
    )
    trainer = build_trainer(run, config)
    if keras_dropout or where_mask:  # before the step is traced, which happens in round 0
        for layer in trainer.model._flatten_layers(include_self=False):
            if keras_dropout and isinstance(layer, Dropout):
                layer.call = layers.Dropout.call.__get__(layer)
            if where_mask and isinstance(layer, MultiHeadAttention):
                layer.probs = _where_probs.__get__(layer)
    return trainer


def _where_probs(self, query, keys, mask):
    return ops.softmax(ops.where(ops.expand_dims(mask, 1), self.scores(query, keys), NEG_INF), axis=-1)


if __name__ == "__main__":
    main()
