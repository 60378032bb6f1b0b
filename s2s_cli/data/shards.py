"""A split's token ids on disk, encoded once by `prepare`: one flat array of ids per side and the offset of each
sentence, read through memory maps, so that training holds none of it in memory.

    data/shards/train.src.ids      every sentence's ids, one after the other (uint16, or uint32 above 65,535 pieces)
    data/shards/train.src.offsets  int64: sentence i is ids[offsets[i]:offsets[i + 1]]
    data/shards/meta.json          the id type and each split's number of pairs
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from s2s_cli.data.tokenizers import Tokenizer, load_tokenizer
from s2s_cli.data.workers import in_order
from s2s_cli.errors import RunDirError
from s2s_cli.files import read_json, write_json_atomic

META = "meta.json"
CHUNK = 20_000  # sentences encoded at a time
PARALLEL_FROM = 200_000  # pairs from which a split is encoded on several processes


class Shard:
    """One side of a split: `lengths` (sentences,) and `ids(i)`."""

    def __init__(self, directory: Path, split: str, side: str) -> None:
        meta = read_meta(directory)
        stem = directory / f"{split}.{side}"
        try:
            self.offsets = np.memmap(f"{stem}.offsets", dtype=np.int64, mode="r")
            self.data = np.memmap(f"{stem}.ids", dtype=meta["dtype"], mode="r") if self.offsets[-1] else np.zeros(0)
        except (OSError, ValueError) as err:
            raise RunDirError(
                f"{stem}.* cannot be read ({err}): the run dir is damaged; re-run `s2s prepare`."
            ) from None
        self.lengths = np.diff(self.offsets).astype(np.int32)

    def __len__(self) -> int:
        return len(self.lengths)

    def ids(self, i: int) -> np.ndarray:
        return self.data[self.offsets[i] : self.offsets[i + 1]]


class ShardPairs:
    """A split's source and target shards, read lazily: what batching takes."""

    def __init__(self, directory: Path, split: str) -> None:
        self.src_shard, self.tgt_shard = (Shard(directory, split, side) for side in ("src", "tgt"))
        self.src_lengths, self.tgt_lengths = self.src_shard.lengths, self.tgt_shard.lengths

    def __len__(self) -> int:
        return len(self.src_lengths)

    def src(self, i: int) -> np.ndarray:
        return self.src_shard.ids(i)

    def tgt(self, i: int) -> np.ndarray:
        return self.tgt_shard.ids(i)


def read_meta(directory: Path) -> dict:
    if not (directory / META).is_file():
        raise RunDirError(
            f"{directory.parent.parent} has no encoded training data ({directory / META}): it was prepared by an "
            "older s2s; re-run `s2s prepare` (the trained model still translates)."
        )
    return read_json(directory / META)


