"""Keep freed memory for the next request instead of handing it back to the kernel (glibc).

A large sync answers tens of MB (every copy's data, on every call). glibc serves blocks above
its mmap threshold (dynamic, at most 32 MiB) with fresh mappings and unmaps them on free, so
each such request pays a page fault per 4 KiB touched: at 10,000 namespaces, ~20 ms of the
~30 ms spent encoding the answer (docs/benchmarks.md). Raising the threshold serves those
blocks from the heap, which keeps up to the same amount of freed memory for the next request.

The price: between requests the process keeps up to `limit` bytes it is not using, so its RSS
stays near the peak of recent large requests — a peak its memory limit must allow anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util

MIB = 1024 * 1024
DEFAULT_KEEP_MEMORY_MIB = 256  # holds a 10,000-namespace sync's answer (56 MB) and request

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(limit: int) -> bool:
    """Serve blocks below `limit` bytes from the heap and keep up to `limit` bytes freed.

    False where it does not apply: `limit` 0, or a C library without glibc's `mallopt`.
    """
    if limit <= 0:
        return False
    # find_library needs ldconfig, which a minimal image may lack; glibc's soname is fixed.
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    limit = min(limit, 2**31 - 1)
    return bool(mallopt(_M_MMAP_THRESHOLD, limit)) and bool(mallopt(_M_TRIM_THRESHOLD, limit))
