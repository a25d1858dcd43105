"""What every mapper shares: the store's context, segment ids, chunk tables, a stable shuffle, and
how file names and JSON files are made."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property

import numpy as np

from ..index import StoreIndex
from ..index.build import id_hash, linear_keys
from ..objects import ObjectTable
from ..space import Space
from ..store import AttributeInfo, Cell, LevelReader, ZVFStore
from ..tree import File
from .sharding import LayerIndexes, Sharding


class Context:
    """What the mappers of one store work from: the store, its index, the space written and which
    layers are sharded. It holds the per-store state the layers share (object tables, segment ids),
    so that state lives exactly as long as the tree built on it."""

    def __init__(self, store: ZVFStore, index: StoreIndex, space: Space, sharding: Sharding | None = None) -> None:
        self.store, self.index, self.space = store, index, space
        self.sharding = sharding or Sharding()
        self._tables: dict[int, ObjectTable] = {}

    def objects(self, level: int) -> ObjectTable:
        """The object table of a level (one per level)."""
        if level not in self._tables:
            self._tables[level] = ObjectTable(self.index, self.store.levels[level])
        return self._tables[level]

    @cached_property
    def segments(self) -> SegmentIds:
        """Segment ids of the store's objects, the same at every level: from level 0, where every
        object and its attributes are (a coarse level drops objects, leaving fill values in theirs)."""
        return SegmentIds(self.store.levels[0], self.objects(0).ids)

    def layer_indexes(self) -> LayerIndexes:
        """A new layer's indexes, sharded as this tree's layers are."""
        return LayerIndexes(self.sharding, self.store.budget)


class SegmentIds:
    """ZVF object id <-> Neuroglancer segment id: the store's ``segment_id`` object attribute when it
    is usable (non-zero, unique), otherwise object id + 1; never 0."""

    ATTRIBUTE = "segment_id"

    def __init__(self, level: LevelReader, object_ids: np.ndarray) -> None:
        self._level = level
        self._ids = object_ids

    @cached_property
    def _own(self) -> np.ndarray | None:
        """The ``segment_id`` attribute's values when they can be segment ids."""
        if self.ATTRIBUTE not in self._level.object_attribute_names:
            return None
        own = np.asarray(self._level.object_attribute(self.ATTRIBUTE)).reshape(-1)
        usable = len(own) == len(self._ids) and own.dtype.kind in "iu" and (own > 0).all()
        return own.astype(np.uint64) if usable and len(np.unique(own)) == len(own) else None

    @property
    def from_attribute(self) -> bool:
        """Whether the ids are the store's ``segment_id`` attribute (which is then no property)."""
        return self._own is not None

    def property_attributes(self) -> list[AttributeInfo]:
        """The level's object attributes that are shown as properties: all but ``segment_id`` when
        it gives the ids."""
        return [a for a in self._level.object_attributes if not (a.name == self.ATTRIBUTE and self.from_attribute)]

    @cached_property
    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        """The store's own segment ids and their sorting order (object ids + 1 need neither)."""
        assert self._own is not None
        return self._own, np.argsort(self._own)

    def of(self, oids: np.ndarray) -> np.ndarray:
        """Segment ids of object ids (which must be present)."""
        if self._own is None:
            return np.asarray(oids).astype(np.uint64) + np.uint64(1)
        segs, _ = self._table
        return segs[np.searchsorted(self._ids, oids)]

    @cached_property
    def _sorted(self) -> np.ndarray:
        """The store's own segment ids, ascending."""
        segs, order = self._table
        return segs[order]

    def all(self) -> np.ndarray:
        if self._own is None:
            return self._ids.astype(np.uint64) + np.uint64(1)
        return self._sorted

    def rows_of(self, segments: np.ndarray) -> np.ndarray:
        """Object rows (positions among the object ids) of segment ids (which must be present)."""
        if self._own is None:
            return np.searchsorted(self._ids, np.asarray(segments).astype(np.int64) - 1)
        return self._table[1][np.searchsorted(self._sorted, np.asarray(segments, np.uint64))]

    def object_of(self, segment: int) -> int | None:
        if self._own is None:
            i = int(np.searchsorted(self._ids, segment - 1))
            return segment - 1 if segment > 0 and i < len(self._ids) and self._ids[i] == segment - 1 else None
        _, order = self._table
        i = int(np.searchsorted(self._sorted, np.uint64(segment)))
        if i < len(order) and self._sorted[i] == segment:
            return int(self._ids[order[i]])
        return None


class ChunkTable:
    """Chunks of one spatial level (sorted), each with its annotation count and polyline
    vertices, found by chunk coordinates."""

    def __init__(self, chunks: np.ndarray, counts: np.ndarray, vertices: np.ndarray | None = None) -> None:
        chunks = np.asarray(chunks, np.int64)  # (M, D)
        keys = linear_keys(chunks)
        order = np.argsort(keys, kind="stable")  # lexicographic; linear when given sorted, as the index keeps them
        self.chunks = chunks[order]
        self.counts = np.asarray(counts, np.int64)[order]
        self.vertices = np.zeros(len(order), np.int64) if vertices is None else np.asarray(vertices, np.int64)[order]
        self.order = order  # row of the table -> row as given
        self._low = self.chunks.min(0) if len(order) else None
        self._span = self.chunks.max(0) - self._low + 1 if len(order) else None
        self._keys = keys[order]

    def find(self, chunk: Cell) -> int | None:
        """The table row of ``chunk`` (None if the level has nothing there)."""
        if self._low is None or self._span is None:
            return None
        offset = np.asarray(chunk, np.int64) - self._low
        if (offset < 0).any() or (offset >= self._span).any():
            return None
        key = np.ravel_multi_index(tuple(offset.tolist()), tuple(self._span.tolist()))
        i = int(np.searchsorted(self._keys, key))
        return i if i < len(self._keys) and self._keys[i] == key else None

    @property
    def limit(self) -> int:
        return int(self.counts.max(initial=1))

    def nbytes(self) -> int:
        return self.chunks.nbytes + self.counts.nbytes + self.vertices.nbytes + self.order.nbytes + self._keys.nbytes


def shuffle_order(ids: np.ndarray) -> np.ndarray:
    """A permutation that depends only on the ids, so a drawn prefix of a spatial cell is a uniform
    sample and every run gives the same bytes."""
    return np.argsort(id_hash(ids), kind="stable")


def json_file(make: Callable[[], dict]) -> File:
    """A JSON file (size known once encoded; the tree caches it)."""
    return File(lambda: json.dumps(make(), indent=1).encode())


def parse_uint(name: str) -> int | None:
    """Canonical base-10 uint64 names only, so each file has exactly one name."""
    if not name.isdigit() or (len(name) > 1 and name[0] == "0"):
        return None
    value = int(name)
    return value if value < 2**64 else None


def parse_cell(name: str, rank: int) -> Cell | None:
    parts = name.split("_")
    values = [parse_uint(p) for p in parts]
    if len(parts) != rank or any(v is None for v in values):
        return None
    return tuple(values)  # type: ignore[arg-type]
