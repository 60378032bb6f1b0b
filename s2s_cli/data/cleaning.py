"""The first pass of `prepare` over a corpus of any size: decode, check, normalize and hash every pair, on every
core for a big corpus; the cleaned pairs go to a file, in corpus order, for the second pass."""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np

from s2s_cli.data.corpus import (
    CorpusStats,
    aligned_lines,
    check_inputs,
    normalized_rows,
    numbered_lines,
    parallel_rows,
    tsv_rows,
)
from s2s_cli.data.dedupe import Deduplicator, pair_hash
from s2s_cli.data.workers import in_order

BLOCK_LINES = 50_000  # lines a worker cleans at a time
PARALLEL_BYTES = 64 * 2**20  # corpora from this size are cleaned on several processes


def clean_corpus(
    corpus: Path,
    tgt_file: Path | None,
    strict: bool,
    cleaned: Path,
    workers: int,
    progress: Callable[[int], None],
) -> tuple[CorpusStats, np.ndarray, array]:
    """Write the usable pairs of `corpus` (normalized, source<TAB>target: normalized text has no tabs or line breaks)
    to `cleaned`. Returns what was read and dropped (duplicates aside), which of the pairs written are the first of
    their kind, and the corpus line number of each. `progress(lines read)` hears how far it is."""
    check_inputs(corpus, tgt_file)
    size = corpus.stat().st_size + (tgt_file.stat().st_size if tgt_file is not None else 0)
    paths = (corpus, tgt_file)
    blocks = _blocks(corpus, tgt_file)
    results = in_order(partial(_clean_block, paths, strict=strict), blocks, workers if size >= PARALLEL_BYTES else 1)
    stats, dedupe, line_numbers = CorpusStats(), Deduplicator(), array("I")
    with cleaned.open("w", encoding="utf-8", newline="\n") as out:
        for _, (block_stats, text, hashes, numbers) in results:
            stats.merge(block_stats)
            out.write(text)
            dedupe.add_hashes(hashes)
            line_numbers.extend(numbers)
            progress(stats.read)
    return stats, dedupe.firsts(), line_numbers


def _blocks(corpus: Path, tgt_file: Path | None) -> Iterator[list]:
    """The corpus' numbered raw lines (or pairs of lines), BLOCK_LINES at a time."""
    lines = numbered_lines(corpus) if tgt_file is None else aligned_lines(corpus, tgt_file)
    while block := list(itertools.islice(lines, BLOCK_LINES)):
        yield block


def _clean_block(paths: tuple, block: list, strict: bool) -> tuple[CorpusStats, str, np.ndarray, array]:
    """(what it read and dropped, its usable pairs as cleaned lines, their pair hashes, their line numbers)."""
    stats = CorpusStats()
    corpus, tgt_file = paths
    rows = tsv_rows(corpus, block, stats, strict) if tgt_file is None else parallel_rows(*paths, block, stats, strict)
    pairs = list(normalized_rows(rows, stats))
    text = "".join(f"{src}\t{tgt}\n" for _, src, tgt in pairs)
    hashes = np.fromiter((pair_hash(src, tgt) for _, src, tgt in pairs), np.uint64, len(pairs))
    return stats, text, hashes, array("I", (line_no for line_no, _, _ in pairs))
