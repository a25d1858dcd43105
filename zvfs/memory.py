"""Keep a daemon's resident memory close to what its caches hold (glibc's malloc).

A daemon decodes and encodes arrays of every size on many FUSE or Tornado threads, and its caches
evict them again. By default glibc gives each thread its own arena (up to eight per core), keeps
freed memory in them for reuse, and after each large free raises its mmap threshold (up to 32 MiB),
so that later large arrays come from those heaps and fragment them: measured at 1M streamlines with
a 256 MiB budget, the daemon peaked 100 MiB higher than the same reads in one thread. So the
long-running commands (``mount``'s daemon, ``serve``, ``view``) call :func:`tune` first: two arenas,
and a fixed threshold of 32 KiB, above which every array is its own mapping, returned to the system
when freed (no measurable cost in time); and the budget reports what it evicts
(:func:`released`), so free pages left inside the heap are given back every :data:`TRIM_EVERY`
bytes. Elsewhere than glibc this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**10
ARENAS = 2
TRIM_EVERY = 32 * 2**20

_libc: ctypes.CDLL | None = None
_pending = 0
_lock = threading.Lock()


def tune() -> bool:
    """Two arenas and a fixed mmap threshold for this process, before its threads start; whether
    it took effect (glibc only)."""
    global _libc
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        ok = libc.mallopt(M_ARENA_MAX, ARENAS) == 1 and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        libc.malloc_trim  # noqa: B018 - present in glibc only
    except (OSError, AttributeError):
        return False
    _libc = libc if ok else None
    return ok


def released(nbytes: int) -> None:
    """Note ``nbytes`` a cache let go; after :data:`TRIM_EVERY` of them, give the heap's free pages
    back to the system (once :func:`tune` took effect)."""
    global _pending
    if _libc is None:
        return
    with _lock:
        _pending += nbytes
        if _pending < TRIM_EVERY:
            return
        _pending = 0
    _libc.malloc_trim(0)
