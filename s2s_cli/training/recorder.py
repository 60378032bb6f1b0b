"""What training writes into the run dir: best weights, checkpoints, history, TensorBoard logs.

Only the chief of a distributed run writes; the other workers' recorder does nothing, so the trainer never asks
which process it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import keras
import tensorflow as tf

from s2s_cli.files import atomic_path
from s2s_cli.rundir import AVERAGE, UNAVERAGED, RunDir, Validation
from s2s_cli.training.checkpoints import Checkpoints

VALIDATION_SCALARS = ("valid_loss", "bleu", "chrf", "tgt_tokens_per_sec")


class Recorder:
    def __init__(self, run: RunDir, checkpoints: Checkpoints, writes: bool) -> None:
        self.run, self.checkpoints, self.writes = run, checkpoints, writes
        self.on_checkpoint: Callable[[], None] | None = None  # called after each checkpoint is written

    @contextlib.contextmanager
    def tensorboard(self) -> Iterator[None]:
        """TensorBoard summaries of the block go to RUN/logs."""
        if self.writes:
            writer = tf.summary.create_file_writer(str(self.run.logs_dir))
        else:
            writer = tf.summary.create_noop_writer()
        with writer.as_default():
            yield
        writer.flush()

    def log_step(self, step: int, loss: float, lr: float) -> None:
        tf.summary.scalar("train/loss", loss, step=step)
        tf.summary.scalar("train/lr", lr, step=step)

    def log_validation(self, record: Validation) -> None:
        if self.writes:
            self.run.append_history(record)
        for name in VALIDATION_SCALARS:
            tf.summary.scalar(f"valid/{name}", getattr(record, name), step=record.step)

    def truncate_history(self, step: int) -> None:
        if self.writes:
            self.run.truncate_history(step)

    def save_best_weights(self, model: keras.Model) -> None:
        if not self.writes:
            return
        with atomic_path(self.run.weights_path, suffix=".weights.h5") as tmp:
            model.save_weights(str(tmp))
        for name in (UNAVERAGED, AVERAGE):  # an average of earlier checkpoints no longer is the model
            self.run.file(name).unlink(missing_ok=True)
        self.run.write_manifest()

    def save_checkpoint(self, step: int) -> None:
        if self.writes:
            self.checkpoints.save(step)
            if self.on_checkpoint:
                self.on_checkpoint()
