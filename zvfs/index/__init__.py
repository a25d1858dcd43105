"""A store's persistent, compact index: opened from the index directory, or built there first.

The index (:mod:`.build` says what it holds) lives outside the store, keyed by the store's location
and a fingerprint of its metadata, so a second mount starts from it at once. :class:`StoreIndex`
answers what mappers ask of it; its arrays are read on demand, small ones kept in the process's
memory :class:`~zvfs.cache.Budget`, large ones read by slices from disk.
"""

from __future__ import annotations

import enum
import logging
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..cache import Budget, Memo
from ..store import ZVFStore, open_store
from . import build as b
from .files import DiskArray, IndexCorrupt, IndexFiles, Writer, default_root, index_key, locked, prune
from .pyramid import Pyramid
from .tasks import Runner

log = logging.getLogger("zvfs")

LOAD_BYTES = 32 * 2**20  # arrays up to this size are read whole (and kept in the budget); larger by slices
ITEM_KINDS = ("line", "polyline", "streamline", "graph")


@dataclass(frozen=True)
class IndexOptions:
    """Where indexes live (None: :func:`~.files.default_root`) and how they are built."""

    root: Path | None = None
    scheduler: str | None = None  # a Dask scheduler address, else local processes
    workers: int | None = None  # local processes (None: every core)
    progress: bool = False


class IndexState(enum.Enum):
    FOUND = "found"
    BUILT = "built"


def ensure_index(path: str, budget: Budget, options: IndexOptions) -> tuple[IndexState, Path]:
    """Build the index of the store at ``path`` unless it has a good one; (what happened, where)."""
    store = open_store(path, budget)
    check = open_index(store, budget, options)
    return check.state, check.files.path


def open_index(store: ZVFStore, budget: Budget, options: IndexOptions) -> StoreIndex:
    """The store's index, built first if there is none (or none that checks out)."""
    root = Path(options.root) if options.root else default_root()
    key = index_key(store.path, store.content_fingerprint())
    path = root / key
    try:
        return StoreIndex(store, IndexFiles(path), budget, IndexState.FOUND)
    except IndexCorrupt as exc:
        if path.exists():
            log.warning("%s: index %s is damaged (%s); rebuilding it", store.path, path, exc)
    with locked(root, key):  # one builder per index; the others wait for it, then read it
        try:
            return StoreIndex(store, IndexFiles(path), budget, IndexState.FOUND)
        except IndexCorrupt:
            shutil.rmtree(path, ignore_errors=True)
        run = Runner(store, scheduler=options.scheduler, workers=options.workers, progress=options.progress)
        build_index(store, root, key, run)
        prune(root, key, store.path)  # earlier versions of the store
        return StoreIndex(store, IndexFiles(path), budget, IndexState.BUILT)


def build_index(store: ZVFStore, root: Path, key: str, run: Runner) -> Path:
    """Build the index of ``store`` as ``root/key`` (atomically)."""
    channels = [{a.name: a.channels for a in level.vertex_attributes} for level in store.levels]
    out = Writer(root, key, {"store": store.path, "kind": store.kind, "channels": channels})
    try:
        pyramid = Pyramid.of(store)
        for level in range(len(store.levels)):
            cells = b.build_level(store, level, out, run)
            b.build_objects(store, level, out, run)  # empty without an object index
            if store.kind in b.LINK_KINDS:
                b.build_links(store, level, cells, out.load(f"L{level}/counts"), out, out)
        if store.kind == "point_cloud":
            b.build_points(store, pyramid, out, out, run)
        elif store.kind in ITEM_KINDS:
            b.build_items(store, pyramid, out, out)
            b.build_groups(store, out, out)
        return out.publish()
    except BaseException:
        out.discard()
        raise


def searchsorted(values: np.ndarray | DiskArray, value: int, side: str = "left") -> int:
    """``np.searchsorted`` over an array in memory or on disk."""
    if isinstance(values, DiskArray):
        return values.searchsorted(value, side)
    return int(np.searchsorted(values, value, side=side))  # type: ignore[call-overload]


