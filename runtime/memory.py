"""A worker's own memory: the C allocator told to keep less of it.

Most of what a worker holds that the master does not is not live Python objects
(tracemalloc saw ~5 MB after the full benchmark) but pages: shared ones that the
worker wrote to, and the C allocator's free space it never gave back. Two of
glibc's knobs help with the second (measured in docs/benchmarks.md, "Memory"):

- fewer malloc arenas: each thread that allocates (aiosqlite runs one per
  database connection; name lookups run in a thread pool) may get its own arena,
  whose free space no other thread reuses;
- `malloc_trim(0)` now and then: free pages in the middle of the heap go back
  to the kernel, not only those at its top.

Both are glibc's; on another C library (musl, macOS) they are skipped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt's parameter number for the arena cap (glibc's malloc.h: M_ARENA_MAX).
M_ARENA_MAX = -8


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:  # pragma: no cover - no dynamic loader to ask
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    return libc


_LIBC = _glibc()


def limit_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas for this process (0: leave the default). Call it
    before threads start allocating; True if the C library took it."""
    if arenas <= 0 or _LIBC is None:
        return False
    taken = bool(_LIBC.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(arenas)))
    if not taken:  # pragma: no cover - glibc accepts any positive cap
        log.warning("the C library refused a cap of %d malloc arenas", arenas)
    return taken


def trim() -> bool:
    """Give the allocator's free pages back to the kernel; True if any went."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(ctypes.c_size_t(0)))


def available() -> bool:
    """Whether this C library has the knobs (glibc)."""
    return _LIBC is not None
