"""Many stores as one tree: a directory holding ZVF stores at any depth (a lab's data directory).

Each store appears under its path relative to the directory (``cohort1/tracts.zarrvectors/...``),
as its own precomputed tree; directories that hold no store below them are not shown. A store is
opened on first access and kept in the process's memory budget like any cached value, so that
under memory pressure the stores not used for longest are closed again (and reopened, from their
persistent index, when asked for). The directory is searched once, when the forest is made, and
again when a path names nothing known (a store added since).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator

from .cache import Budget, Memo
from .errors import StoreError
from .store import is_zvf_store
from .tree import NotFound, ReadFailed, Stat, Tree, split_path

log = logging.getLogger("zvfs")

OPEN_STORE_BYTES = 8 * 2**20  # what an open store holds beyond its cached data (metadata, tables)
LAYER_MARK = "info"  # a directory holding this is a precomputed layer (an export, a mount): not searched


def find_stores(root: str) -> list[str]:
    """Paths (relative, '/'-separated, sorted) of the ZVF stores under ``root``, not looking inside
    stores, precomputed layers or hidden directories."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel != "." and is_zvf_store(dirpath):
            found.append(rel.replace(os.sep, "/"))
            dirnames[:] = []
            continue
        if LAYER_MARK in filenames:
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found)


class StoreForest:
    """The stores under a directory as one :class:`~zvfs.tree.Tree`; ``open_store_tree(path)``
    opens one store's tree (sharing the forest's ``budget``)."""

    def __init__(self, root: str, budget: Budget, open_store_tree: Callable[[str], Tree]) -> None:
        self.root = os.path.realpath(root)
        self.label = self.root
        self.mtime = os.stat(self.root).st_mtime
        self._open = open_store_tree
        self._trees: Memo[Tree] = budget.memo(lambda _: OPEN_STORE_BYTES)
        self._lock = threading.Lock()
        self._stores: list[str] = []
        self._dirs: dict[str, list[str]] = {}
        self._scan()

    def _scan(self) -> None:
        stores = find_stores(self.root)
        dirs: dict[str, set[str]] = {"": set()}
        for store in stores:
            parts = store.split("/")
            for depth in range(len(parts)):
                parent = "/".join(parts[:depth])
                dirs.setdefault(parent, set()).add(parts[depth])
        with self._lock:
            self._stores, self._dirs = stores, {d: sorted(names) for d, names in dirs.items()}

    @property
    def stores(self) -> list[str]:
        return list(self._stores)

    def _locate(self, path: str, rescan: bool = True) -> tuple[str | None, str]:
        """(store, path inside it), or (None, directory) for a directory above stores."""
        parts = split_path(path)
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if prefix in self._stores:
                return prefix, "/".join(parts[depth:])
        joined = "/".join(parts)
        if joined in self._dirs:
            return None, joined
        if rescan:
            self._scan()
            return self._locate(path, rescan=False)
        raise NotFound(path)

    def tree(self, store: str) -> Tree:
        """The tree of one store, opened now unless it is open. A store that cannot be opened fails
        its own paths only (:class:`ReadFailed`, logged in one line); it is tried again when next
        asked for, so a store being written is served once it is whole."""
        path = os.path.join(self.root, store)
        try:
            return self._trees.get(store, lambda: self._open(path))
        except Exception as exc:
            msg = str(exc) if isinstance(exc, StoreError) else f"{path}: cannot open: {type(exc).__name__}: {exc}"
            log.error("%s", msg, exc_info=log.isEnabledFor(logging.DEBUG))
            raise ReadFailed(msg) from exc

    def stat(self, path: str) -> Stat:
        store, rest = self._locate(path)
        return Stat(True, 0, self.mtime) if store is None else self.tree(store).stat(rest)

    def listdir(self, path: str) -> Iterator[str]:
        store, rest = self._locate(path)
        return iter(self._dirs[rest]) if store is None else self.tree(store).listdir(rest)

    def read(self, path: str, offset: int = 0, size: int | None = None) -> bytes:
        store, rest = self._locate(path)
        if store is None:
            raise IsADirectoryError(path)
        return self.tree(store).read(rest, offset, size)

    def cached(self, path: str) -> tuple[Stat, bytes] | None:
        try:
            store, rest = self._locate(path, rescan=False)
        except NotFound:
            return None
        tree = None if store is None else self._trees.peek(store)
        return None if tree is None else tree.cached(rest)
