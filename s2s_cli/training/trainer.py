"""The Trainer: the optimizer step and the loop over epochs, with validation, checkpoints and stopping rules."""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from s2s_cli.config import RunConfig
from s2s_cli.data.batching import Pairs, SampledPairs, make_batches
from s2s_cli.data.tokenizers import Tokenizer
from s2s_cli.errors import TrainingError
from s2s_cli.inference.translator import Translator
from s2s_cli.models import build_model
from s2s_cli.rundir import RunDir, Validation
from s2s_cli.training import signals
from s2s_cli.training.checkpoints import Checkpoints, JsonState, list_checkpoints, weights_digest
from s2s_cli.training.distribute import Distribution, MultiWorker
from s2s_cli.training.recorder import Recorder
from s2s_cli.training.schedules import ClockedDecay, build_optimizer, plans_by_clock
from s2s_cli.training.steps import Updates
from s2s_cli.training.validation import Validator

LOG_EVERY = 20  # steps between TensorBoard points of the training loss


@dataclass(frozen=True)
class TrainingData:
    """What a run trains on: the encoded training and validation splits, the validation text, the tokenizers."""

    train: Pairs
    valid: Pairs
    valid_text: tuple[list[str], list[str]]
    src_tok: Tokenizer
    tgt_tok: Tokenizer


@dataclass
class TrainState:
    """Where training stands (saved in every checkpoint): `batch` counts the batches of `epoch` already trained."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    train_seconds: float = 0.0
    train_tokens: int = 0
    loss_sum: float = 0.0  # of the updates since the last validation, for its train_loss
    loss_count: int = 0

    def tokens_per_sec(self) -> float:
        return self.train_tokens / max(self.train_seconds, 1e-9)


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
    chief: bool = True  # whether this process wrote the run dir (in a distributed run, one did)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class TrainProgress(Protocol):
    """How the trainer reports to a front end (the CLI draws a progress bar from these)."""

    def on_start(self, steps_per_epoch: int, epochs: int, step: int, epoch: int) -> None: ...

    def on_step(self, step: int, epoch: int, loss: float, tokens_per_sec: float, lr: float) -> None: ...

    def on_validation(self, record: Validation) -> None: ...

    def on_plan(self, total_steps: int) -> None:
        """Training will now end at update `total_steps` (a cosine decay planned from the clock)."""


class SilentProgress(TrainProgress):
    """Reports nothing: every method is the protocol's no-op."""


