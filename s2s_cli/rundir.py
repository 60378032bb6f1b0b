"""The run directory: every file name in one place, the config, the manifest checked on load, history, the lock."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from s2s_cli import __version__, manifest
from s2s_cli.config import RunConfig
from s2s_cli.errors import RunDirError, TrainingError
from s2s_cli.files import read_json, write_json_atomic, write_text_atomic
from s2s_cli.manifest import MANIFEST

DEFAULT_RUN_DIR = Path("runs/default")

CONFIG = "config.json"
DATA = "data"
SHARDS = "shards"
TOKENIZERS = "tokenizers"
CHECKPOINTS = "checkpoints"
WEIGHTS = "model.weights.h5"
UNAVERAGED = "model.unaveraged.weights.h5"  # the best step's weights, kept by `s2s average`
AVERAGE = "average.json"  # which checkpoints model.weights.h5 averages, and its validation scores
HISTORY = "history.jsonl"
LOGS = "logs"
LOCK = "train.lock"
PREVIOUS = ".previous-training"
TRAINING_OUTPUTS = (WEIGHTS, UNAVERAGED, AVERAGE, CHECKPOINTS, HISTORY, LOGS)
MODEL_FILES = (CONFIG, TOKENIZERS, WEIGHTS, UNAVERAGED, AVERAGE)  # what translating needs (manifest entries)
SPLITS = ("train", "valid", "test")
SIDES = ("src", "tgt")


def versions() -> dict[str, str]:
    """Versions of the software that writes an artifact (read from the installed packages: `prepare` does not
    import TensorFlow)."""
    return {"s2s": __version__, "keras": _version("keras"), "tensorflow": _version("tensorflow", "tensorflow-cpu")}


def _version(module: str, *distributions: str) -> str:
    if module in sys.modules:
        return sys.modules[module].__version__
    for name in (module, *distributions):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return "unknown"


@dataclass(frozen=True)
class Validation:
    """One line of history.jsonl: a validation during training. `best_step` is the step whose weights
    model.weights.h5 held after it."""

    step: int
    epoch: int
    train_loss: float
    valid_loss: float
    ppl: float
    bleu: float
    chrf: float
    tgt_tokens_per_sec: float
    best_step: int
    loss_seconds: float = 0.0  # the validation loss pass (0: a history written before it was recorded)
    translate_seconds: float = 0.0  # translating and scoring the validation sources

    @property
    def is_best(self) -> bool:
        return self.best_step == self.step

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, line: str) -> Validation | None:
        """The record on a line, or None for a line cut short by a crash."""
        try:
            raw = json.loads(line)
            fields = dataclasses.fields(cls)
            return cls(**{f.name: raw[f.name] for f in fields if f.name in raw or f.default is dataclasses.MISSING})
        except (json.JSONDecodeError, KeyError, TypeError):
            return None


class RunDir:
    """A run directory: prepare writes config, tokenizers and splits; train adds weights and checkpoints."""

    def __init__(self, path: Path | str = DEFAULT_RUN_DIR) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def split_path(self, split: str, side: str) -> Path:
        return self.path / DATA / f"{split}.{side}"

    def tokenizer_dir(self) -> Path:
        return self.path / TOKENIZERS

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS

    @property
    def shards_dir(self) -> Path:
        """The splits' token ids, encoded once (data/shards)."""
        return self.path / DATA / SHARDS

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY

    @property
    def logs_dir(self) -> Path:
        return self.path / LOGS

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    def is_prepared(self) -> bool:
        return (self.path / CONFIG).is_file()

    def is_run_dir(self) -> bool:
        """Recognizably written by `s2s prepare` (what --force may replace)."""
        return (self.path / CONFIG).is_file() and (self.path / MANIFEST).is_file()

    def has_weights(self) -> bool:
        return self.weights_path.is_file()

    # config ---------------------------------------------------------------------------------------------
    def save_config(self, config: RunConfig) -> None:
        write_json_atomic(self.path / CONFIG, {**config.to_dict(), "versions": versions()})

    def load_config(self) -> RunConfig:
        self.require_prepared()
        raw = read_json(self.path / CONFIG)
        raw.pop("versions", None)
        return RunConfig.from_dict(raw)

    def require_prepared(self) -> None:
        if self.path.is_symlink() and not self.path.exists():
            raise RunDirError(
                f"run dir {self.path} is a symlink that leads nowhere (broken, or a loop): fix or remove it."
            )
        if not self.path.exists():
            raise RunDirError(f"run dir {self.path} does not exist: run `s2s prepare CORPUS --run-dir {self.path}`.")
        if not self.is_prepared():
            raise RunDirError(f"{self.path} has no {CONFIG}: run `s2s prepare CORPUS --run-dir {self.path}` first.")

    def require_weights(self) -> None:
        self.require_prepared()
        if not self.has_weights():
            raise RunDirError(f"{self.path} has no trained model: run `s2s train --run-dir {self.path}` first.")

    # history --------------------------------------------------------------------------------------------
    def history(self) -> list[Validation]:
        """Every validation logged, oldest first (a line cut short by a crash is skipped)."""
        if not self.history_path.is_file():
            return []
        records = (Validation.from_json(line) for line in self.history_path.read_text(encoding="utf-8").splitlines())
        return [r for r in records if r is not None]

    def append_history(self, record: Validation) -> None:
        with self.history_path.open("a", encoding="utf-8") as f:
            f.write(record.to_json() + "\n")

    def truncate_history(self, step: int) -> None:
        """Drop validations logged after `step` (and any cut short), which a run resumed from `step` redoes."""
        if self.history_path.is_file():
            write_text_atomic(self.history_path, "".join(r.to_json() + "\n" for r in self.history() if r.step <= step))

    def average(self) -> dict | None:
        """What average.json says model.weights.h5 averages (steps, validation BLEU/chrF), or None."""
        return read_json(self.path / AVERAGE) if (self.path / AVERAGE).is_file() else None

    def best_validation(self) -> Validation | None:
        """The validation of the weights in model.weights.h5: the one training last chose as best."""
        history = self.history()
        if not history:
            return None
        return next((r for r in history if r.step == history[-1].best_step), None)

    # lock -----------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def training_lock(self) -> Iterator[None]:
        """Hold the run dir's training lock (an OS file lock, released by the OS if the process dies)."""
        lock = FileLock(self.lock_path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise TrainingError(
                f"{self.path} is already being trained by another `s2s train` (it holds {self.lock_path}); "
                "wait for it or stop it first."
            ) from None
        try:
            yield
        finally:
            lock.release()

    # an earlier training ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def previous_training_aside(self) -> Iterator[Callable[[], None]]:
        """Move what an earlier training wrote (weights, checkpoints, history, logs, config) into PREVIOUS for the
        block, and back if the block fails before it calls the yielded `discard` (which deletes them for good)."""
        aside = self.path / PREVIOUS
        items = [name for name in TRAINING_OUTPUTS if (self.path / name).exists() or (self.path / name).is_symlink()]
        if not items and not aside.exists():  # nothing to keep
            yield lambda: None
            return
        if not aside.exists():  # else it was left by a crash before the new training's first checkpoint: keep it
            aside.mkdir()
            for name in items:
                (self.path / name).rename(aside / name)
            shutil.copy2(self.path / CONFIG, aside / CONFIG)
        self.write_manifest()
        kept = [True]

        def discard() -> None:
            if kept[0]:
                shutil.rmtree(aside, ignore_errors=True)
                kept[0] = False

        try:
            yield discard
        except BaseException:
            if kept[0] and aside.exists():
                self._restore(aside)
            raise
        discard()

    def _restore(self, aside: Path) -> None:
        for entry in aside.iterdir():
            target = self.path / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            entry.replace(target)
        aside.rmdir()
        self.write_manifest()

    # manifest -------------------------------------------------------------------------------------------
    def tracked_files(self) -> list[Path]:
        """Files whose hashes the manifest records: config, splits, tokenizers, weights, what an average is of."""
        files = [self.path / CONFIG] + [self.split_path(s, side) for s in SPLITS for side in SIDES]
        files += sorted(p for p in self.shards_dir.glob("*") if p.is_file() and not p.name.startswith("."))
        files += sorted(p for p in self.tokenizer_dir().glob("*") if p.is_file() and not p.name.startswith("."))
        files += [self.weights_path, self.path / UNAVERAGED, self.path / AVERAGE]
        return [p for p in files if p.is_file()]

    def write_manifest(self) -> None:
        manifest.write_manifest(self.path, self.tracked_files(), versions())

    def verify_manifest(self, only: tuple[str, ...] | None = None) -> None:
        """Check the manifest covers the run dir's files and every file it names (under the folders `only`, if
        given) is inside the run dir with its recorded hash."""
        manifest.verify_manifest(self.path, self.tracked_files(), only)
