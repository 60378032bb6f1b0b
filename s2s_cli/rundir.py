"""The run directory: every file name in one place, atomic writes, and a manifest checked on load."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from s2s_cli import __version__
from s2s_cli.config import RunConfig
from s2s_cli.errors import RunDirError

DEFAULT_RUN_DIR = Path("runs/default")
FORMAT_VERSION = 1

CONFIG = "config.json"
MANIFEST = "manifest.json"
DATA = "data"
TOKENIZERS = "tokenizers"
CHECKPOINTS = "checkpoints"
WEIGHTS = "model.weights.h5"
HISTORY = "history.jsonl"
LOGS = "logs"
LOCK = "train.lock"
SPLITS = ("train", "valid", "test")
SIDES = ("src", "tgt")


def versions() -> dict[str, str]:
    """Versions of the software that writes an artifact."""
    import keras
    import tensorflow as tf

    return {"s2s": __version__, "keras": keras.__version__, "tensorflow": tf.__version__}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new temp dir in `parent` with the permissions of a normal mkdir (mkdtemp would make it 0700)."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(0o777 & ~_umask())
    return path


def swap_in_dir(staging: Path, run_dir: Path) -> None:
    """Replace the dir `run_dir` by the fully written `staging` dir; the old one is removed only after the rename."""
    if not run_dir.exists():
        staging.rename(run_dir)
        return
    backup = run_dir.with_name(f".{run_dir.name}.old-{staging.name.rsplit('-', 1)[-1]}")
    run_dir.rename(backup)
    try:
        staging.rename(run_dir)
    except OSError:
        backup.rename(run_dir)
        raise
    shutil.rmtree(backup, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; a run dir is meant to be shared and copied
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirError(f"{path} is not valid JSON ({err}); the run dir is damaged.") from None


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
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY

    @property
    def logs_dir(self) -> Path:
        return self.path / LOGS

    def is_prepared(self) -> bool:
        return (self.path / CONFIG).is_file()

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
        if not self.path.exists():
            raise RunDirError(f"run dir {self.path} does not exist: run `s2s prepare CORPUS --run-dir {self.path}`.")
        if not self.is_prepared():
            raise RunDirError(f"{self.path} has no {CONFIG}: run `s2s prepare CORPUS --run-dir {self.path}` first.")

    def require_weights(self) -> None:
        self.require_prepared()
        if not self.has_weights():
            raise RunDirError(f"{self.path} has no trained model: run `s2s train --run-dir {self.path}` first.")

    # manifest -------------------------------------------------------------------------------------------
    def tracked_files(self) -> list[Path]:
        """Files whose hashes the manifest records: splits, tokenizers, best weights."""
        files = [self.split_path(s, side) for s in SPLITS for side in SIDES]
        files += sorted(p for p in self.tokenizer_dir().glob("*") if p.is_file() and not p.name.startswith("."))
        files.append(self.weights_path)
        return [p for p in files if p.is_file()]

    def write_manifest(self) -> None:
        files = {p.relative_to(self.path).as_posix(): sha256(p) for p in self.tracked_files()}
        manifest = {"format_version": FORMAT_VERSION, "versions": versions(), "files": files}
        write_json_atomic(self.path / MANIFEST, manifest)

    def verify_manifest(self, only: tuple[str, ...] | None = None) -> None:
        """Check that every file the manifest names (under the folders `only`, if given) exists with its hash."""
        manifest = read_json(self.path / MANIFEST)
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise RunDirError(
                f"{self.path} has run-dir format {version}, newer than this s2s understands ({FORMAT_VERSION}): "
                "upgrade s2s."
            )
        for rel, digest in manifest.get("files", {}).items():
            if only is not None and rel.split("/")[0] not in only:
                continue
            path = self.path / rel
            if not path.is_file():
                raise RunDirError(
                    f"{path} is listed in {MANIFEST} but missing: restore it or re-run the command that wrote it."
                )
            if sha256(path) != digest:
                raise RunDirError(
                    f"{path} differs from the file recorded in {MANIFEST} (e.g. a tokenizer from another run): "
                    "restore the original or re-run `s2s prepare`/`s2s train`."
                )
