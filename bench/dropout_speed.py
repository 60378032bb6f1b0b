"""Dropout alone, forward and backward: Keras' layer (a float drawn per element) against s2s's (a byte), on the
shapes a medium Transformer step drops; prints milliseconds per call (best of the rounds) as JSON.

python bench/dropout_speed.py [--precision float32|bf16 --rate 0.2 --rounds 5 --calls 20 --threads 1] --json
"""

from __future__ import annotations

import argparse
import json
import time

import keras
import tensorflow as tf

from s2s_cli.models.base import Dropout

SHAPES = {"feed-forward hidden": (4000, 1024), "sublayer output": (4000, 256), "attention": (260, 4, 16, 17)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="float32", choices=["float32", "bf16"])
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    dtype = "bfloat16" if args.precision == "bf16" else "float32"
    layers = {"keras": keras.layers.Dropout(args.rate, seed=1), "s2s": Dropout(args.rate, seed=1)}
    result: dict = {"precision": args.precision, "rate": args.rate, "threads": args.threads, "ms": {}}
    for name, shape in SHAPES.items():
        x = tf.cast(tf.random.normal(shape), dtype)
        steps = {kind: _step(layer) for kind, layer in layers.items()}
        best = {kind: float("inf") for kind in steps}
        for step in steps.values():
            step(x)  # traced
        for _ in range(args.rounds):
            for kind, step in steps.items():
                started = time.perf_counter()
                for _ in range(args.calls):
                    out = step(x)
                out.numpy()
                best[kind] = min(best[kind], (time.perf_counter() - started) / args.calls * 1000)
        result["ms"][f"{name} {shape}"] = {kind: round(ms, 2) for kind, ms in best.items()}
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


def _step(layer):
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, "float32"))
        return tape.gradient(loss, x)

    return step


if __name__ == "__main__":
    main()