def write_shards(
    directory: Path,
    split: str,
    lines: dict[str, Path],
    tokenizers: tuple[Path, str],
    max_len: int,
    drop_too_long: bool,
    workers: int = 1,
) -> tuple[int, int]:
    """Encode a split's text files (lines["src"], lines["tgt"]) with the tokenizers saved in `tokenizers` (their
    folder and kind). With `drop_too_long`, pairs with a side over `max_len` tokens are left out (of the text files
    too), else each side is cut to `max_len`. Returns (pairs written, pairs dropped); updates meta.json."""
    directory.mkdir(parents=True, exist_ok=True)
    src_tok, tgt_tok = (load_tokenizer(tokenizers[0], side, tokenizers[1]) for side in ("src", "tgt"))
    dtype = np.uint16 if max(src_tok.vocab_size, tgt_tok.vocab_size) <= np.iinfo(np.uint16).max else np.uint32
    offsets = {"src": array("q", [0]), "tgt": array("q", [0])}
    written = dropped = 0
    paths = {side: directory / f"{split}.{side}" for side in ("src", "tgt")}
    kept_text = {side: lines[side].with_name(f".{lines[side].name}.kept") for side in ("src", "tgt")}
    with (
        open(f"{paths['src']}.ids", "wb") as src_out,
        open(f"{paths['tgt']}.ids", "wb") as tgt_out,
        kept_text["src"].open("w", encoding="utf-8") as src_text,
        kept_text["tgt"].open("w", encoding="utf-8") as tgt_text,
    ):
        for (src_lines, tgt_lines), ((src_ids, src_lens), (tgt_ids, tgt_lens)) in _encoded(lines, tokenizers, workers):
            keep = (src_lens <= max_len) & (tgt_lens <= max_len) if drop_too_long else np.ones(len(src_lens), bool)
            dropped += int(len(keep) - keep.sum())
            src_text.write("".join(line + "\n" for line, kept in zip(src_lines, keep) if kept))
            tgt_text.write("".join(line + "\n" for line, kept in zip(tgt_lines, keep) if kept))
            for side, ids, lengths, out in (("src", src_ids, src_lens, src_out), ("tgt", tgt_ids, tgt_lens, tgt_out)):
                ids, lengths = _kept_ids(ids, lengths, keep, max_len)
                out.write(ids.astype(dtype).tobytes())
                offsets[side].extend((offsets[side][-1] + np.cumsum(lengths)).tolist())
            written += int(keep.sum())
    for side in ("src", "tgt"):
        with open(f"{paths[side]}.offsets", "wb") as f:
            offsets[side].tofile(f)
        kept_text[side].replace(lines[side])
    meta = (
        read_json(directory / META) if (directory / META).is_file() else {"dtype": np.dtype(dtype).name, "splits": {}}
    )
    meta["splits"][split] = written
    write_json_atomic(directory / META, meta)
    return written, dropped


def _encoded(lines: dict[str, Path], tokenizers: tuple[Path, str], workers: int) -> Iterator[tuple]:
    """(lines, ids) of each chunk of CHUNK line pairs, in order: ids as (source ids, target ids); on `workers`
    fresh processes."""
    return in_order(_encode_chunk, _chunks(lines), workers, initializer=_load, initargs=(tokenizers,))


_TOKENIZERS: tuple[Tokenizer, Tokenizer] | None = None


def _load(tokenizers: tuple[Path, str]) -> None:
    global _TOKENIZERS
    _TOKENIZERS = tuple(load_tokenizer(tokenizers[0], side, tokenizers[1]) for side in ("src", "tgt"))


def _encode_chunk(chunk: tuple[list[str], list[str]]) -> tuple:
    """((source ids, lengths), (target ids, lengths)): each side's ids of all lines in one flat array."""
    return tuple(_flat(tok.encode(lines)) for tok, lines in zip(_TOKENIZERS, chunk))


def _flat(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, seqs), np.int64, len(seqs))
    return np.fromiter(itertools.chain.from_iterable(seqs), np.int32, int(lengths.sum())), lengths


def _kept_ids(ids: np.ndarray, lengths: np.ndarray, keep: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The ids and lengths of the sequences `keep` marks, each cut to its first `max_len` ids."""
    starts = np.cumsum(lengths) - lengths
    position = np.arange(len(ids)) - np.repeat(starts, lengths)  # of each id in its sequence
    return ids[np.repeat(keep, lengths) & (position < max_len)], np.minimum(lengths, max_len)[keep]


def _chunks(lines: dict[str, Path]) -> Iterator[tuple[list[str], list[str]]]:
    with lines["src"].open(encoding="utf-8") as src_file, lines["tgt"].open(encoding="utf-8") as tgt_file:
        src, tgt = [], []
        for s, t in zip(src_file, tgt_file):
            src.append(s.rstrip("\n"))
            tgt.append(t.rstrip("\n"))
            if len(src) == CHUNK:
                yield src, tgt
                src, tgt = [], []
        if src:
            yield src, tgt
