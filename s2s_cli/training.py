"""train(run_dir, config) -> TrainResult: the training loop, validation, best weights, checkpoints, resume."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from s2s_cli import checkpoints, evaluation
from s2s_cli.config import RunConfig
from s2s_cli.errors import ConfigError, TrainingError
from s2s_cli.model import build_model, masked_loss
from s2s_cli.pipeline import EncodedPairs, collate, dataset, make_batches
from s2s_cli.rundir import DATA, TOKENIZERS, RunDir, atomic_path, write_text_atomic
from s2s_cli.translation import Translator, load_tokenizers

_SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
SUM = tf.distribute.ReduceOp.SUM


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
    valid_bleu: float  # of the last validation
    valid_chrf: float
    tgt_tokens_per_sec: float
    seconds: float
    best_step: int
    best_valid_bleu: float | None  # of the best step's validation (None: resumed from an older checkpoint)
    stopped: str  # "epochs", "max_steps", "max_minutes" or "patience"
    replicas: int
    weights_sha256: str  # of the last step's weights: equal on every worker of a distributed run

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


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy for --strategy; create it before any other TensorFlow op runs.

    one: TensorFlow's default (no distribution). mirrored: all local GPUs, else all logical CPU devices.
    multi-worker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG. auto: multi-worker when TF_CONFIG names
    more than one task, mirrored when there are several GPUs, else one.
    """
    if name == "auto":
        many_gpus = len(tf.config.list_physical_devices("GPU")) > 1
        name = "multi-worker" if _cluster_size() > 1 else "mirrored" if many_gpus else "one"
    if name == "one":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if not _cluster_size():
        raise ConfigError(
            "--strategy multi-worker needs the TF_CONFIG environment variable (cluster and task of this worker); "
            "see the README's 'Scaling out' section."
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def default_warmup(planned_steps: int) -> int:
    """Warm-up steps when --warmup is not given: 400 (the Multi30k recipe), but at most a tenth of the planned steps,
    so that a small corpus still reaches the peak learning rate well before training ends."""
    return max(1, min(400, planned_steps // 10))


def selection_score(select: str, bleu: float, valid_loss: float) -> list[float]:
    """What --select compares, larger is better. For bleu, ties go to the lower validation loss: BLEU is 0 early on
    (no 4-gram matches yet), and early stopping must not end a training whose loss is still falling."""
    return [bleu, -valid_loss] if select == "bleu" else [-valid_loss]


def is_better(score: list[float], best: list[float] | float | None) -> bool:
    if best is None:
        return True
    return score > (best if isinstance(best, list) else [best])  # older checkpoints hold one number


def detect_precision(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """What --precision auto means on this machine: bf16 where bfloat16 matmuls run natively (a GPU of compute
    capability 8.0 or newer; an x86 CPU with AMX or AVX512-BF16), else float32."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        return "bf16" if tuple(capability) >= (8, 0) else "float32"
    try:
        flags = cpuinfo.read_text(errors="replace")
    except OSError:  # not Linux, or no access: the safe choice
        return "float32"
    return "bf16" if re.search(r"\b(amx_bf16|avx512_bf16)\b", flags) else "float32"


def resolve_precision(config: RunConfig) -> RunConfig:
    """The config with --precision auto replaced by what it means here, so config.json records what was used."""
    if config.train.precision != "auto":
        return config
    return dataclasses.replace(config, train=dataclasses.replace(config.train, precision=detect_precision()))


def _cluster_size() -> int:
    """Tasks in TF_CONFIG's cluster (0 when TF_CONFIG is not set)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw)["cluster"]
        return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise ConfigError(
            'TF_CONFIG is not valid: expected JSON like {"cluster": {"worker": ["host1:port", ...]}, '
            '"task": {"type": "worker", "index": 0}}.'
        ) from None


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief (task "chief", else worker 0) writes the run dir: checkpoints, weights, history, logs."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief) or task_type is None


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of every weight's bytes, in order: equal digests mean identical models (replicas, reloads)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


class Trainer:
    """Owns the model, optimizer and data of one training run, on one device or replicated by a tf.distribute
    strategy (each global batch split across replicas; every process takes the same steps and stops together)."""

    def __init__(
        self,
        run: RunDir,
        config: RunConfig,
        progress: TrainProgress,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        self.run, self.config, self.progress = run, config, progress
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        self.is_chief = is_chief(self.strategy)
        self.multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
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
        if tc.warmup is None:
            planned = tc.max_steps or tc.epochs * len(self.batches(0))
            tc = dataclasses.replace(tc, warmup=default_warmup(planned))
            self.config = config = dataclasses.replace(config, train=tc)
        with self.strategy.scope():
            self.model: keras.Model = build_model(
                config.model, self.src_tok.vocab_size, self.tgt_tok.vocab_size, tc.precision, config.data.joint
            )
            # Gradients are clipped in _replica_step, after they are summed over replicas.
            self.optimizer = keras.optimizers.Adam(learning_rate=WarmupInverseSqrt(tc.lr, tc.warmup))
            self.optimizer.build(self.model.trainable_variables)
        spec = tf.TensorSpec((None, None), tf.int32)
        if self.replicas == 1:
            flags = tf.TensorSpec((2,), tf.float32)
            self._step_fn = tf.function(self._train_step, input_signature=[spec, spec, spec, flags])
        else:  # per-replica inputs: one trace per input structure, shapes generalized
            self._step_fn = tf.function(self._train_step, reduce_retracing=True)
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
            "best_bleu": None,
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

    def train_step(self, src, tgt_in, tgt_out, stop_flags=(0.0, 0.0)):
        """One optimizer step on a global batch -> (mean loss, target tokens, summed stop flags), all global."""
        return self._step_fn(src, tgt_in, tgt_out, tf.constant(stop_flags, tf.float32))

    def _train_step(self, src, tgt_in, tgt_out, stop_flags):
        results = self.strategy.run(self._replica_step, args=(src, tgt_in, tgt_out, stop_flags))
        # Every replica returns the same all-reduced values: take this process's first.
        return tf.nest.map_structure(lambda x: self.strategy.experimental_local_results(x)[0], results)

    def _replica_step(self, src, tgt_in, tgt_out, stop_flags):
        context = tf.distribute.get_replica_context()
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model((src, tgt_in), training=True)
            loss, tokens = masked_loss(tgt_out, logits, self.config.train.label_smoothing)
            loss_sum = loss * tokens
            total_tokens = context.all_reduce(SUM, tokens)
            scaled = loss_sum / tf.maximum(total_tokens, 1.0)  # this replica's share of the global mean
        grads = context.all_reduce(SUM, tape.gradient(scaled, variables))  # the global batch's gradient
        if self.config.train.clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, self.config.train.clip_norm)
        if self.replicas > 1:  # Keras' optimizer sums gradients over replicas once more: give it equal shares
            grads = [tf.convert_to_tensor(g) / self.replicas for g in grads]
        self.optimizer.apply(grads, variables)
        mean_loss = context.all_reduce(SUM, loss_sum) / tf.maximum(total_tokens, 1.0)
        # identity: an input has no device under MultiWorkerMirroredStrategy, and all_reduce needs one
        return mean_loss, total_tokens, context.all_reduce(SUM, tf.identity(stop_flags))

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
        if self.is_chief:
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
        writer = (
            tf.summary.create_file_writer(str(self.run.logs_dir)) if self.is_chief else tf.summary.create_noop_writer()
        )
        self.progress.on_start(len(self.batches(0)), tc.epochs, state["step"], state["epoch"])
        self._started = self._clock = time.perf_counter()
        stopped = None
        with _catch_signals() as received, writer.as_default():
            while stopped is None:
                for batch in self._epoch_inputs(state["epoch"], state["batch"]):
                    stopped = self._train_on(batch, received)
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
            best_valid_bleu=state["best_bleu"],
            stopped=stopped,
            replicas=self.replicas,
            weights_sha256=weights_digest(self.model),
        )

    def _epoch_inputs(self, epoch: int, start: int) -> Iterator[Any]:
        """The epoch's batches from `start`: tensors on one replica, else each global batch split across replicas
        (None for a batch with fewer sentences than replicas, which every process skips alike)."""
        batches = self.batches(epoch)
        if self.replicas == 1:
            yield from dataset(self.train_data, batches, start=start)
            return
        for index in batches[start:]:
            if len(index) < self.replicas:
                yield None
                continue
            parts = [collate(self.train_data, part) for part in np.array_split(index, self.replicas)]
            yield self.strategy.experimental_distribute_values_from_function(
                lambda context, parts=parts: tf.nest.map_structure(tf.constant, parts[context.replica_id_in_sync_group])
            )

    def _train_on(self, batch: Any, received: list[int]) -> str | None:
        """One optimizer step; updates the position, the loss average, the progress bar and TensorBoard.

        Returns why training must stop now ("max_steps", "max_minutes") or None. The time limit and signals are
        summed over all processes inside the step, so every worker stops after the same step.
        """
        state, tc = self.state, self.config.train
        if batch is None:
            state["batch"] += 1
            return None
        (src, tgt_in), tgt_out = batch
        flags = (float(self._out_of_time()), float(bool(received)))
        loss, tokens, flags = self.train_step(src, tgt_in, tgt_out, flags)
        loss, flags = float(loss), flags.numpy()
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
        if not self.multi_worker:  # one process: act on a signal or the clock at once, not a step later
            flags = (flags[0] or self._out_of_time(), flags[1] or bool(received))
        if flags[1]:  # a signal here or on another worker
            self._interrupt(received[0] if received else signal.SIGTERM)
        if flags[0]:
            return "max_minutes"
        return "max_steps" if tc.max_steps and state["step"] >= tc.max_steps else None

    def _limit_reached(self) -> str | None:
        tc, state = self.config.train, self.state
        if tc.max_steps and state["step"] >= tc.max_steps:
            return "max_steps"
        return "max_minutes" if self._out_of_time() else None

    def _out_of_time(self) -> bool:
        minutes = self.config.train.max_minutes
        return bool(minutes and self._started and time.perf_counter() - self._started >= 60 * minutes)

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
        score = selection_score(tc.select, scores.bleu, valid_loss)
        if is_better(score, state["best_score"]):
            state.update(best_score=score, best_step=state["step"], best_bleu=scores.bleu, bad_validations=0)
            self.save_best_weights()
        else:
            state["bad_validations"] += 1
        record["best_step"] = state["best_step"]
        if self.is_chief:
            with self.run.history_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        for name in ("valid_loss", "bleu", "chrf", "tgt_tokens_per_sec"):
            tf.summary.scalar(f"valid/{name}", record[name], step=state["step"])
        self.progress.on_validation(record)
        return record

    def save_best_weights(self) -> None:
        if not self.is_chief:
            return
        with atomic_path(self.run.weights_path, suffix=".weights.h5") as tmp:
            self.model.save_weights(str(tmp))
        self.run.write_manifest()

    def _save_checkpoint(self) -> None:
        if not self.is_chief:
            return
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
    """Train the model described by `config` on the run dir's splits; resume from its last checkpoint if asked.

    With several workers (--strategy multi-worker) every worker runs this; only the chief writes the run dir.
    """
    strategy = make_strategy(config.train.strategy)  # before any other TensorFlow op
    config = resolve_precision(config)
    chief = is_chief(strategy)
    with train_lock(run) if chief else contextlib.nullcontext():
        # Never train on tokenizers or splits that changed since prepare. Other workers check only what prepare
        # wrote, which the chief never rewrites (on a shared file system it may be rewriting the rest).
        run.verify_manifest(only=None if chief else (DATA, TOKENIZERS))
        if chief and not resume:
            reset_training(run)
        trainer = Trainer(run, config, progress or SilentProgress(), strategy)
        if chief:
            run.save_config(trainer.config)  # with auto precision and warm-up resolved
        if resume:
            trainer.resume()
        result = trainer.fit()
        if chief:
            run.write_manifest()
        return result
