"""Finding duplicate pairs in a corpus of any size: by a 64-bit hash of each pair, 8 bytes a pair in memory."""

from __future__ import annotations

import hashlib

import numpy as np

BLOCK = 65_536  # pairs hashed before they are checked against the ones seen


def pair_hash(src: str, tgt: str) -> int:
    """A stable 64-bit hash of a normalized pair (the same on every machine and run)."""
    digest = hashlib.blake2b(f"{src}\t{tgt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class Deduplicator:
    """Says for each pair, in order, whether it is the first of its kind. Pairs are checked a block at a time
    against a sorted array of the hashes seen: memory is 8 bytes per distinct pair. Two different pairs with the
    same 64-bit hash (odds about n^2 / 2^65) would count as one."""

    def __init__(self) -> None:
        self.seen = np.empty(0, np.uint64)
        self.block: list[int] = []
        self.first: list[np.ndarray] = []  # per block: which of its pairs are firsts

    def add(self, src: str, tgt: str) -> None:
        self.block.append(pair_hash(src, tgt))
        if len(self.block) == BLOCK:
            self._check()

    def add_hashes(self, hashes: np.ndarray) -> None:
        """pair_hash of each of a run of pairs, in order (as `add` of each)."""
        if self.block:
            self._check()
        self._check(hashes)

    def _check(self, hashes: np.ndarray | None = None) -> None:
        if hashes is None:
            hashes, self.block = np.array(self.block, np.uint64), []
        _, first_in_block = np.unique(hashes, return_index=True)
        first = np.zeros(len(hashes), bool)
        first[first_in_block] = True
        first &= ~np.isin(hashes, self.seen, assume_unique=False)
        self.seen = np.union1d(self.seen, hashes[first])
        self.first.append(first)

    def firsts(self) -> np.ndarray:
        """(pairs added,) bool: True for the first occurrence of each pair."""
        if self.block:
            self._check()
        return np.concatenate(self.first) if self.first else np.zeros(0, bool)
