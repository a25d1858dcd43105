"""ZVF ``point_cloud`` -> point annotations.

Ids: annotation id = 1 + the point's row in the level-0 cells taken in sorted cell order, so ids
are dense, never 0, and fixed by the store alone. Each point sits in exactly one spatial cell (its
ZVF cell), shuffled by id so that a prefix drawn by the client is a uniform sample. Per-vertex
attributes become properties, and so do per-object attributes (``object_`` prefixed on a clash);
with an object index, relationship ``object`` links each point to its object's segment id.
"""
from __future__ import annotations

from functools import cached_property
from typing import Iterable

import numpy as np

from ..encoders import annotations as enc
from ..properties import columns
from ..store import ZVFStore
from ..units import dimensions
from .annotation_layer import relationship_key
from .common import Cell, Grid, SegmentIds, shuffle_order

RELATIONSHIP = "object"


class PointSource:
    """An :class:`~zvfs.mappers.annotation_layer.AnnotationSource` over a point cloud's level 0."""

    def __init__(self, store: ZVFStore) -> None:
        self.store = store
        self.level = store.levels[0]
        self.grid = Grid.of(store, self.level)
        self.segments = SegmentIds(self.level)
        taken: set[str] = set()
        self.vertex_columns = columns(self.level.vertex_attributes, "vertex", taken)
        object_attrs = [a for a in self.level.object_attributes if a.name != SegmentIds.ATTRIBUTE]
        self.object_columns = columns(object_attrs, "object", taken) if self.level.has_objects else []
        props = tuple(c.prop for c in self.vertex_columns + self.object_columns)
        rels = (RELATIONSHIP,) if self.level.has_objects else ()
        self.schema = enc.AnnotationSchema("point", len(store.axes), props, rels)
        self.schema.check()

    @cached_property
    def _offsets(self) -> np.ndarray:
        """First id - 1 of each level-0 cell, in sorted cell order, plus the total at the end."""
        counts = [self.level.count(c) for c in self.level.cells]
        return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])

    @cached_property
    def _cell_index(self) -> dict[Cell, int]:
        return {c: i for i, c in enumerate(self.level.cells)}

    @cached_property
    def _object_values(self) -> dict[str, np.ndarray]:
        return {a.name: self.level.object_attribute(a.name) for a in self.level.object_attributes}

    def _batch(self, cell: Cell, rows: np.ndarray) -> enc.Annotations:
        """Annotations for some rows of one ZVF cell."""
        data = self.level.cell(cell)
        ids = self._offsets[self._cell_index[cell]] + rows + 1
        props = {c.prop.id: c.values(data.attributes)[rows] for c in self.vertex_columns}
        if self.object_columns:
            obj_rows = np.searchsorted(self.level.object_ids, data.owners[rows])
            per_object = {name: v[obj_rows] for name, v in self._object_values.items()}
            props.update({c.prop.id: c.values(per_object) for c in self.object_columns})
        related = ()
        if self.schema.relationships:
            segs = self.segments.of(data.owners[rows])
            related = [[np.asarray([s], np.uint64)] for s in segs]
        return enc.Annotations(data.positions[rows], props, ids.astype(np.uint64), related=related)

    # -- AnnotationSource
    def info(self) -> dict:
        return enc.info(self.schema, dimensions(self.store.axes, self.store.path), self.grid.lower,
                        self.grid.upper, self.spatial_levels(),
                        {r: relationship_key(r) for r in self.schema.relationships})

    def spatial_levels(self) -> list[enc.SpatialLevel]:
        counts = np.diff(self._offsets)
        limit = int(counts.max()) if len(counts) else 1
        return [enc.SpatialLevel("spatial0", self.grid.shape, self.grid.chunk, limit)]

    def cells(self, level: int) -> Iterable[Cell]:
        return (self.grid.to_spatial(c) for c in self.level.cells)

    def _zvf_cell(self, cell: Cell) -> Cell | None:
        zcell = self.grid.to_zvf(cell)
        return zcell if zcell in self._cell_index else None

    def cell_extent(self, level: int, cell: Cell) -> tuple[int, int] | None:
        zcell = self._zvf_cell(cell)
        return None if zcell is None else (self.level.count(zcell), 0)

    def cell(self, level: int, cell: Cell) -> enc.Annotations:
        zcell = self._zvf_cell(cell)
        n = self.level.count(zcell)
        rows = shuffle_order(self._offsets[self._cell_index[zcell]] + np.arange(n) + 1)
        return self._batch(zcell, rows)

    def ids(self) -> Iterable[int]:
        return range(1, int(self._offsets[-1]) + 1)

    def _locate(self, aid: int) -> tuple[Cell, int] | None:
        if not 1 <= aid <= self._offsets[-1]:
            return None
        i = int(np.searchsorted(self._offsets, aid - 1, side="right")) - 1
        return self.level.cells[i], aid - 1 - int(self._offsets[i])

    def annotation_extent(self, aid: int) -> tuple[list[int], int] | None:
        if self._locate(aid) is None:
            return None
        return [1] * len(self.schema.relationships), 0

    def annotation(self, aid: int) -> enc.Annotations:
        cell, row = self._locate(aid)
        return self._batch(cell, np.asarray([row]))

    def related_ids(self, relationship: str) -> Iterable[int]:
        return (int(s) for s in self.segments.all())

    def _object_rows(self, segment: int) -> list[tuple[Cell, np.ndarray]] | None:
        oid = self.segments.object_of(segment)
        if oid is None:
            return None
        pieces = []
        for cell, frag in self.level.object_fragments(oid):
            start, count = self.level.fragments(cell)[frag]
            pieces.append((cell, np.arange(start, start + count)))
        return pieces

    def related_extent(self, relationship: str, segment: int) -> tuple[int, int] | None:
        pieces = self._object_rows(segment)
        return None if pieces is None else (sum(len(r) for _, r in pieces), 0)

    def related(self, relationship: str, segment: int) -> enc.Annotations:
        batches = [self._batch(cell, rows) for cell, rows in self._object_rows(segment)]
        return concat(self.schema, batches)


def concat(schema: enc.AnnotationSchema, batches: list[enc.Annotations]) -> enc.Annotations:
    """One batch of several (property columns, geometry and ids back to back)."""
    if not batches:
        return enc.Annotations(np.zeros((0, schema.rank), np.float32),
                               {p.id: np.zeros(0) for p in schema.properties}, np.zeros(0, np.uint64))
    props = {p.id: np.concatenate([b.properties[p.id] for b in batches]) for p in schema.properties}
    counts = None if batches[0].counts is None else np.concatenate([b.counts for b in batches])
    return enc.Annotations(np.concatenate([b.geometry for b in batches]), props,
                           np.concatenate([b.ids for b in batches]), counts)
