"""train(run_dir, config) -> TrainResult: the training loop, validation, best weights, checkpoints, resume."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from s2s_cli import checkpoints, evaluation
from s2s_cli.config import RunConfig
from s2s_cli.errors import TrainingError
from s2s_cli.model import build_model, masked_loss
from s2s_cli.pipeline import EncodedPairs, dataset, make_batches
from s2s_cli.rundir import RunDir, atomic_path, write_text_atomic
from s2s_cli.translation import Translator, load_tokenizers

_SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class TrainingInterrupted(TrainingError):
    """Training stopped by a signal after saving a checkpoint; `exit_code` is 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class TrainResult:
    steps: int
    epochs: int
    train_loss: float
    valid_loss: float
    valid_bleu: float
    valid_chrf: float
    tgt_tokens_per_sec: float
    seconds: float
    best_step: int
    stopped: str  # "epochs", "max_steps", "max_minutes" or "patience"

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class TrainProgress(Protocol):
    """How the trainer reports to a front end (the CLI draws a progress bar from these)."""

    def on_start(self, steps_per_epoch: int, epochs: int, step: int, epoch: int) -> None: ...

    def on_step(self, step: int, epoch: int, loss: float, tokens_per_sec: float, lr: float) -> None: ...

    def on_validation(self, record: dict[str, Any]) -> None: ...


class SilentProgress:
    def on_start(self, steps_per_epoch: int, epochs: int, step: int, epoch: int) -> None:
        pass

    def on_step(self, step: int, epoch: int, loss: float, tokens_per_sec: float, lr: float) -> None:
        pass

    def on_validation(self, record: dict[str, Any]) -> None:
        pass


@keras.saving.register_keras_serializable(package="s2s")
class WarmupInverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over `warmup` steps, then decay with 1/sqrt(step)."""

    def __init__(self, peak: float, warmup: int) -> None:
        self.peak, self.warmup = peak, warmup

    def __call__(self, step):
        step = keras.ops.cast(step, "float32") + 1.0
        warmup = float(max(self.warmup, 1))
        return self.peak * keras.ops.minimum(step / warmup, keras.ops.sqrt(warmup / step))

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup": self.warmup}


@contextlib.contextmanager
def train_lock(run: RunDir) -> Iterator[None]:
    """Hold run_dir/train.lock for this process; a lock left by a dead process is taken over."""
    path = run.file("train.lock")
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            pid = _lock_owner(path)
            if pid is not None and _alive(pid):
                raise TrainingError(
                    f"{run.path} is already being trained by process {pid}; wait for it or stop it first."
                ) from None
            path.unlink(missing_ok=True)  # stale lock from a process that died
    else:
        raise TrainingError(f"cannot take the lock {path}; remove it if no training is running.")
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _history_step(line: str) -> float:
    """The step of a history line; a line cut short by a crash counts as after every checkpoint."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return float("inf")


