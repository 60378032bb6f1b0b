"""`s2s train`: the config a training runs with, its data, and the run from the lock to the final manifest."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

import keras
import tensorflow as tf

from s2s_cli.config import ModelSize, RunConfig, Schedule, TokenizerKind
from s2s_cli.data.batching import make_batches, read_split
from s2s_cli.data.shards import ShardPairs
from s2s_cli.data.tokenizers import load_tokenizers
from s2s_cli.errors import TrainingError
from s2s_cli.files import sha256
from s2s_cli.manifest import ManifestDamaged
from s2s_cli.models import load_weights
from s2s_cli.presets import TRAIN_BY_SIZE, sized_model
from s2s_cli.rundir import DATA, MODEL_FILES, TOKENIZERS, RunDir
from s2s_cli.training import signals
from s2s_cli.training.checkpoints import has_checkpoints, latest_checkpoint
from s2s_cli.training.distribute import Distribution, make_distribution
from s2s_cli.training.precision import resolve_precision
from s2s_cli.training.schedules import default_warmup, plans_by_clock
from s2s_cli.training.trainer import SilentProgress, Trainer, TrainingData, TrainProgress, TrainResult


def plan_config(run: RunDir, model: dict[str, Any], train: dict[str, Any], resume: bool, force: bool) -> RunConfig:
    """The config a `train` call runs with: saved + overrides when resuming; when fresh, the model preset
    (`size`, auto: sized from the training pairs) or --init-from's model, and the defaults, + overrides."""
    saved = run.load_config()
    size = model.get("size", ModelSize.AUTO)
    # auto is resolved once, when a fresh model is sized: it never changes a resumed or --init-from model
    model = {k: v for k, v in model.items() if (k, v) != ("size", ModelSize.AUTO)}
    if resume:
        latest_checkpoint(run)  # there is one to resume from
        if {"max_steps", "epochs"} & set(train) and "decay_steps" not in train:
            train = {**train, "decay_steps": None}  # a longer (or shorter) plan: cosine decays over the new one
        config = saved.with_overrides(model, train)
        if config.model != saved.model:
            changed = sorted(k for k in vars(config.model) if getattr(config.model, k) != getattr(saved.model, k))
            raise TrainingError(
                f"cannot resume with a different model ({', '.join(changed)} changed): drop those options, "
                "or start over with `s2s train --force`."
            )
        return config
    if has_checkpoints(run) and not force:
        raise TrainingError(
            f"{run.path} already has a trained model: `s2s train --resume` continues it, "
            "`s2s train --force` starts over and replaces it."
        )
    if run.has_weights() and not force:
        raise TrainingError(
            f"{run.path} already has a trained model (and no checkpoint to continue from): "
            "`s2s train --force` starts over and replaces it."
        )
    init_from = train.get("init_from")
    if init_from:
        start = RunDir(init_from).load_config().model  # the model it starts from
    else:
        start = sized_model(size, training_pairs(run) if size == ModelSize.AUTO else 0)
        train = {**TRAIN_BY_SIZE.get(start.size, {}), **train}
    config = RunConfig(saved.data, start).with_overrides(model, train)
    if init_from:
        _check_init_from(run, config, RunDir(init_from))
    return config


def training_pairs(run: RunDir) -> int:
    """The number of pairs in the run dir's encoded training split (what `--size auto` sizes the model from)."""
    return len(ShardPairs(run.shards_dir, "train"))


