"""Finding duplicate pairs in a corpus of any size: by a 64-bit hash of each pair, 8 bytes a pair in memory."""

from __future__ import annotations

import hashlib

import numpy as np

BLOCK = 1 << 20  # hashes gathered before they are checked against the ones seen


def pair_hash(src: str, tgt: str) -> int:
    """A stable 64-bit hash of a normalized pair (the same on every machine and run)."""
    digest = hashlib.blake2b(f"{src}\t{tgt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class Deduplicator:
    """Says for each pair, in order, whether it is the first of its kind. Hashes are checked a block at a time
    against a sorted array of those seen (a binary search each), and the block's new ones merged in (a linear
    merge of two sorted runs): memory is 8 bytes per distinct pair, time about linear in the corpus. Two
    different pairs with the same 64-bit hash (odds about n^2 / 2^65) would count as one."""

    def __init__(self) -> None:
        self.seen = np.empty(0, np.uint64)
        self.pending: list[np.ndarray] = []
        self.pending_count = 0
        self.first: list[np.ndarray] = []  # per block: which of its pairs are firsts

    def add_hashes(self, hashes: np.ndarray) -> None:
        """pair_hash of each of the next pairs, in order."""
        self.pending.append(np.asarray(hashes, np.uint64))
        self.pending_count += len(hashes)
        if self.pending_count >= BLOCK:
            self._check()

    def _check(self) -> None:
        hashes = np.concatenate(self.pending) if self.pending else np.empty(0, np.uint64)
        self.pending, self.pending_count = [], 0
        _, first_in_block = np.unique(hashes, return_index=True)
        first = np.zeros(len(hashes), bool)
        first[first_in_block] = True
        if len(self.seen):
            at = np.minimum(np.searchsorted(self.seen, hashes), len(self.seen) - 1)
            first &= self.seen[at] != hashes
        new = hashes[first]
        self.seen = np.sort(np.concatenate([self.seen, np.sort(new)]), kind="stable")  # two sorted runs: merged
        self.first.append(first)

    def firsts(self) -> np.ndarray:
        """(pairs added,) bool: True for the first occurrence of each pair."""
        if self.pending:
            self._check()
        return np.concatenate(self.first) if self.first else np.zeros(0, bool)