def _lock_owner(path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _catch_signals() -> Iterator[list[int]]:
    """Record SIGINT/SIGTERM instead of dying, so the loop can checkpoint first."""
    received: list[int] = []
    previous = {}
    for sig in _SIGNAL_EXIT:
        with contextlib.suppress(ValueError):  # not the main thread: leave handlers alone
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Owns the model, optimizer and data of one training run."""

    def __init__(self, run: RunDir, config: RunConfig, progress: TrainProgress) -> None:
        self.run, self.config, self.progress = run, config, progress
        tc = config.train
        keras.utils.set_random_seed(tc.seed)
        tf.config.experimental.enable_op_determinism()
        self.src_tok, self.tgt_tok = load_tokenizers(run, config)
        self.valid_text = self._read("valid")
        self.train_data = self._encode(*self._read("train"))
        self.valid_data = self._encode(*self.valid_text)
        for split, data in (("train", self.train_data), ("valid", self.valid_data)):
            if not len(data):
                raise TrainingError(
                    f"{run.split_path(split, 'src')} is empty: re-run `s2s prepare` with a larger corpus "
                    "(or --valid-size > 0 / --valid FILE for the validation set)."
                )
        self.model: keras.Model = build_model(
            config.model, self.src_tok.vocab_size, self.tgt_tok.vocab_size, tc.precision
        )
        self.optimizer = keras.optimizers.Adam(
            learning_rate=WarmupInverseSqrt(tc.lr, tc.warmup), global_clipnorm=tc.clip_norm or None
        )
        self.optimizer.build(self.model.trainable_variables)
        spec = tf.TensorSpec((None, None), tf.int32)
        self.train_step = tf.function(self._train_step, input_signature=[spec, spec, spec])
        self.eval_step = tf.function(self._eval_step, input_signature=[spec, spec, spec])
        self.translator = Translator(config, self.model, self.src_tok, self.tgt_tok)
        self.last_record: dict[str, Any] = {}
        self._loss_sum, self._loss_count = 0.0, 0
        self._started = self._clock = 0.0
        self.state: dict[str, Any] = {
            "step": 0,
            "epoch": 0,
            "batch": 0,
            "best_score": None,
            "best_step": 0,
            "bad_validations": 0,
            "train_seconds": 0.0,
            "train_tokens": 0,
        }

    def _read(self, split: str) -> tuple[list[str], list[str]]:
        src, tgt = (
            self.run.split_path(split, side).read_text(encoding="utf-8").splitlines() for side in ("src", "tgt")
        )
        return src, tgt

    def _encode(self, src: list[str], tgt: list[str]) -> EncodedPairs:
        max_len = self.config.data.max_len
        src_ids = [ids[:max_len] for ids in self.src_tok.encode(src)]
        tgt_ids = [ids[:max_len] for ids in self.tgt_tok.encode(tgt)]
        return EncodedPairs(src_ids, tgt_ids)

    def _train_step(self, src, tgt_in, tgt_out):
        with tf.GradientTape() as tape:
            logits = self.model((src, tgt_in), training=True)
            loss, tokens = masked_loss(tgt_out, logits, self.config.train.label_smoothing)
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        return loss, tokens

    def _eval_step(self, src, tgt_in, tgt_out):
        logits = self.model((src, tgt_in), training=False)
        return masked_loss(tgt_out, logits)

    # --------------------------------------------------------------------------------------------------------
    def resume(self) -> None:
        found = checkpoints.list_checkpoints(self.run)
        if not found:
            raise TrainingError(f"{self.run.path} has no checkpoint to resume from: run `s2s train` without --resume.")
        saved = checkpoints.load_checkpoint(found[-1], self.model, self.optimizer)
        self.state.update({k: saved[k] for k in self.state if k in saved})
        self._truncate_history(self.state["step"])

    def _truncate_history(self, step: int) -> None:
        """Drop validations logged after the checkpoint, which the resumed run will redo."""
        path = self.run.history_path
        if path.is_file():
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if _history_step(ln) <= step]
            write_text_atomic(path, "".join(f"{ln}\n" for ln in lines))

    def batches(self, epoch: int) -> list[np.ndarray]:
        tc = self.config.train
        return make_batches(self.train_data, tc.batch_tokens, tc.batch_size, seed=tc.seed, epoch=epoch)

    def fit(self) -> TrainResult:
        tc, state = self.config.train, self.state
        if state["epoch"] >= tc.epochs or self._limit_reached():
            raise TrainingError(
                f"{self.run.path} has already trained {state['epoch']} epochs / {state['step']} steps: "
                "pass a larger --epochs or --max-steps to go on."
            )
        writer = tf.summary.create_file_writer(str(self.run.logs_dir))
        self.progress.on_start(len(self.batches(0)), tc.epochs, state["step"], state["epoch"])
        self._started = self._clock = time.perf_counter()
        stopped = None
        with _catch_signals() as received, writer.as_default():
            while stopped is None:
                for batch in dataset(self.train_data, self.batches(state["epoch"]), start=state["batch"]):
                    self._train_on(batch)
                    if received:
                        self._interrupt(received[0])
                    stopped = self._limit_reached()
                    if stopped:
                        break
                    if tc.valid_every and state["step"] % tc.valid_every == 0:
                        stopped = self._validate_and_checkpoint()
                        if stopped:
                            break
                else:  # the epoch ran to its end
                    state["epoch"] += 1
                    state["batch"] = 0
                    stopped = "epochs" if state["epoch"] >= tc.epochs else None
                    if not stopped and not tc.valid_every:
                        stopped = self._validate_and_checkpoint()
            if self.last_record.get("step") != state["step"]:
                self._validate_and_checkpoint()
        writer.flush()
        last = self.last_record
        return TrainResult(
            steps=state["step"],
            epochs=state["epoch"],
            train_loss=last["train_loss"],
            valid_loss=last["valid_loss"],
            valid_bleu=last["bleu"],
            valid_chrf=last["chrf"],
            tgt_tokens_per_sec=round(self._tokens_per_sec(), 1),
            seconds=round(state["train_seconds"], 1),
            best_step=state["best_step"],
            stopped=stopped,
        )

    def _train_on(self, batch: tuple) -> None:
        """One optimizer step; updates the position, the loss average, the progress bar and TensorBoard."""
        state = self.state
        (src, tgt_in), tgt_out = batch
        loss, tokens = self.train_step(src, tgt_in, tgt_out)
        loss = float(loss)
        if not math.isfinite(loss):
            raise TrainingError(
                f"loss became {loss} at step {state['step'] + 1}; the last good checkpoint is kept. "
                "Lower --lr or use --precision float32, then `s2s train --resume`."
            )
        state["step"] += 1
        state["batch"] += 1
        state["train_tokens"] += int(tokens)
        now = time.perf_counter()
        state["train_seconds"] += now - self._clock
        self._clock = now
        self._loss_sum, self._loss_count = self._loss_sum + loss, self._loss_count + 1
        lr = float(self.optimizer.learning_rate)
        self.progress.on_step(state["step"], state["epoch"], loss, self._tokens_per_sec(), lr)
        if state["step"] % 20 == 0:
            tf.summary.scalar("train/loss", loss, step=state["step"])
            tf.summary.scalar("train/lr", lr, step=state["step"])

    def _limit_reached(self) -> str | None:
        tc, state = self.config.train, self.state
        if tc.max_steps and state["step"] >= tc.max_steps:
            return "max_steps"
        if tc.max_minutes and self._started and time.perf_counter() - self._started >= 60 * tc.max_minutes:
            return "max_minutes"
        return None

    def _interrupt(self, signum: int) -> None:
        self._save_checkpoint()
        sig = signal.Signals(signum)
        raise TrainingInterrupted(
            f"{sig.name} received: checkpoint saved at step {self.state['step']}; "
            f"continue with `s2s train --resume --run-dir {self.run.path}`.",
            _SIGNAL_EXIT[sig],
        )

    def _validate_and_checkpoint(self) -> str | None:
        """Validate, save a checkpoint, and return "patience" when early stopping says to stop."""
        self.last_record = self.validate(self._loss_sum / max(self._loss_count, 1))
        self._loss_sum, self._loss_count = 0.0, 0
        self._save_checkpoint()
        self._clock = time.perf_counter()  # validation time does not count as training time
        patience = self.config.train.patience
        return "patience" if patience and self.state["bad_validations"] >= patience else None

    def _tokens_per_sec(self) -> float:
        return self.state["train_tokens"] / max(self.state["train_seconds"], 1e-9)

    def validate(self, train_loss: float) -> dict[str, Any]:
        """Valid loss/perplexity and BLEU/chrF by decoding; saves best weights; updates the patience count."""
        tc, state = self.config.train, self.state
        total, tokens = 0.0, 0.0
        for (src, tgt_in), tgt_out in dataset(self.valid_data, make_batches(self.valid_data, 8192, shuffle=False)):
            loss, n = self.eval_step(src, tgt_in, tgt_out)
            total, tokens = total + float(loss) * float(n), tokens + float(n)
        valid_loss = total / max(tokens, 1.0)
        src_text, ref_text = (side[: tc.valid_max_sentences] for side in self.valid_text)
        hyps = [t[0].text for t in self.translator.translate(src_text, beam=tc.valid_beam)]
        scores = evaluation.score(hyps, ref_text, self.config.data.tgt_lang)
        record = {
            "step": state["step"],
            "epoch": state["epoch"],
            "train_loss": round(train_loss, 4),
            "valid_loss": round(valid_loss, 4),
            "ppl": round(math.exp(min(valid_loss, 50.0)), 2),
            "bleu": scores.bleu,
            "chrf": scores.chrf,
            "tgt_tokens_per_sec": round(self._tokens_per_sec(), 1),
        }
        score = scores.bleu if tc.select == "bleu" else -valid_loss
        if state["best_score"] is None or score > state["best_score"]:
            state.update(best_score=score, best_step=state["step"], bad_validations=0)
            self.save_best_weights()
        else:
            state["bad_validations"] += 1
        record["best_step"] = state["best_step"]
        with self.run.history_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        for name in ("valid_loss", "bleu", "chrf", "tgt_tokens_per_sec"):
            tf.summary.scalar(f"valid/{name}", record[name], step=state["step"])
        self.progress.on_validation(record)
        return record

    def save_best_weights(self) -> None:
        with atomic_path(self.run.weights_path, suffix=".weights.h5") as tmp:
            self.model.save_weights(str(tmp))
        self.run.write_manifest()

    def _save_checkpoint(self) -> None:
        checkpoints.save_checkpoint(self.run, self.model, self.optimizer, self.state, self.config.train.keep)


def plan_config(run: RunDir, model: dict[str, Any], train: dict[str, Any], resume: bool, force: bool) -> RunConfig:
    """The config a `train` call runs with: saved + overrides when resuming, defaults + overrides when fresh."""
    saved = run.load_config()
    if resume:
        config = saved.with_overrides(model, train)
        if config.model != saved.model:
            changed = sorted(k for k in vars(config.model) if getattr(config.model, k) != getattr(saved.model, k))
            raise TrainingError(
                f"cannot resume with a different model ({', '.join(changed)} changed): drop those options, "
                "or start over with `s2s train --force`."
            )
        return config
    if (checkpoints.list_checkpoints(run) or run.has_weights()) and not force:
        raise TrainingError(
            f"{run.path} already has a trained model: `s2s train --resume` continues it, "
            "`s2s train --force` starts over and replaces it."
        )
    return RunConfig(saved.data).with_overrides(model, train)


def reset_training(run: RunDir) -> None:
    """Remove what an earlier training wrote (for --force), keeping the prepared data and tokenizers."""
    for path in (run.checkpoints_dir, run.logs_dir):
        shutil.rmtree(path, ignore_errors=True)
    for path in (run.weights_path, run.history_path):
        path.unlink(missing_ok=True)
    run.write_manifest()


def train(run: RunDir, config: RunConfig, resume: bool = False, progress: TrainProgress | None = None) -> TrainResult:
    """Train the model described by `config` on the run dir's splits; resume from its last checkpoint if asked."""
    with train_lock(run):
        run.verify_manifest()  # never train on tokenizers or splits that changed since prepare
        if not resume:
            reset_training(run)
        run.save_config(config)
        trainer = Trainer(run, config, progress or SilentProgress())
        if resume:
            trainer.resume()
        result = trainer.fit()
        run.write_manifest()
        return result
