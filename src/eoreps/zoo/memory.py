"""Keep freed memory in the process heap while a zoo trains (glibc only).

Why: a population step allocates activations of tens to hundreds of MB (e.g. 150 members x 92 images x
8 x 24 x 24 floats = 254 MB in evaluation). glibc serves blocks above its mmap threshold (at most 32 MB)
with fresh ``mmap`` pages and returns them on ``free``, so every step pays the kernel's page faults again:
on the 2-core development VMs that first touch cost more than the convolution itself (measured: the first
evaluation convolution 2.3 ms per image before, 0.44 after; ``benchmarks/zoo_throughput.py``, 256 members,
medians of 3 against one run without: fp32 training 1.41x faster, bf16 1.07x).
PyTorch has no caching allocator on CPU, so we raise glibc's mmap and trim thresholds with ``mallopt``:
freed blocks stay in the heap and are reused. The process's resident memory then stays at its peak instead
of shrinking between steps. Set ``EOREPS_MALLOC_TUNING=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap (and are reused after free)
_TRIM_THRESHOLD = (1 << 31) - 1  # never give freed heap memory back to the kernel

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; True when in effect.

    A no-op (False) on non-Linux systems, non-glibc C libraries, or with ``EOREPS_MALLOC_TUNING=0``.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("EOREPS_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
    return _applied
