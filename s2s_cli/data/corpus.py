"""Read a parallel corpus (TSV or two aligned files), clean it, and split it deterministically."""

from __future__ import annotations

import contextlib
import stat
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import BinaryIO

import numpy as np

from s2s_cli.errors import DataError

Pair = tuple[str, str]
MAX_EXAMPLE_LINES = 5
MAX_LINE_BYTES = 64 * 1024  # longer lines hold no sentence pair: they are dropped without being read whole
SNIFF_BYTES = 64 * 1024
TOO_LONG = "line over 64 KiB"
_END = object()  # what a file that ended gives zip_longest


@dataclass
class CorpusStats:
    """What reading a corpus kept and dropped, by reason, with the first line numbers of each."""

    read: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[int]] = field(default_factory=dict)
    extra_columns: int = 0

    def drop(self, reason: str, line_no: int) -> None:
        self.dropped[reason] += 1
        lines = self.examples.setdefault(reason, [])
        if len(lines) < MAX_EXAMPLE_LINES:
            lines.append(line_no)

    def merge(self, later: CorpusStats) -> None:
        """Add what reading the lines after these found (kept is left alone)."""
        self.read += later.read
        self.extra_columns += later.extra_columns
        self.dropped.update(later.dropped)
        for reason, lines in later.examples.items():
            mine = self.examples.setdefault(reason, [])
            mine.extend(lines[: MAX_EXAMPLE_LINES - len(mine)])

    def describe_drops(self) -> str:
        if not self.dropped:
            return "nothing was dropped"
        return "; ".join(
            f"{count} {reason} (e.g. line {', '.join(map(str, self.examples[reason]))})"
            for reason, count in self.dropped.most_common()
        )


def normalize(text: str) -> str:
    """NFC-normalize, remove NUL/BOM, and collapse all whitespace (tabs included) to single spaces."""
    # NUL/BOM go first: removed after NFC, they could leave a base letter and a combining mark un-composed.
    text = unicodedata.normalize("NFC", text.replace("\x00", "").replace("\ufeff", ""))
    return " ".join(text.split())


def _check_file(path: Path, regular: bool = True) -> None:
    """A readable file of text; `regular`: a file on disk, not a pipe or device (a corpus is read more than once)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; check the path.") from None
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror}); check the path.") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{path} is a directory; give a corpus file (TSV, or a source and a target file).")
    if regular and not stat.S_ISREG(mode):
        raise DataError(f"{path} is not a regular file (a pipe or a device): save the corpus to a file first.")
    try:
        with path.open("rb") if stat.S_ISREG(mode) else contextlib.nullcontext() as f:
            head = f.read(SNIFF_BYTES) if f else b""  # a pipe is not read ahead: that would consume it
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror}); check its permissions.") from None
    problem = _not_utf8_text(head)
    if problem:
        raise DataError(f"{path} {problem}")


def _not_utf8_text(head: bytes) -> str | None:
    """What a file's first bytes say it is when it is not UTF-8 text (None: it may well be)."""
    if head.startswith(b"\x1f\x8b"):
        return "is gzip-compressed: decompress it first (gunzip)."
    # UTF-16 text of a script in the first 256 code points has a NUL in every other byte, and few in the rest
    zeros = sorted(half.count(0) / max(len(half), 1) for half in (head[0::2], head[1::2]))
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) >= 8 and zeros[1] > 0.3 and zeros[0] < 0.05):
        return "looks like UTF-16 text: convert it to UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)."
    if len(head) >= 64 and head.count(0) > len(head) // 10:
        return "is not a text file (it holds many NUL bytes, as programs and archives do): give a UTF-8 corpus."
    return None


def _raw_lines(path: Path) -> Iterator[bytes | None]:
    with path.open("rb") as f:
        yield from raw_lines(f)


def raw_lines(stream: BinaryIO) -> Iterator[bytes | None]:
    """A stream's lines without their line ends; None for a line over MAX_LINE_BYTES, which is not read whole."""
    while line := stream.readline(MAX_LINE_BYTES + 1):
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line.rstrip(b"\n").rstrip(b"\r")


