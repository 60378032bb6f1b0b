"""Atomic file writes and directory swaps: a crash or a full disk leaves the previous file or folder whole."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from s2s_cli.errors import DataError, RunDirError


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


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


def check_replaceable(target: Path, force: bool, ours: bool, what: str, option: str, keep: Sequence[Path] = ()) -> None:
    """Refuse to replace `target` unless it is missing or empty, or `force` is given and it is recognizably `what`
    (`ours`): never the current directory or a folder above it, nor a folder holding one of the paths in `keep`."""
    if not target.exists() and not target.is_symlink():
        return
    if not target.exists():
        raise RunDirError(
            f"{target} is a symlink that leads nowhere (broken, or a loop): remove it or choose another {option}."
        )
    if target.is_dir() and not any(target.iterdir()):
        return
    if not force:
        raise RunDirError(f"{target} already exists: pass --force to replace it, or choose another {option}.")
    resolved, cwd = target.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise RunDirError(
            f"{target} is the current directory or holds it, which --force never deletes: choose another {option}."
        )
    for path in keep:
        if resolved == path.resolve() or resolved in path.resolve().parents:
            raise RunDirError(f"{target} holds {path}, which --force would delete: choose another {option}.")
    if not ours:
        raise RunDirError(
            f"{target} is not {what}, so --force will not delete it: choose another {option}, or remove it yourself."
        )


def swap_in_dir(staging: Path, target: Path) -> None:
    """Replace the dir `target` by the fully written `staging` dir; the old one is removed only after the rename."""
    if not target.exists():
        staging.rename(target)
        return
    backup = target.with_name(f".{target.name}.old-{staging.name.rsplit('-', 1)[-1]}")
    target.rename(backup)
    try:
        staging.rename(target)
    except OSError:
        backup.rename(target)
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


def write_output(path: Path, text: str) -> None:
    """Write a file the user named: a regular file (or a new one) atomically, through a symlink to the file it
    points to, and a device or FIFO (/dev/stdout, a pipe) in place, never replacing it with a regular file."""
    try:
        mode = path.stat().st_mode  # follows symlinks
    except FileNotFoundError:
        mode = None
    except OSError as err:
        raise DataError(f"cannot write {path}: {err.strerror}; choose another path.") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise DataError(f"{path} is a directory: give a file name.")
    if mode is not None and not stat.S_ISREG(mode):
        with path.open("w", encoding="utf-8") as f:
            f.write(text)
        return
    write_text_atomic(path.resolve() if path.is_symlink() else path, text)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirError(f"{path} is not valid JSON ({err}); the run dir is damaged.") from None
