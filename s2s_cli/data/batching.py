"""Training batches: length-bucketed within shuffle windows, sized by tokens or sentences, seeded per epoch,
fed through tf.data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import tensorflow as tf

from s2s_cli.data.tokenizers import Tokenizer
from s2s_cli.rundir import RunDir
from s2s_cli.tokens import BOS, EOS, PAD

Batch = tuple[tuple[np.ndarray, np.ndarray], np.ndarray]
WINDOW = 200_000  # pairs sorted by length together; a corpus up to this size is sorted whole


class Pairs(Protocol):
    """A split's token ids: in memory (EncodedPairs) or on disk (shards.ShardPairs)."""

    src_lengths: np.ndarray
    tgt_lengths: np.ndarray

    def __len__(self) -> int: ...

    def src(self, i: int) -> Sequence[int]: ...

    def tgt(self, i: int) -> Sequence[int]: ...


class EncodedPairs:
    """Token ids of a split held in memory (validation, tests)."""

    def __init__(self, src: list[list[int]], tgt: list[list[int]]) -> None:
        self.src_ids, self.tgt_ids = src, tgt
        self.src_lengths = np.array([len(s) for s in src], np.int32)
        self.tgt_lengths = np.array([len(t) for t in tgt], np.int32)

    def __len__(self) -> int:
        return len(self.src_ids)

    def src(self, i: int) -> list[int]:
        return self.src_ids[i]

    def tgt(self, i: int) -> list[int]:
        return self.tgt_ids[i]


class SampledPairs:
    """A training split whose batches are segmented anew by SentencePiece sampling (subword regularization),
    reproducibly from (seed, epoch, the batch's pairs); validation and translation never sample.

    Batches are cut by the lengths of the stored segmentation, and a sentence whose sampled segmentation is longer
    than the batch's longest stored one on its side keeps its stored one, so a sampled batch is never padded wider
    than the stored batch: the step costs what it costs without sampling."""

    def __init__(self, pairs: Pairs, tokenizers: tuple, alpha: float, max_len: int, seed: int, epoch: int) -> None:
        self.pairs, self.tokenizers, self.alpha, self.max_len = pairs, tokenizers, alpha, max_len
        self.seed, self.epoch = seed, epoch
        self.src_lengths, self.tgt_lengths = pairs.src_lengths, pairs.tgt_lengths

    def __len__(self) -> int:
        return len(self.pairs)

    def src(self, i: int) -> Sequence[int]:
        return self.pairs.src(i)

    def tgt(self, i: int) -> Sequence[int]:
        return self.pairs.tgt(i)

    def take(self, index: np.ndarray) -> tuple[list, list]:
        seeds = np.random.SeedSequence([self.seed, self.epoch, *index.tolist()]).generate_state(2)
        stored = batch_ids(self.pairs, index)
        src, tgt = (
            _fit(tok.sample(side, self.alpha, int(seed)), side, self.max_len)
            for tok, side, seed in zip(self.tokenizers, stored, seeds)
        )
        return src, tgt


def _fit(sampled: list[list[int]], stored: Sequence[Sequence[int]], max_len: int) -> list[Sequence[int]]:
    """Each sampled segmentation cut to `max_len`, or the stored one where it is longer than the longest stored."""
    width = max(len(ids) for ids in stored)
    cut = (ids[:max_len] for ids in sampled)
    return [ids if len(ids) <= width else old for ids, old in zip(cut, stored)]


def batch_ids(pairs: Pairs, index: np.ndarray) -> tuple[list, list]:
    """The source and target ids of the pairs at `index`: as stored, or resegmented by a SampledPairs."""
    if isinstance(pairs, SampledPairs):
        return pairs.take(index)
    return [pairs.src(i) for i in index], [pairs.tgt(i) for i in index]


def read_split(run: RunDir, split: str) -> tuple[list[str], list[str]]:
    """A split's source and target lines."""
    src, tgt = (run.split_path(split, side).read_text(encoding="utf-8").splitlines() for side in ("src", "tgt"))
    return src, tgt


