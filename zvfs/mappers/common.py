"""What every mapper shares: the spatial grid, segment ids, and a stable shuffle."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..store import AttributeInfo, LevelReader, ZVFStore

Cell = tuple[int, ...]


@dataclass(frozen=True)
class Grid:
    """A level's ZVF cell grid as a Neuroglancer spatial grid: spatial cell = ZVF cell - origin."""

    origin: tuple[int, ...]  # ZVF cell at spatial cell (0, ..., 0)
    shape: tuple[int, ...]
    chunk: tuple[float, ...]

    @classmethod
    def of(cls, store: ZVFStore, level: LevelReader) -> Grid:
        """The smallest cell-aligned grid enclosing the declared bounds and every stored cell."""
        chunk = level.chunk_shape
        lo, hi = store.bounds
        first = np.floor(lo / chunk).astype(np.int64)
        last = np.maximum(first, np.ceil(hi / chunk).astype(np.int64) - 1)  # hi is an outer bound
        if level.cells:
            cells = np.asarray(level.cells, np.int64)
            first, last = np.minimum(first, cells.min(0)), np.maximum(last, cells.max(0))
        return cls(tuple(first.tolist()), tuple((last - first + 1).tolist()), tuple(chunk.tolist()))

    @property
    def lower(self) -> np.ndarray:
        return np.asarray(self.origin) * np.asarray(self.chunk)

    @property
    def upper(self) -> np.ndarray:
        return self.lower + np.asarray(self.shape) * np.asarray(self.chunk)

    def to_spatial(self, cell: Cell) -> Cell:
        return tuple(c - o for c, o in zip(cell, self.origin, strict=True))

    def to_zvf(self, cell: Cell) -> Cell | None:
        if any(not 0 <= c < s for c, s in zip(cell, self.shape, strict=True)):
            return None
        return tuple(c + o for c, o in zip(cell, self.origin, strict=True))


class SegmentIds:
    """ZVF object id <-> Neuroglancer segment id: the store's ``segment_id`` object attribute when it
    is usable (non-zero, unique), otherwise object id + 1; never 0."""

    ATTRIBUTE = "segment_id"

    def __init__(self, level: LevelReader) -> None:
        self._level = level

    @cached_property
    def _own(self) -> np.ndarray | None:
        """The ``segment_id`` attribute's values when they can be segment ids."""
        if self.ATTRIBUTE not in self._level.object_attribute_names:
            return None
        own = np.asarray(self._level.object_attribute(self.ATTRIBUTE)).reshape(-1)
        usable = len(own) == len(self._level.object_ids) and own.dtype.kind in "iu" and (own > 0).all()
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
        segs = self._own if self._own is not None else self._level.object_ids.astype(np.uint64) + np.uint64(1)
        return segs, np.argsort(segs)

    def of(self, oids: np.ndarray) -> np.ndarray:
        """Segment ids of object ids (which must be present)."""
        segs, _ = self._table
        rows = np.searchsorted(self._level.object_ids, oids)
        return segs[rows]

    def all(self) -> np.ndarray:
        segs, order = self._table
        return segs[order]

    def object_of(self, segment: int) -> int | None:
        segs, order = self._table
        i = np.searchsorted(segs[order], np.uint64(segment))
        if i < len(order) and segs[order[i]] == segment:
            return int(self._level.object_ids[order[i]])
        return None


def id_hash(ids: np.ndarray) -> np.ndarray:
    """splitmix64 of each id: a fixed pseudo-random order, independent of read order."""
    x = np.asarray(ids, np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def shuffle_order(ids: np.ndarray) -> np.ndarray:
    """A permutation that depends only on the ids, so a drawn prefix of a spatial cell is a uniform
    sample and every run gives the same bytes."""
    return np.argsort(id_hash(ids), kind="stable")