class Trainer:
    """Trains one model on one run dir's data, on the devices of a `Distribution`: each global batch is one
    optimizer step, and every process of a distributed run takes the same steps and stops after the same one."""

    def __init__(
        self, run: RunDir, config: RunConfig, data: TrainingData, progress: TrainProgress, distribution: Distribution
    ) -> None:
        self.run, self.config, self.data, self.progress, self.distribution = run, config, data, progress, distribution
        tc = config.train
        with distribution.scope():
            # several workers' clocks would plan apart: theirs decays over --epochs
            planner = not isinstance(distribution, MultiWorker)
            most = tc.epochs * self.updates_per_epoch()
            self.clocked = ClockedDecay(tc, most, planner) if plans_by_clock(tc) else None
            self.model = build_model(
                config.model, data.src_tok.vocab_size, data.tgt_tok.vocab_size, tc.precision, config.data.joint
            )
            self.optimizer = build_optimizer(tc, self.clocked)
            self.optimizer.build(self.model.trainable_variables)
        self.updates = Updates(self.model, self.optimizer, tc, distribution)
        translator = Translator(config, self.model, data.src_tok, data.tgt_tok)
        self.validator = Validator(config, self.model, translator, data.valid, data.valid_text)
        self.state = TrainState()
        checkpoint_state = JsonState(self._checkpoint_state, self._restore_state)
        checkpoints = Checkpoints(run, self.model, self.optimizer, checkpoint_state, tc.keep)
        self.recorder = Recorder(run, checkpoints, distribution.is_chief)
        self.last_record: Validation | None = None
        self._started = self._clock = self._saved = 0.0

    def _checkpoint_state(self) -> dict[str, Any]:
        return {"trainer": dataclasses.asdict(self.state), "selection": self.validator.state()}

    def _restore_state(self, saved: dict[str, Any]) -> None:
        self.state = TrainState(**saved["trainer"])
        self.validator.restore(saved["selection"])

    def train_step(self, src, tgt_in, tgt_out, stop_flags=(0.0, 0.0)):
        """One optimizer update on a global batch -> (mean loss, target tokens, summed stop flags), all global."""
        return self.updates.one_batch(src, tgt_in, tgt_out, stop_flags)

    # the loop -------------------------------------------------------------------------------------------------
    def batches(self, epoch: int) -> list:
        tc = self.config.train
        return make_batches(self.data.train, tc.batch_tokens, tc.batch_size, seed=tc.seed, epoch=epoch)

    def epoch_pairs(self, epoch: int) -> Pairs:
        """The training split as `epoch` sees it: resegmented per batch with --subword-sampling."""
        alpha = self.config.train.subword_sampling
        if not alpha:
            return self.data.train
        tokenizers = (self.data.src_tok, self.data.tgt_tok)
        return SampledPairs(self.data.train, tokenizers, alpha, self.config.data.max_len, self.config.train.seed, epoch)

    def resume(self) -> None:
        """Continue from the newest checkpoint: weights, optimizer, dropout seeds, position, best step."""
        self.recorder.checkpoints.restore_latest()
        self.recorder.truncate_history(self.state.step)

    def updates_per_epoch(self) -> int:
        return math.ceil(len(self.batches(0)) / self.config.train.accum_steps)

    def fit(self) -> TrainResult:
        tc, state = self.config.train, self.state
        if state.epoch >= tc.epochs or self._limit_reached():
            raise TrainingError(
                f"{self.run.path} has already trained {state.epoch} epochs / {state.step} steps: "
                "pass a larger --epochs or --max-steps to go on."
            )
        self.progress.on_start(self.updates_per_epoch(), tc.epochs, state.step, state.epoch)
        self._started = self._clock = self._saved = time.perf_counter()
        stopped = None
        with signals.recorded() as received, self.recorder.tensorboard():
            while stopped is None:
                inputs = self.distribution.inputs(self.epoch_pairs(state.epoch), self.batches(state.epoch), state.batch)
                for group in group_batches(inputs, tc.accum_steps):
                    stopped = self._train_on(group, received)
                    if not stopped and tc.valid_every and state.step % tc.valid_every == 0:
                        stopped = self._validate_and_checkpoint()
                    elif not stopped and self._save_due():
                        self._save_checkpoint()
                    if stopped:
                        break
                else:  # the epoch ran to its end
                    state.epoch += 1
                    state.batch = 0
                    stopped = "epochs" if state.epoch >= tc.epochs else None
                    if not stopped and not tc.valid_every:
                        stopped = self._validate_and_checkpoint()
            if self.last_record is None or self.last_record.step != state.step:
                self._validate_and_checkpoint()
        return self._result(stopped)

    def _result(self, stopped: str) -> TrainResult:
        state, last, selection = self.state, self.last_record, self.validator.selection
        return TrainResult(
            steps=state.step,
            epochs=state.epoch,
            train_loss=last.train_loss,
            valid_loss=last.valid_loss,
            valid_bleu=last.bleu,
            valid_chrf=last.chrf,
            tgt_tokens_per_sec=round(state.tokens_per_sec(), 1),
            seconds=round(state.train_seconds, 1),
            best_step=selection.best_step,
            best_valid_bleu=selection.best_bleu,
            stopped=stopped,
            replicas=self.distribution.replicas,
            weights_sha256=weights_digest(self.model),
            chief=self.distribution.is_chief,
        )

    def _train_on(self, group: list, received: list[int]) -> str | None:
        """One optimizer update from a group of batches; updates the position, the loss average, the progress bar
        and TensorBoard. A None in the group is a batch every process skips.

        Returns why training must stop now ("max_steps", "max_minutes") or None. The time limit and signals are
        summed over all processes inside the update, so every worker stops after the same one.
        """
        state, tc = self.state, self.config.train
        state.batch += len(group)
        batches = [batch for batch in group if batch is not None]
        if not batches:
            return None
        flags = (float(self._out_of_time()), float(bool(received)))
        loss, tokens, agreed = self.updates(batches, flags)
        if not math.isfinite(loss):
            kept = (
                "the last good checkpoint is kept: lower --lr or use --precision float32, then `s2s train --resume`"
                if list_checkpoints(self.run)
                else "no checkpoint was saved yet: lower --lr or use --precision float32 and train again"
            )
            raise TrainingError(f"loss became {loss} at step {state.step + 1}; {kept}.")
        state.step += 1
        state.train_tokens += tokens
        now = time.perf_counter()
        state.train_seconds += now - self._clock
        self._clock = now
        state.loss_sum, state.loss_count = state.loss_sum + loss, state.loss_count + 1
        lr = float(self.optimizer.learning_rate)
        if self.clocked is not None and self.clocked.due(state.step):
            self._plan_decay()
        self.progress.on_step(state.step, state.epoch, loss, state.tokens_per_sec(), lr)
        if state.step % LOG_EVERY == 0:
            self.recorder.log_step(state.step, loss, lr)
        out_of_time, signalled = self.distribution.stop_flags(agreed, (self._out_of_time(), bool(received)))
        if signalled:  # a signal here or on another worker
            self._interrupt(received[0] if received else signal.SIGTERM)
        if out_of_time:
            return "max_minutes"
        return "max_steps" if tc.max_steps and state.step >= tc.max_steps else None

    def _plan_decay(self) -> None:
        """End the cosine decay, and training, at the update --max-minutes is expected to allow (config.json
        records it, so a resumed run keeps the plan)."""
        tc, elapsed = self.config.train, time.perf_counter() - self._started
        interval = tc.valid_every or self.updates_per_epoch()
        planned = self.clocked.plan(self.state.step, self.state.train_seconds, elapsed, interval)
        self.config = dataclasses.replace(
            self.config, train=dataclasses.replace(tc, decay_steps=planned, max_steps=planned)
        )
        if self.distribution.is_chief:
            self.run.save_config(self.config)
        self.progress.on_plan(planned)

    def _save_due(self) -> bool:
        """A checkpoint between validations: every --save-every steps or minutes."""
        tc = self.config.train
        if tc.save_every_steps:
            return self.state.step % tc.save_every_steps == 0
        return bool(tc.save_every_minutes) and time.perf_counter() - self._saved >= 60 * tc.save_every_minutes

    def _save_checkpoint(self) -> None:
        self.recorder.save_checkpoint(self.state.step)
        self._saved = time.perf_counter()

    def _limit_reached(self) -> str | None:
        if self.config.train.max_steps and self.state.step >= self.config.train.max_steps:
            return "max_steps"
        return "max_minutes" if self._out_of_time() else None

    def _out_of_time(self) -> bool:
        minutes = self.config.train.max_minutes
        return bool(minutes and self._started and time.perf_counter() - self._started >= 60 * minutes)

    def _interrupt(self, signum: int) -> None:
        self._save_checkpoint()
        raise signals.interrupted(
            signum,
            f"checkpoint saved at step {self.state.step}; "
            f"continue with `s2s train --resume --run-dir {self.run.path}`.",
        )

    def _validate_and_checkpoint(self) -> str | None:
        """Validate, keep the weights if best, save a checkpoint; "patience" when early stopping says to stop."""
        state, started = self.state, time.perf_counter()
        train_loss = state.loss_sum / max(state.loss_count, 1)
        record = self.validator.validate(state.step, state.epoch, train_loss, state.tokens_per_sec())
        state.loss_sum, state.loss_count = 0.0, 0
        if record.is_best:
            self.recorder.save_best_weights(self.model)
        self.recorder.log_validation(record)
        self.progress.on_validation(record)
        self.last_record = record
        self._save_checkpoint()
        self._clock = time.perf_counter()  # validation time does not count as training time
        if self.clocked is not None:
            self.clocked.validated(state.step, state.train_seconds, self._clock - started)
        return "patience" if self.validator.should_stop() else None


def group_batches(inputs: Iterator[Any], size: int) -> Iterator[list]:
    """The inputs in groups of `size` (the last of an epoch may be smaller): the batches of one update."""
    group: list = []
    for batch in inputs:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group