def encode_pairs(src: list[str], tgt: list[str], src_tok: Tokenizer, tgt_tok: Tokenizer, max_len: int) -> EncodedPairs:
    """Token ids of each side, cut to `max_len`."""
    return EncodedPairs([ids[:max_len] for ids in src_tok.encode(src)], [ids[:max_len] for ids in tgt_tok.encode(tgt)])


def make_batches(
    pairs: Pairs,
    batch_tokens: int,
    batch_size: int = 0,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    window: int = WINDOW,
) -> list[np.ndarray]:
    """Group sentence indices into batches of similar length; batch order shuffled by (seed, epoch).

    The pairs are shuffled into windows of `window` (a smaller split is one window), each sorted by length, so
    that a batch holds sentences of similar length without the whole corpus being sorted at once. A batch holds
    at most `batch_size` sentences if that is set, else as many as keep rows * longest side (padded) within
    `batch_tokens`.
    """
    rng = np.random.default_rng([seed, epoch])
    src_len, tgt_len = pairs.src_lengths, pairs.tgt_lengths + 1
    count = len(pairs)
    windows = (
        [np.arange(count)]
        if count <= window or not shuffle
        else np.array_split(rng.permutation(count), -(-count // window))
    )
    batches: list[np.ndarray] = []
    for index in windows:
        tie_break = rng.random(len(index)) if shuffle else np.arange(len(index))
        order = index[np.lexsort((tie_break, tgt_len[index], src_len[index]))]  # by source length, then target
        batches += _cut(order, src_len, tgt_len, batch_tokens, batch_size)
    if shuffle:
        rng.shuffle(batches)
    return batches


def _cut(order: np.ndarray, src_len, tgt_len, batch_tokens: int, batch_size: int) -> list[np.ndarray]:
    batches, current, longest = [], [], 0
    for i in order.tolist():
        width = max(longest, src_len[i], tgt_len[i])
        full = len(current) >= batch_size if batch_size else (len(current) + 1) * width > batch_tokens
        if current and full:
            batches.append(np.array(current))
            current, width = [], max(src_len[i], tgt_len[i])
        current.append(i)
        longest = width
    if current:
        batches.append(np.array(current))
    return batches


def pad_ids(seqs: Sequence[Sequence[int]], prefix: Sequence[int] = (), suffix: Sequence[int] = ()) -> np.ndarray:
    """(batch, longest) int32 array of prefix + seq + suffix, right-padded with <pad>."""
    rows = [[*prefix, *s, *suffix] for s in seqs]
    out = np.full((len(rows), max(1, max(len(r) for r in rows))), PAD, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def collate(pairs: Pairs, index: np.ndarray) -> Batch:
    """Teacher forcing: decoder input `<s> y1..yn`, label `y1..yn </s>`, both padded to one length."""
    src, tgt = batch_ids(pairs, index)
    src = pad_ids(src)
    return (src, pad_ids(tgt, prefix=(BOS,))), pad_ids(tgt, suffix=(EOS,))


def dataset(pairs: Pairs, batches: Sequence[np.ndarray], start: int = 0) -> tf.data.Dataset:
    """A prefetching tf.data pipeline over `batches[start:]`, padding done off the training thread."""

    def load(position: np.int64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        (src, tgt_in), tgt_out = collate(pairs, batches[int(position)])
        return src, tgt_in, tgt_out

    def tensors(position: tf.Tensor) -> tuple[tuple[tf.Tensor, tf.Tensor], tf.Tensor]:
        src, tgt_in, tgt_out = tf.numpy_function(load, [position], [tf.int32] * 3)
        for t in (src, tgt_in, tgt_out):
            t.set_shape((None, None))
        return (src, tgt_in), tgt_out

    # Not Dataset.from_generator: that sets glibc's trim threshold to 128 KB for the whole process, so every
    # large tensor freed goes back to the kernel and the next one page-faults (memory.py). The buffer is fixed, so
    # autotuning has nothing to tune; its thread would take CPU from the compute threads and hold up the deletion
    # of every iterator for seconds.
    options = tf.data.Options()
    options.autotune.enabled = False
    return tf.data.Dataset.range(start, len(batches)).map(tensors).prefetch(4).with_options(options)
