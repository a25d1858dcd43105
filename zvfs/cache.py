"""One memory budget for every cache: bounded, thread-safe, one computation per key at a time.

A daemon keeps many kinds of things for reuse (encoded files, decoded store chunks, index arrays,
meshes, whole opened stores); each kind is a :class:`Memo`, and all the memos of a process draw
from one :class:`Budget` of bytes with one least-recently-used order, so ``--cache-size`` bounds
them together, whichever kind a session happens to need most. What they evict is reported to
:func:`zvfs.memory.released`, so a tuned daemon gives it back to the system.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import cachetools

from . import memory

V = TypeVar("V")

ENTRY_BYTES = 200  # what an entry costs beyond its value: key, bookkeeping
_ids = itertools.count()


class Budget:
    """Bytes shared by every :class:`Memo` made from it. A value larger than the whole budget is
    returned but not kept."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = max(1, int(nbytes))
        self._cache: cachetools.LRUCache = cachetools.LRUCache(maxsize=self.nbytes, getsizeof=lambda e: e[1])
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, threading.Lock] = {}

    @property
    def used(self) -> int:
        """Bytes held now (for tests and benchmarks)."""
        with self._lock:
            return int(self._cache.currsize)

    def memo(self, sizeof: Callable[[V], int]) -> Memo[V]:
        """A new kind of cached value, sized by ``sizeof`` (bytes)."""
        return Memo(self, sizeof)

    def _get(
        self, key: Hashable, compute: Callable[[], V], sizeof: Callable[[V], int], expected: int
    ) -> tuple[V, bool]:
        """(value, computed now) for ``key``; room for ``expected`` bytes is made before computing."""
        with self._lock:
            if key in self._cache:
                return self._cache[key][0], False
            gate = self._inflight.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._cache:
                    return self._cache[key][0], False
            try:
                memory.released(self._make_room(expected))
                value = compute()
                size = sizeof(value) + ENTRY_BYTES
                evicted = 0
                with self._lock:
                    if size <= self.nbytes:
                        before = self._cache.currsize
                        self._cache[key] = (value, size)
                        evicted = int(before + size - self._cache.currsize)
                memory.released(evicted)
                return value, True
            finally:
                with self._lock:
                    if self._inflight.get(key) is gate:
                        del self._inflight[key]

    def _make_room(self, nbytes: int) -> int:
        """Evict least recently used entries until a value of ``nbytes`` about to be computed fits,
        so that the process never holds both it and a full budget; the bytes evicted."""
        if nbytes <= 0 or nbytes + ENTRY_BYTES > self.nbytes:
            return 0  # unknown, or too large to be kept at all
        with self._lock:
            before = self._cache.currsize
            while self._cache.currsize + nbytes + ENTRY_BYTES > self.nbytes:
                self._cache.popitem()
            return int(before - self._cache.currsize)

    def _peek(self, key: Hashable) -> object | None:
        with self._lock:  # the base class's lookup: LRUCache's own (and .get) would mark it used
            entry = cachetools.Cache.__getitem__(self._cache, key) if key in self._cache else None
        return None if entry is None else entry[0]

    def _drop(self, key: Hashable) -> None:
        with self._lock:
            entry = self._cache.pop(key, None)
        memory.released(0 if entry is None else entry[1])


class Memo(Generic[V]):
    """One kind of cached value in a :class:`Budget`: ``get(key, compute)`` computes a missing value
    once even when many threads ask at once."""

    def __init__(self, budget: Budget, sizeof: Callable[[V], int]) -> None:
        self._budget = budget
        self._sizeof = sizeof
        self._id = next(_ids)
        self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], V], expected: int = 0) -> V:
        """The cached value for ``key``, computing it with ``compute()`` on a miss; ``expected``: its
        size in bytes when known beforehand (room is made first)."""
        value, computed = self._budget._get((self._id, key), compute, self._sizeof, expected)
        if computed:
            self.misses += 1
        return value

    def peek(self, key: Hashable) -> V | None:
        """The cached value, or None, without computing or reordering."""
        return self._budget._peek((self._id, key))  # type: ignore[return-value]

    def drop(self, key: Hashable) -> None:
        """Forget ``key`` (e.g. a value found to be stale)."""
        self._budget._drop((self._id, key))
