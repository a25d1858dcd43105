"""Bounded, thread-safe memoisation with one computation per key at a time."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import cachetools

V = TypeVar("V")


class Memo(Generic[V]):
    """An LRU cache whose misses are computed once even when many threads ask at once.

    ``maxsize`` counts entries, or bytes when ``getsizeof`` is given (as in ``cachetools``).
    A value larger than the whole cache is returned but not kept.
    """

    def __init__(self, maxsize: int, getsizeof: Callable[[V], int] | None = None) -> None:
        self._cache: cachetools.LRUCache = cachetools.LRUCache(maxsize=max(1, maxsize), getsizeof=getsizeof)
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, threading.Lock] = {}
        self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The cached value for ``key``, computing it with ``compute()`` on a miss."""
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            gate = self._inflight.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            try:
                value = compute()
                with self._lock:
                    self.misses += 1
                    with contextlib.suppress(ValueError):  # larger than the whole cache: not kept
                        self._cache[key] = value
                return value
            finally:
                with self._lock:
                    if self._inflight.get(key) is gate:
                        del self._inflight[key]

    def peek(self, key: Hashable) -> V | None:
        """The cached value, or None, without computing or reordering."""
        with self._lock:
            return self._cache.get(key)
