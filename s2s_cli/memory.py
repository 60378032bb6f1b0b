"""The C allocator, set for a process that frees and allocates the same large tensors at every step.

glibc hands blocks above its mmap threshold straight back to the kernel when they are freed, and trims the heap
whenever its free top exceeds the trim threshold; TensorFlow's CPU tensors come from that allocator, so with the
defaults every step's activations and gradients are mapped, page-faulted and zeroed afresh (bench/RESULTS.md).
Keeping freed blocks in the heap lets the next step reuse them; the process holds its high-water mark, which
training touches at every step anyway.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc refuses thresholds above its limit (32 MiB on some versions): then the largest it accepts.
MMAP_THRESHOLDS = (1 << 30, 32 << 20)
TRIM_THRESHOLD = 1 << 30
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def user_has_set_malloc() -> bool:
    """Whether the environment already tunes glibc's allocator (its MALLOC_* variables or GLIBC_TUNABLES)."""
    return any(name in os.environ for name in USER_SETTINGS) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")


def keep_freed_memory() -> int:
    """Raise glibc's mmap and trim thresholds, unless the user tuned them; the mmap threshold set, else 0 (not
    glibc, or refused)."""
    if not sys.platform.startswith("linux") or user_has_set_malloc():
        return 0
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return 0
    if not hasattr(libc, "gnu_get_libc_version"):  # not glibc: musl's mallopt does nothing
        return 0
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    for threshold in MMAP_THRESHOLDS:
        if mallopt(M_MMAP_THRESHOLD, threshold) == 1:
            mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            return threshold
    return 0
