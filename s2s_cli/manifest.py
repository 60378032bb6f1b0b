"""manifest.json: the SHA-256 of every file a run dir's model depends on, checked before the files are used.

Its keys are paths relative to the run dir; a key that leaves the run dir, or a manifest that does not cover the
run dir's own files, means the manifest is damaged (a run dir is never trusted further than its manifest).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from s2s_cli.errors import RunDirError
from s2s_cli.files import read_json, sha256, write_json_atomic

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: config.json is covered too
UNCOVERED_BEFORE = {1: {"config.json"}}  # files an older format did not record


class ManifestDamaged(RunDirError):
    """manifest.json is missing, unreadable, or does not describe the run dir."""


def write_manifest(root: Path, files: Iterable[Path], versions: dict[str, str]) -> None:
    hashes = {p.relative_to(root).as_posix(): sha256(p) for p in files}
    write_json_atomic(root / MANIFEST, {"format_version": FORMAT_VERSION, "versions": versions, "files": hashes})


def verify_manifest(root: Path, files: Iterable[Path], only: tuple[str, ...] | None = None) -> None:
    """Check that the manifest covers `files` (the run dir's own, as found on disk) and that every file it names
    (under the folders `only`, if given) is inside the run dir, exists and has its hash."""
    recorded, version = _read(root)
    wanted = {p.relative_to(root).as_posix() for p in files} - UNCOVERED_BEFORE.get(version, set())
    selected = {rel: digest for rel, digest in recorded.items() if only is None or rel.split("/")[0] in only}
    uncovered = sorted(rel for rel in wanted - set(recorded) if only is None or rel.split("/")[0] in only)
    if uncovered:
        raise ManifestDamaged(
            f"{root / MANIFEST} does not cover {', '.join(uncovered)}: the manifest is damaged; "
            "`s2s train --force` rebuilds it (and retrains), or re-run `s2s prepare`."
        )
    inside = root.resolve()
    for rel, digest in selected.items():
        path = root / rel
        if inside not in path.resolve().parents:
            raise ManifestDamaged(f"{root / MANIFEST} names {rel!r}, which is not inside the run dir: it is damaged.")
        if not path.is_file():
            raise RunDirError(
                f"{path} is listed in {MANIFEST} but missing: restore it or re-run the command that wrote it."
            )
        if sha256(path) != digest:
            raise RunDirError(
                f"{path} differs from the file recorded in {MANIFEST} (e.g. a tokenizer from another run): "
                "restore the original or re-run `s2s prepare`/`s2s train`."
            )


def _read(root: Path) -> tuple[dict[str, str], int]:
    path = root / MANIFEST
    try:
        manifest: Any = read_json(path)
    except RunDirError as err:
        raise ManifestDamaged(
            f"{err} `s2s train --force` rebuilds it (and retrains), or re-run `s2s prepare`."
        ) from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise RunDirError(
            f"{root} has run-dir format {version}, newer than this s2s understands ({FORMAT_VERSION}): upgrade s2s."
        )
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if (
        not isinstance(version, int)
        or not isinstance(files, dict)
        or not all(isinstance(k, str) and isinstance(v, str) and _is_relative(k) for k, v in files.items())
    ):
        raise ManifestDamaged(
            f"{path} is damaged (no format version, or entries that are not relative file names and hashes): "
            "`s2s train --force` rebuilds it (and retrains), or re-run `s2s prepare`."
        )
    return files, version


def _is_relative(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and ".." not in parts and "\\" not in name
