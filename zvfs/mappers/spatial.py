"""What point and item annotation sources share: one spatial level per shown pyramid level, the
``info``, listings and cell lookups over per-level :class:`~.common.ChunkTable` s, and the
properties that come from object attributes.

A source shows every pyramid level (the layer), or one pinned level N (``levels/N/``): one spatial
level on level N's grid holding everything drawn at N or coarser, which is what Neuroglancer shows
of level N; a pinned level is a view and carries no relationships (the layer has them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np

from ..cache import Memo
from ..encoders import EXTENSION
from ..encoders import annotations as enc
from ..errors import StoreError
from ..properties import Column, columns
from ..store import Cell
from ..units import dimensions
from .annotation_layer import relationship_key
from .common import ChunkTable, Context


class SpatialSource(ABC):
    """The pyramid-backed part of an :class:`~.annotation_layer.AnnotationSource`."""

    schema: enc.AnnotationSchema

    def __init__(self, ctx: Context, only_level: int | None) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.level = ctx.store.levels[0]
        self.pyramid = ctx.index.pyramid
        self.grid = self.pyramid.grids[0]
        self.shown = list(range(self.pyramid.depth)) if only_level is None else [only_level]
        self.pinned = only_level is not None
        self.segments = ctx.segments if self.level.has_objects else None
        self._chunk_tables: Memo[ChunkTable] = ctx.store.budget.memo(ChunkTable.nbytes)

    # -- what a geometry type provides
    @abstractmethod
    def make_chunk_table(self, k: int) -> ChunkTable:
        """The chunks of shown pyramid level ``k`` with what this source draws there (-1: unknown,
        a damaged chunk)."""

    @abstractmethod
    def chunk(self, k: int, row: int) -> enc.Annotations:
        """The annotations of row ``row`` of :meth:`chunk_table`, in drawing (hash) order."""

    def chunk_table(self, k: int) -> ChunkTable:
        return self._chunk_tables.get(k, lambda: self.make_chunk_table(k))

    # -- object attributes as properties
    def object_columns(self, taken: set[str]) -> list[Column]:
        """Properties from the object attributes (all but segment ids)."""
        return [] if self.segments is None else columns(self.segments.property_attributes(), "object", taken)

    def object_properties(self, cols: list[Column], oids: np.ndarray) -> dict[str, np.ndarray]:
        """Property columns of objects ``oids`` (object ids of the level)."""
        rows = self.ctx.objects(0).rows_of(oids)
        per_object = {a.name: self.level.object_attribute(a.name)[rows] for a in self.level.object_attributes}
        return {c.prop.id: c.values(per_object) for c in cols}

    # -- AnnotationSource
    def info(self) -> dict:
        frame = self.ctx.space.frame
        _, _, lower, upper = frame.grid(self.grid.shape, self.grid.chunk, self.grid.lower)
        keys = {r: relationship_key(r) for r in self.schema.relationships}
        dims = dimensions(frame.axes, self.store.path)
        out = enc.info(self.schema, dims, lower, upper, self.spatial_levels(), keys)
        if frame.viewer is not None:  # a rotation: the viewer applies it (zvfs link and view do)
            out[EXTENSION] = {"transform": frame.viewer.tolist(), "output_dimensions": self.ctx.space.dimensions()}
        return out

    @property
    def spatial_depth(self) -> int:
        return len(self.shown)

    def _level(self, spatial: int) -> int:
        return self.shown[len(self.shown) - 1 - spatial]

    def spatial_levels(self) -> list[enc.SpatialLevel]:
        out = []
        for spatial in range(len(self.shown)):
            k = self._level(spatial)
            grid = self.pyramid.grids[k]
            shape, chunk, _, _ = self.ctx.space.frame.grid(grid.shape, grid.chunk, grid.lower)
            out.append(enc.SpatialLevel(f"spatial{spatial}", shape, chunk, self.chunk_table(k).limit))
        return out

    def cell_table(self, level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = self._level(level)
        grid, frame = self.pyramid.grids[k], self.ctx.space.frame
        table = self.chunk_table(k)
        kept = table.counts != 0
        cells = [frame.cell(grid.to_spatial(tuple(c)), grid.shape) for c in table.chunks[kept].tolist()]
        return np.asarray(cells, np.int64).reshape(-1, self.schema.rank), table.counts[kept], table.vertices[kept]

    def cells(self, level: int) -> Iterable[Cell]:
        return map(tuple, self.cell_table(level)[0].tolist())

    def _find(self, level: int, cell: Cell) -> tuple[int, int] | None:
        k = self._level(level)
        grid = self.pyramid.grids[k]
        chunk = grid.to_zvf(self.ctx.space.frame.stored_cell(cell, grid.shape))
        row = None if chunk is None else self.chunk_table(k).find(chunk)
        return None if row is None or self.chunk_table(k).counts[row] == 0 else (k, row)

    def cell_extent(self, level: int, cell: Cell) -> tuple[int, int] | None:
        found = self._find(level, cell)
        if found is None:
            return None
        table = self.chunk_table(found[0])
        if table.counts[found[1]] < 0:
            raise StoreError(f"{self.store.path}: cell {cell} of spatial level {level} needs a damaged chunk")
        return int(table.counts[found[1]]), int(table.vertices[found[1]])

    def cell(self, level: int, cell: Cell) -> enc.Annotations:
        found = self._find(level, cell)
        assert found is not None
        return self.chunk(*found)