def _decode(raw: bytes | None, path: Path, line_no: int, stats: CorpusStats, strict: bool) -> str | None:
    if raw is None:
        if strict:
            raise DataError(f"{path}:{line_no}: {TOO_LONG}; fix the line or drop --strict to skip it.")
        stats.drop(TOO_LONG, line_no)
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if strict:
            raise DataError(f"{path}:{line_no}: invalid UTF-8; fix the line or drop --strict to skip it.") from None
        stats.drop("invalid UTF-8", line_no)
        return None


def _read_tsv(path: Path, stats: CorpusStats, strict: bool) -> Iterator[tuple[int, str, str]]:
    return tsv_rows(path, numbered_lines(path), stats, strict)


def numbered_lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """(line number, raw line) of each line of a file (None for a line over MAX_LINE_BYTES)."""
    return enumerate(_raw_lines(path), start=1)


def tsv_rows(
    path: Path, lines: Iterable[tuple[int, bytes | None]], stats: CorpusStats, strict: bool
) -> Iterator[tuple[int, str, str]]:
    """(line number, source, target) of each numbered raw line of the TSV `path` that has two columns."""
    for line_no, raw in lines:
        stats.read += 1
        text = _decode(raw, path, line_no, stats, strict)
        if text is None:
            continue
        columns = text.split("\t")
        if len(columns) < 2:
            if strict and text.strip():
                raise DataError(f"{path}:{line_no}: one column, expected source<TAB>target; fix it or drop --strict.")
            stats.drop("blank line" if not text.strip() else "one column", line_no)
            continue
        if len(columns) > 2:
            stats.extra_columns += 1
        yield line_no, columns[0], columns[1]


def _read_parallel(src_path: Path, tgt_path: Path, stats: CorpusStats, strict: bool) -> Iterator[tuple[int, str, str]]:
    return parallel_rows(src_path, tgt_path, aligned_lines(src_path, tgt_path), stats, strict)


def aligned_lines(src_path: Path, tgt_path: Path) -> Iterator[tuple[int, bytes | None, bytes | None]]:
    """(line number, source line, target line) of two line-aligned files; a DataError when their lengths differ."""
    pairs = zip_longest(_raw_lines(src_path), _raw_lines(tgt_path), fillvalue=_END)
    for line_no, (src_raw, tgt_raw) in enumerate(pairs, start=1):
        if src_raw is _END or tgt_raw is _END:
            n_src, n_tgt = (line_no - 1, None) if src_raw is _END else (None, line_no - 1)
            n_src = n_src if n_src is not None else sum(1 for _ in _raw_lines(src_path))
            n_tgt = n_tgt if n_tgt is not None else sum(1 for _ in _raw_lines(tgt_path))
            raise DataError(f"{src_path} has {n_src} lines but {tgt_path} has {n_tgt}: the files must be line-aligned.")
        yield line_no, src_raw, tgt_raw


def parallel_rows(
    src_path: Path,
    tgt_path: Path,
    lines: Iterable[tuple[int, bytes | None, bytes | None]],
    stats: CorpusStats,
    strict: bool,
) -> Iterator[tuple[int, str, str]]:
    """(line number, source, target) of each numbered pair of raw lines that decodes."""
    for line_no, src_raw, tgt_raw in lines:
        stats.read += 1
        src = _decode(src_raw, src_path, line_no, stats, strict)
        tgt = _decode(tgt_raw, tgt_path, line_no, stats, strict) if src is not None else None
        if src is not None and tgt is not None:
            yield line_no, src, tgt


def clean_pairs(
    path: Path, tgt_path: Path | None, stats: CorpusStats, strict: bool = False
) -> Iterator[tuple[int, str, str]]:
    """(line number, source, target) of each usable pair of a TSV (src<TAB>tgt[<TAB>...]) or two aligned files,
    normalized, streamed; what is dropped (duplicates aside) is counted in `stats`."""
    check_inputs(path, tgt_path)
    rows = _read_tsv(path, stats, strict) if tgt_path is None else _read_parallel(path, tgt_path, stats, strict)
    return normalized_rows(rows, stats)


