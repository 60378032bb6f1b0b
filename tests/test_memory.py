"""The allocator setting: freed tensors stay in the heap, unless the user tuned glibc's allocator."""

import ctypes
import platform

import numpy as np
import pytest

from s2s_cli import memory

GLIBC = platform.libc_ver()[0] == "glibc" and hasattr(ctypes.CDLL(None), "mallinfo2")  # mallinfo2: glibc 2.33+


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def mapped_bytes() -> int:
    """Bytes glibc holds in blocks mapped apart from the heap (what a free hands back to the kernel)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2().hblkhd


@pytest.mark.skipif(not GLIBC, reason="glibc 2.33+ only (mallinfo2)")
def test_a_large_block_comes_from_the_heap_not_a_fresh_mapping():
    threshold = memory.keep_freed_memory()  # importing s2s_cli already did it once
    assert threshold in memory.MMAP_THRESHOLDS
    if threshold < 64 << 20:
        pytest.skip("this glibc caps the mmap threshold at its default maximum")
    before = mapped_bytes()
    block = np.ones(16 << 20, np.float32)  # 64 MiB: glibc's own threshold never rises above 32 MiB
    assert mapped_bytes() - before < block.nbytes
    del block


@pytest.mark.parametrize(
    "name, value", [("MALLOC_TRIM_THRESHOLD_", "131072"), ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")]
)
def test_the_users_own_setting_is_kept(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert memory.user_has_set_malloc() and memory.keep_freed_memory() == 0
