"""Training batches: length-bucketed, sized by tokens or sentences, seeded per epoch, fed through tf.data."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from s2s_cli.data.tokenizers import Tokenizer
from s2s_cli.rundir import RunDir
from s2s_cli.tokens import BOS, EOS, PAD

Batch = tuple[tuple[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EncodedPairs:
    """Token ids of a split, encoded once and kept in memory for every epoch."""

    src: list[list[int]]
    tgt: list[list[int]]

    def __len__(self) -> int:
        return len(self.src)

    def target_tokens(self) -> int:
        """Label tokens per epoch: each target plus its </s>."""
        return sum(len(t) + 1 for t in self.tgt)


def read_split(run: RunDir, split: str) -> tuple[list[str], list[str]]:
    """A split's source and target lines."""
    src, tgt = (run.split_path(split, side).read_text(encoding="utf-8").splitlines() for side in ("src", "tgt"))
    return src, tgt


def encode_pairs(src: list[str], tgt: list[str], src_tok: Tokenizer, tgt_tok: Tokenizer, max_len: int) -> EncodedPairs:
    """Token ids of each side, cut to `max_len`."""
    return EncodedPairs([ids[:max_len] for ids in src_tok.encode(src)], [ids[:max_len] for ids in tgt_tok.encode(tgt)])


def make_batches(
    pairs: EncodedPairs,
    batch_tokens: int,
    batch_size: int = 0,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
) -> list[np.ndarray]:
    """Group sentence indices into batches of similar length; batch order shuffled by (seed, epoch).

    A batch holds at most `batch_size` sentences if that is set, else as many as keep
    rows * longest side (padded) within `batch_tokens`.
    """
    rng = np.random.default_rng([seed, epoch])
    src_len = np.array([len(s) for s in pairs.src])
    tgt_len = np.array([len(t) + 1 for t in pairs.tgt])
    tie_break = rng.random(len(pairs)) if shuffle else np.arange(len(pairs))
    order = np.lexsort((tie_break, tgt_len, src_len))  # by source length, then target length
    batches, current, longest = [], [], 0
    for i in order:
        width = max(longest, src_len[i], tgt_len[i])
        full = len(current) >= batch_size if batch_size else (len(current) + 1) * width > batch_tokens
        if current and full:
            batches.append(np.array(current))
            current, width = [], max(src_len[i], tgt_len[i])
        current.append(i)
        longest = width
    if current:
        batches.append(np.array(current))
    if shuffle:
        rng.shuffle(batches)
    return batches


def pad_ids(seqs: Sequence[Sequence[int]], prefix: Sequence[int] = (), suffix: Sequence[int] = ()) -> np.ndarray:
    """(batch, longest) int32 array of prefix + seq + suffix, right-padded with <pad>."""
    rows = [[*prefix, *s, *suffix] for s in seqs]
    out = np.full((len(rows), max(1, max(len(r) for r in rows))), PAD, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def collate(pairs: EncodedPairs, index: np.ndarray) -> Batch:
    """Teacher forcing: decoder input `<s> y1..yn`, label `y1..yn </s>`, both padded to one length."""
    src = pad_ids([pairs.src[i] for i in index])
    tgt = [pairs.tgt[i] for i in index]
    return (src, pad_ids(tgt, prefix=(BOS,))), pad_ids(tgt, suffix=(EOS,))


def dataset(pairs: EncodedPairs, batches: Sequence[np.ndarray], start: int = 0) -> tf.data.Dataset:
    """A prefetching tf.data pipeline over `batches[start:]`, padding done off the training thread."""

    def generate() -> Iterator[Batch]:
        for index in batches[start:]:
            yield collate(pairs, index)

    spec = tf.TensorSpec((None, None), tf.int32)
    return tf.data.Dataset.from_generator(generate, output_signature=((spec, spec), spec)).prefetch(4)
