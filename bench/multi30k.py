"""Multi30k English->German: prepare (SentencePiece), train for at most M minutes (or N steps), score the whole
validation set and test_2016_flickr with the test beam (5); with --average K also the average of the last K
checkpoints.

python bench/multi30k.py --data ../shared/data/multi30k [--minutes M | --max-steps N] [--seed S] [--average K]
    [--arch rnn ...] [--run-dir R] --json

Without shape or training flags it trains what `s2s train` trains by default at this corpus size (the medium
preset: a cosine decay, which by minutes `train` plans to end with the time, and by steps over the steps).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from model_options import add_model_options, model_config

from s2s_cli.config import DataConfig, ModelSize, Precision, RunConfig, Schedule, TrainConfig
from s2s_cli.data.corpus import read_lines
from s2s_cli.data.prepare import prepare
from s2s_cli.evaluation import score
from s2s_cli.inference.translator import Translator
from s2s_cli.presets import TRAIN_BY_SIZE
from s2s_cli.rundir import RunDir, Validation
from s2s_cli.training.averaging import average
from s2s_cli.training.runner import train
from s2s_cli.training.trainer import SilentProgress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with train/val/test_2016_flickr .en/.de")
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget, validation included")
    parser.add_argument("--run-dir", type=Path, help="keep the run here (default: a temporary dir)")
    add_model_options(parser)  # defaults: s2s train's
    parser.add_argument("--vocab", type=int, default=DataConfig().vocab_size, help="per side, or joint with --joint")
    parser.add_argument("--joint", action=argparse.BooleanOptionalAction, default=DataConfig().joint)
    defaults = TrainConfig(**TRAIN_BY_SIZE[ModelSize.MEDIUM])  # what `s2s train` picks for a corpus this size
    parser.add_argument("--batch-tokens", type=int, default=defaults.batch_tokens)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--schedule", default=defaults.schedule.value, choices=[s.value for s in Schedule])
    parser.add_argument("--decay-steps", type=int, default=defaults.decay_steps, help="cosine (default: --max-steps)")
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="AdamW's; 0: off")
    parser.add_argument("--subword-sampling", type=float, default=defaults.subword_sampling, help="alpha; 0: off")
    parser.add_argument(
        "--dense-embedding-grads",
        action=argparse.BooleanOptionalAction,
        default=defaults.dense_embedding_grads,
        help="sum an embedding's gradient rows per token before clipping and Adam",
    )
    parser.add_argument("--accum-steps", type=int, default=defaults.accum_steps)
    parser.add_argument("--precision", default=defaults.precision.value, choices=[p.value for p in Precision])
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after N steps instead (0: by --minutes)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--average", type=int, default=0, help="also score the average of the last K checkpoints")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    files = {name: args.data / name for name in ("train.en", "train.de", "val.en", "val.de")}
    files |= {f"test.{lang}": args.data / f"test_2016_flickr.{lang}" for lang in ("en", "de")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: --data must hold the Multi30k files")

    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(args.run_dir or Path(tmp) / "run")
        data = DataConfig(src_lang="en", tgt_lang="de", vocab_size=args.vocab, joint=args.joint)
        valid, test = (files["val.en"], files["val.de"]), (files["test.en"], files["test.de"])
        prepare(files["train.en"], files["train.de"], run.path, data, force=True, valid_files=valid, test_files=test)
        config = RunConfig(
            data=run.load_config().data,
            model=model_config(args),
            train=TrainConfig(
                epochs=1000,
                max_minutes=0 if args.max_steps else args.minutes,
                max_steps=args.max_steps,
                keep=max(defaults.keep, args.average),
                seed=args.seed,
                batch_tokens=args.batch_tokens,
                lr=args.lr,
                warmup=args.warmup,
                schedule=args.schedule,
                decay_steps=args.decay_steps,
                label_smoothing=args.label_smoothing,
                weight_decay=args.weight_decay,
                subword_sampling=args.subword_sampling,
                dense_embedding_grads=args.dense_embedding_grads,
                accum_steps=args.accum_steps,
                precision=args.precision,
                patience=0 if args.max_steps or args.schedule == "cosine" else 5,  # a planned decay runs to its end
            ),
        )
        started = time.perf_counter()
        result = train(run, config, progress=_LogProgress() if not args.json else None)
        train_minutes = (time.perf_counter() - started) / 60
        resolved = run.load_config().train  # what auto precision and warm-up chose
        scores, decode_seconds = _scores(run, files, args.beam)
        averaged = None
        if args.average:
            result_avg = average(run, last=args.average)
            averaged = {"steps": result_avg.steps, **_scores(run, files, args.beam)[0]}
    out = {
        **scores,
        "averaged": averaged,
        "train_minutes": round(train_minutes, 1),
        "steps": result.steps,
        "epochs": result.epochs,
        "best_step": result.best_step,
        "training_best_valid_bleu": result.best_valid_bleu,  # greedy, as validation during training decodes
        "training_last_valid_bleu": result.valid_bleu,
        "tgt_tokens_per_sec": result.tgt_tokens_per_sec,
        "test_decode_seconds": round(decode_seconds, 1),
        "beam": args.beam,
        "settings": {
            **{k: v for k, v in vars(args).items() if k not in ("data", "run_dir", "json")},
            "precision": resolved.precision,
            "warmup": resolved.warmup,
        },
    }
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))


def _scores(run: RunDir, files: dict[str, Path], beam: int) -> tuple[dict, float]:
    """Test and whole-validation-set scores of the run's model with `beam`, and the seconds the test set took."""
    translator = Translator.from_run_dir(run)
    out, seconds = {}, 0.0
    for name, split in (("valid", "val"), ("test", "test")):
        sources, refs = read_lines(files[f"{split}.en"]), read_lines(files[f"{split}.de"])
        started = time.perf_counter()
        hyps = [t[0].text for t in translator.translate(sources, beam=beam)]
        seconds = time.perf_counter() - started
        scores = score(hyps, refs, "de")
        prefix = "" if name == "test" else "valid_"
        out |= {f"{prefix}bleu": scores.bleu, f"{prefix}chrf": scores.chrf, f"{prefix}ter": scores.ter}
    return out | {"signature": scores.signature["bleu"]}, seconds


class _LogProgress(SilentProgress):
    def on_start(self, steps_per_epoch: int, epochs: int, step: int, epoch: int) -> None:
        print(f"{steps_per_epoch} steps per epoch", file=sys.stderr)

    def on_step(self, step: int, epoch: int, loss: float, tokens_per_sec: float, lr: float) -> None:
        if step % 100 == 0:
            print(f"step {step} epoch {epoch + 1} loss {loss:.3f} {tokens_per_sec:.0f} tok/s", file=sys.stderr)

    def on_validation(self, record: Validation) -> None:
        print(record.to_json(), file=sys.stderr, flush=True)

    def on_plan(self, total_steps: int) -> None:
        print(f"cosine decay planned to end at step {total_steps}", file=sys.stderr)


if __name__ == "__main__":
    main()