def check_inputs(path: Path, tgt_path: Path | None) -> None:
    """A DataError naming the problem unless the corpus (and its target file) are readable UTF-8 text files."""
    _check_file(path)
    if tgt_path is not None:
        _check_file(tgt_path)


def normalized_rows(rows: Iterable[tuple[int, str, str]], stats: CorpusStats) -> Iterator[tuple[int, str, str]]:
    """The rows normalized, those with an empty side counted in `stats` and left out."""
    for line_no, src_raw, tgt_raw in rows:
        src, tgt = normalize(src_raw), normalize(tgt_raw)
        if src and tgt:
            yield line_no, src, tgt
        else:
            stats.drop("empty side", line_no)


def check_usable(path: Path, stats: CorpusStats) -> None:
    """A corpus without one usable pair is a DataError saying why."""
    if stats.kept:
        return
    if stats.read == 0:
        raise DataError(f"{path} is empty: give a corpus with one source<TAB>target pair per line.")
    raise DataError(f"no usable pairs in {path}: read {stats.read} lines, {stats.describe_drops()}.")


def read_corpus(path: Path, tgt_path: Path | None = None, strict: bool = False) -> tuple[list[Pair], CorpusStats]:
    """All usable pairs of a corpus in memory, duplicates dropped (for validation and test sets, and doctor)."""
    stats = CorpusStats()
    seen: set[Pair] = set()
    pairs: list[Pair] = []
    for line_no, src, tgt in clean_pairs(path, tgt_path, stats, strict):
        if (src, tgt) in seen:
            stats.drop("duplicate", line_no)
        else:
            seen.add((src, tgt))
            pairs.append((src, tgt))
    stats.kept = len(pairs)
    check_usable(path, stats)
    return pairs, stats


MAX_HELD_OUT = 3_000  # the most pairs a validation or test set given as a fraction gets


def held_out_sizes(valid_size: float, test_size: float, total: int) -> tuple[int, int]:
    """The validation and test sizes: a count (>= 1), or a fraction of `total` (< 1) of at most MAX_HELD_OUT."""
    n_valid, n_test = (
        int(size) if size >= 1 else min(int(round(size * total)), MAX_HELD_OUT) for size in (valid_size, test_size)
    )
    if n_valid + n_test >= total:
        raise DataError(
            f"--valid-size ({n_valid}) + --test-size ({n_test}) leave no training pairs out of {total}: "
            "make them smaller."
        )
    return n_valid, n_test


TRAIN, VALID, TEST = 0, 1, 2


def assign_splits(total: int, n_valid: int, n_test: int, seed: int) -> np.ndarray:
    """(total,) uint8: the split of each pair (TRAIN, VALID or TEST), drawn with `seed`; 1 byte a pair."""
    chosen = np.random.default_rng(seed).choice(total, n_valid + n_test, replace=False)
    roles = np.full(total, TRAIN, np.uint8)
    roles[chosen[:n_valid]], roles[chosen[n_valid:]] = VALID, TEST
    return roles


def iter_lines(path: Path) -> Iterator[str]:
    """Stream a UTF-8 text file's lines (without line ends); a bad file or line is a DataError. A pipe works."""
    _check_file(path, regular=False)
    yield from decode_lines(_raw_lines(path), str(path))


def decode_lines(lines: Iterator[bytes | None], name: str) -> Iterator[str]:
    """`raw_lines` as text; a line of invalid UTF-8 or over MAX_LINE_BYTES is a DataError naming `name` and it."""
    for line_no, raw in enumerate(lines, start=1):
        if raw is None:
            raise DataError(f"{name}:{line_no}: {TOO_LONG}; split it into sentences.")
        try:
            yield raw.decode("utf-8").lstrip("\ufeff") if line_no == 1 else raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{name}:{line_no}: invalid UTF-8; convert the text to UTF-8.") from None


def read_lines(path: Path) -> list[str]:
    return list(iter_lines(path))