def _check_init_from(run: RunDir, config: RunConfig, source: RunDir) -> None:
    """A model can start from `source`'s weights only with the same shape and the same tokenizers."""
    source.require_weights()
    source.verify_manifest(only=MODEL_FILES)
    theirs = source.load_config().model
    changed = sorted(k for k in vars(config.model) if getattr(config.model, k) != getattr(theirs, k))
    if changed:
        raise TrainingError(
            f"--init-from {source.path} has another model shape ({', '.join(changed)} differ): drop those options."
        )
    ours, its = (sorted((p.name, sha256(p)) for p in r.tokenizer_dir().iterdir() if p.is_file()) for r in (run, source))
    if ours != its:
        raise TrainingError(
            f"{run.path} has other tokenizers than {source.path}: prepare it with "
            f"`s2s prepare CORPUS --tokenizers-from {source.path}`."
        )


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and Keras, and make TensorFlow's ops deterministic: the same seed, the same weights."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def load_training_data(run: RunDir, config: RunConfig) -> TrainingData:
    """The training and validation splits as `prepare` encoded them (memory-mapped from data/shards), and the
    validation text."""
    src_tok, tgt_tok = load_tokenizers(run, config)
    if config.train.subword_sampling and config.data.tokenizer != TokenizerKind.SPM:
        raise TrainingError(
            f"--subword-sampling needs SentencePiece tokenizers, and {run.path} was prepared with "
            f"--tokenizer {config.data.tokenizer.value}: re-run `s2s prepare --tokenizer spm`, or drop the option."
        )
    splits = {split: ShardPairs(run.shards_dir, split) for split in ("train", "valid")}
    for split, pairs in splits.items():
        if not len(pairs):
            raise TrainingError(
                f"{run.split_path(split, 'src')} is empty: re-run `s2s prepare` with a larger corpus "
                "(or --valid-size > 0 / --valid FILE for the validation set)."
            )
    return TrainingData(splits["train"], splits["valid"], read_split(run, "valid"), src_tok, tgt_tok)


def with_schedule(config: RunConfig, steps_per_epoch: int) -> RunConfig:
    """The config with an unset --warmup resolved from the number of updates per epoch, and a cosine schedule's
    unset decay steps from the planned updates (--max-steps, else --epochs), unless the trainer plans them from
    the clock (--max-minutes alone)."""
    tc = config.train
    updates = math.ceil(steps_per_epoch / tc.accum_steps)
    if tc.warmup is None:
        tc = dataclasses.replace(tc, warmup=default_warmup(updates))
    if tc.schedule == Schedule.COSINE and tc.decay_steps is None and not plans_by_clock(tc):
        tc = dataclasses.replace(tc, decay_steps=tc.max_steps or tc.epochs * updates)
    return dataclasses.replace(config, train=tc)


def build_trainer(
    run: RunDir, config: RunConfig, progress: TrainProgress | None = None, distribution: Distribution | None = None
) -> Trainer:
    """A Trainer for `config` on the run dir's data, seeded; its config has the warm-up resolved."""
    distribution = distribution or make_distribution(config.train.strategy)
    set_seed(config.train.seed)
    data = load_training_data(run, config)
    tc = config.train
    steps_per_epoch = len(make_batches(data.train, tc.batch_tokens, tc.batch_size, seed=tc.seed, epoch=0))
    config = with_schedule(config, steps_per_epoch)
    return Trainer(run, config, data, progress or SilentProgress(), distribution)


def train(run: RunDir, config: RunConfig, resume: bool = False, progress: TrainProgress | None = None) -> TrainResult:
    """Train the model described by `config` on the run dir's splits; resume from its last checkpoint if asked.

    A fresh training replaces an earlier one only once it has saved its first checkpoint: until then the earlier
    one's files are kept aside, and put back if it fails. A signal before the first step stops at once.
    With several workers (--strategy multi-worker) every worker runs this; only the chief writes the run dir.
    """
    with signals.stop_at_once():
        distribution = make_distribution(config.train.strategy)  # before any other TensorFlow op
        config = resolve_precision(config)
        chief = distribution.is_chief
        with run.training_lock() if chief else contextlib.nullcontext():
            _check_manifest(run, chief, fresh=not resume)
            trainer = build_trainer(run, config, progress, distribution)
            if resume:
                trainer.resume()
            elif config.train.init_from:
                load_weights(trainer.model, RunDir(config.train.init_from).weights_path)
            aside = run.previous_training_aside() if chief and not resume else contextlib.nullcontext()
            with aside as discard:
                trainer.recorder.on_checkpoint = discard
                if chief:
                    run.save_config(trainer.config)  # with auto precision and warm-up resolved
                    run.write_manifest()
                result = trainer.fit()
            if chief:
                run.write_manifest()
            return result


def _check_manifest(run: RunDir, chief: bool, fresh: bool) -> None:
    """Never train on tokenizers or splits that changed since prepare. Other workers check only what prepare wrote,
    which the chief never rewrites (on a shared file system it may be rewriting the rest). A fresh training on the
    chief rebuilds a damaged manifest from the files there: the tokenizers and splits are checked as they load."""
    try:
        run.verify_manifest(only=None if chief else (DATA, TOKENIZERS))
    except ManifestDamaged:
        if not (chief and fresh):
            raise
        run.write_manifest()
