"""What every engine shares, without TensorFlow: results, sampling options, output length limits, the length
penalty, and how many batches to decode at once."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

LENGTH_RATIO, LENGTH_EXTRA = 1.5, 10  # the longest output: LENGTH_RATIO x the source's tokens + LENGTH_EXTRA
MAX_WORKERS = 4


@dataclass(frozen=True)
class Translation:
    text: str
    score: float


@dataclass(frozen=True)
class Alignment:
    """How much each target token attended to each source token when it was predicted (rows sum to 1)."""

    source_tokens: list[str]
    target_tokens: list[str]
    weights: list[list[float]]  # (target tokens, source tokens)


@dataclass(frozen=True)
class Sampling:
    """Sampling instead of search (for back-translation): from the `top_k` most likely tokens (0: all), within
    the smallest set of probability `top_p`, at `temperature`; `seed` makes it reproducible for the same input."""

    top_k: int = 0
    top_p: float = 1.0
    temperature: float = 1.0
    seed: int = 0


def output_limits(src_lengths, ratio: float = LENGTH_RATIO, extra: int = LENGTH_EXTRA, cap: int = 512) -> np.ndarray:
    """Longest output per sentence, proportional to its source length: (batch,) int32."""
    lengths = np.asarray(src_lengths, np.float32)
    return np.minimum((lengths * np.float32(ratio)).astype(np.int32) + extra, cap).astype(np.int32)


def length_penalty(length, alpha: float):
    """GNMT length penalty ((5 + length) / 6) ** alpha; alpha 0 compares raw log-probabilities."""
    return ((5.0 + length) / 6.0) ** alpha


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_workers(requested: int | None = None) -> int:
    """Batches decoded at once on a CPU: as asked, else one per core (at most MAX_WORKERS)."""
    return requested or min(cpu_cores(), MAX_WORKERS)