class StoreIndex:
    """What mappers ask of a store's index."""

    def __init__(self, store: ZVFStore, files: IndexFiles, budget: Budget, state: IndexState) -> None:
        self.store = store
        self.files = files
        self.state = state
        for level, channels in zip(store.levels, files.meta["channels"], strict=True):
            level.known_channels = channels  # no chunk read to tell a flattened attribute's width
        self._arrays: Memo[np.ndarray] = budget.memo(lambda a: int(a.nbytes))
        self.pyramid = Pyramid.of(store)

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def array(self, name: str) -> np.ndarray | DiskArray:
        """An array of the index: in memory when small (kept in the budget), else read by slices."""
        nbytes = self.files.arrays[name].nbytes
        if nbytes > LOAD_BYTES:
            return self.files.disk(name)
        return self._arrays.get(name, lambda: self.files.load(name), expected=nbytes)

    def span(self, name: str, rows: slice) -> np.ndarray:
        """Rows of an array read from disk alone, whatever its size: what one request needs of a
        column that grows with the store (the page cache keeps what is read again)."""
        return self.files.disk(name)[rows]

    def take(self, name: str, rows: slice | np.ndarray) -> np.ndarray:
        """Rows of an array, for one request: from memory when it is small, else read from disk for
        those rows alone."""
        values = self.array(name)
        if isinstance(values, DiskArray):
            return values[rows] if isinstance(rows, slice) else values.take(rows)
        return values[rows]

    def find(self, name: str, keys: np.ndarray) -> np.ndarray:
        """Positions of ``keys`` in a sorted array (``np.searchsorted``), read for those keys alone;
        the keys are taken in the array's dtype (uint64 against int64 would compare as floats)."""
        values = self.array(name)
        keys = np.asarray(keys).astype(values.dtype)
        if isinstance(values, DiskArray):
            return np.asarray([values.searchsorted(k) for k in keys.tolist()], np.int64)
        return np.searchsorted(values, keys)

    def whole(self, name: str) -> np.ndarray:
        """An array read whole, whatever its size (for work that needs all of it anyway)."""
        values = self.array(name)
        return values[:] if isinstance(values, DiskArray) else values

    def level(self, k: int) -> LevelCells:
        return LevelCells(self, k)

    def objects(self, k: int) -> ObjectIndex:
        """Level ``k``'s objects (none without an object index)."""
        return ObjectIndex(self, k)


class LevelCells:
    """A level's non-empty cells (sorted) and their row counts (-1: unreadable)."""

    def __init__(self, index: StoreIndex, k: int) -> None:
        self.cells = index.whole(f"L{k}/cells")
        self.counts = index.whole(f"L{k}/counts")

    @cached_property
    def _keys(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        low = self.cells.min(0) if len(self.cells) else np.zeros(self.cells.shape[1], np.int64)
        span = self.cells.max(0) - low + 1 if len(self.cells) else np.ones(self.cells.shape[1], np.int64)
        return low, span, b.linear_keys(self.cells)

    def index_of(self, cell: tuple[int, ...]) -> int | None:
        """The position of ``cell`` among the level's cells, or None if it is empty."""
        low, span, keys = self._keys
        offset = np.asarray(cell, np.int64) - low
        if len(keys) == 0 or (offset < 0).any() or (offset >= span).any():
            return None
        key = np.ravel_multi_index(tuple(offset.tolist()), tuple(span.tolist()))
        i = int(np.searchsorted(keys, key))
        return i if i < len(keys) and keys[i] == key else None


class ObjectIndex:
    """A level's objects: ids in row order, each one's pieces, size and explicit links."""

    def __init__(self, index: StoreIndex, k: int) -> None:
        self.index, self.k = index, k
        self._p = f"L{k}/objects"

    @property
    def ids(self) -> np.ndarray | DiskArray:
        return self.index.array(f"{self._p}/ids")

    def __len__(self) -> int:
        return len(self.ids)

    def row_of(self, oid: int) -> int | None:
        ids = self.ids
        k = searchsorted(ids, oid)
        return k if k < len(ids) and int(ids[k]) == oid else None

    def sizes(self) -> np.ndarray:
        """Vertices of each object (0: dropped at this level; -1: unknown, a damaged chunk)."""
        return self.index.whole(f"{self._p}/sizes")

    def ids_at(self, rows: slice | np.ndarray) -> np.ndarray:
        return self.index.take(f"{self._p}/ids", rows)

    def rows_of(self, oids: np.ndarray) -> np.ndarray:
        """Rows of object ids (which must be present)."""
        return self.index.find(f"{self._p}/ids", oids)

    def sizes_at(self, rows: slice | np.ndarray) -> np.ndarray:
        """:meth:`sizes` of some rows."""
        return self.index.take(f"{self._p}/sizes", rows)

    def size(self, row: int) -> int:
        return int(self.index.array(f"{self._p}/sizes")[row])

    def pieces(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cell index, first row, rows) of each piece of an object, in object order."""
        offsets = self.index.array(f"{self._p}/piece_offsets")
        a, z = int(offsets[row]), int(offsets[row + 1])
        return tuple(self.index.array(f"{self._p}/piece_{n}")[a:z] for n in ("cell", "start", "rows"))  # type: ignore[return-value]

    def links(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(object-local endpoints (E, L), record numbers (E,)) of an object's explicit links."""
        p = f"L{self.k}/links"
        if f"{p}/offsets" not in self.index:
            return np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
        offsets = self.index.array(f"{p}/offsets")
        a, z = int(offsets[row]), int(offsets[row + 1])
        return np.asarray(self.index.array(f"{p}/local")[a:z], np.int64), np.asarray(
            self.index.array(f"{p}/record")[a:z]
        )
