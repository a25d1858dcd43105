"""ZVF ``point_cloud`` -> point annotations.

Ids: annotation id = 1 + the point's row in the level-0 cells taken in sorted cell order, so ids
are dense, never 0, and fixed by the store alone. The spatial index has one level per usable ZVF
pyramid level (see :mod:`.pyramid`); each point is drawn at exactly one level, in the one cell of
that level's chunk grid that holds it, shuffled by id so that a prefix drawn by the client is a
uniform sample. Per-vertex attributes become properties, and so do per-object attributes; with an
object index, relationship ``object`` links each point to its object's segment id.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, cached_property

import numpy as np

from ..cache import Memo
from ..encoders import annotations as enc
from ..properties import columns
from ..store import ZVFStore
from .annotation_layer import annotation_info
from .common import Cell, SegmentIds, shuffle_order
from .pyramid import Pyramid

RELATIONSHIP = "object"
REGION_CACHE_BYTES = 32 * 2**20


class PointSource:
    """An :class:`~zvfs.mappers.annotation_layer.AnnotationSource` over a point cloud's pyramid."""

    def __init__(self, store: ZVFStore, only_level: int | None = None) -> None:
        """Every pyramid level, or with ``only_level`` N one spatial level on level N's grid holding
        everything drawn at N or coarser (what Neuroglancer shows of level N)."""
        self.store = store
        self.level = store.levels[0]
        store.space.check_axis_aligned("annotation layers")
        self.pyramid = Pyramid.of(store)
        self.grid = self.pyramid.grids[0]
        self.shown = list(range(self.pyramid.depth)) if only_level is None else [only_level]
        self._band = self.pyramid.band(self.shown)
        self.segments = SegmentIds(self.level)
        taken: set[str] = set()
        self.vertex_columns = columns(self.level.vertex_attributes, "vertex", taken)
        object_attrs = self.segments.property_attributes()
        self.object_columns = columns(object_attrs, "object", taken) if self.level.has_objects else []
        props = tuple(c.prop for c in self.vertex_columns + self.object_columns)
        pinned = only_level is not None  # a pinned level: a view, no relationships (the layer has them)
        rels = (RELATIONSHIP,) if self.level.has_objects and not pinned else ()
        self.schema = enc.AnnotationSchema("point", len(store.axes), props, rels)
        self.schema.check()
        self.index = point_index(store)

    @cached_property
    def _object_values(self) -> dict[str, np.ndarray]:
        return {a.name: self.level.object_attribute(a.name) for a in self.level.object_attributes}

    def _batch(self, cell: Cell, rows: np.ndarray) -> enc.Annotations:
        """Annotations for some rows of one ZVF cell."""
        data = self.level.cell(cell)
        ids = self.index.offsets[self.index.cell_index[cell]] + rows + 1
        attributes = {name: column[rows] for name, column in data.attributes.items()}
        props = {c.prop.id: c.values(attributes) for c in self.vertex_columns}
        if self.object_columns:
            obj_rows = np.searchsorted(self.level.object_ids, data.owners[rows])
            per_object = {name: v[obj_rows] for name, v in self._object_values.items()}
            props.update({c.prop.id: c.values(per_object) for c in self.object_columns})
        related = ()
        if self.schema.relationships:
            segs = self.segments.of(data.owners[rows])
            related = [[np.asarray([s], np.uint64)] for s in segs]
        return enc.Annotations(
            self.store.space.points(data.positions[rows]), props, ids.astype(np.uint64), related=related
        )

    # -- AnnotationSource
    def info(self) -> dict:
        return annotation_info(self)

    # -- level of detail
    def _rows(self, k: int, base_cell: Cell) -> np.ndarray:
        return np.flatnonzero(self._band[self.index.draw_levels(self.index.region_of(base_cell))[base_cell]] == k)

    @cached_property
    def _counts(self) -> list[dict[Cell, tuple[int, list[Cell]]]]:
        """Per shown pyramid level: its chunk -> (points drawn there, level-0 cells contributing)."""
        out: list[dict[Cell, tuple[int, list[Cell]]]] = [{} for _ in range(self.pyramid.depth)]
        for region in self.index.region_cells:
            for base_cell, drawn in self.index.draw_levels(region).items():
                shown = self._band[drawn]
                per_level = np.bincount(shown[shown >= 0], minlength=self.pyramid.depth)
                for k in np.flatnonzero(per_level):
                    chunk = self.pyramid.chunk_of(int(k), base_cell)
                    n, cells = out[k].get(chunk, (0, []))
                    out[k][chunk] = (n + int(per_level[k]), [*cells, base_cell])
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
            limit = max((n for n, _ in self._counts[k].values()), default=1)
            grid = self.pyramid.grids[k]
            out.append(enc.SpatialLevel(f"spatial{spatial}", grid.shape, grid.chunk, limit))
        return out

    def cells(self, level: int) -> Iterable[Cell]:
        k = self._level(level)
        return (self.pyramid.grids[k].to_spatial(c) for c in sorted(self._counts[k]))

    def _chunk(self, level: int, cell: Cell) -> tuple[int, Cell] | None:
        k = self._level(level)
        chunk = self.pyramid.grids[k].to_zvf(cell)
        return None if chunk is None or chunk not in self._counts[k] else (k, chunk)

    def cell_extent(self, level: int, cell: Cell) -> tuple[int, int] | None:
        found = self._chunk(level, cell)
        return None if found is None else (self._counts[found[0]][found[1]][0], 0)

    def cell(self, level: int, cell: Cell) -> enc.Annotations:
        k, chunk = self._chunk(level, cell)
        batches = [self._batch(c, self._rows(k, c)) for c in self._counts[k][chunk][1]]
        batch = concat(self.schema, batches)
        order = shuffle_order(batch.ids)
        return enc.Annotations(
            batch.geometry[order], {p: v[order] for p, v in batch.properties.items()}, batch.ids[order]
        )

    def _shown_rows(self, base_cell: Cell) -> np.ndarray:
        return np.flatnonzero(self._band[self.index.draw_levels(self.index.region_of(base_cell))[base_cell]] >= 0)

    def ids(self) -> Iterable[int]:
        if len(self.shown) == self.pyramid.depth:
            return range(1, int(self.index.offsets[-1]) + 1)
        return (
            int(self.index.offsets[i]) + 1 + int(r) for i, c in enumerate(self.level.cells) for r in self._shown_rows(c)
        )

    def _locate(self, aid: int) -> tuple[Cell, int] | None:
        """The cell and row of a shown annotation."""
        if not 1 <= aid <= self.index.offsets[-1]:
            return None
        i = int(np.searchsorted(self.index.offsets, aid - 1, side="right")) - 1
        cell, row = self.level.cells[i], aid - 1 - int(self.index.offsets[i])
        if len(self.shown) < self.pyramid.depth and row not in self._shown_rows(cell):
            return None
        return cell, row

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
        return enc.Annotations(
            np.zeros((0, schema.rank), np.float32),
            {p.id: np.zeros(0) for p in schema.properties},
            np.zeros(0, np.uint64),
        )
    props = {p.id: np.concatenate([b.properties[p.id] for b in batches]) for p in schema.properties}
    counts = None if batches[0].counts is None else np.concatenate([b.counts for b in batches])
    return enc.Annotations(
        np.concatenate([b.geometry for b in batches]), props, np.concatenate([b.ids for b in batches]), counts
    )


class PointIndex:
    """Level-0 ids and the level each point is drawn at, shared by every source of one store."""

    def __init__(self, store: ZVFStore) -> None:
        self.level = store.levels[0]
        self.pyramid = Pyramid.of(store)
        self._regions: Memo[dict[Cell, np.ndarray]] = Memo(
            REGION_CACHE_BYTES, getsizeof=lambda d: sum(a.nbytes for a in d.values()) + 64 * len(d)
        )

    @cached_property
    def offsets(self) -> np.ndarray:
        """First id - 1 of each level-0 cell, in sorted cell order, plus the total at the end."""
        counts = [self.level.count(c) for c in self.level.cells]
        return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])

    @cached_property
    def cell_index(self) -> dict[Cell, int]:
        return {c: i for i, c in enumerate(self.level.cells)}

    def region_of(self, cell: Cell) -> Cell:
        return self.pyramid.chunk_of(self.pyramid.depth - 1, cell)

    @cached_property
    def region_cells(self) -> dict[Cell, list[Cell]]:
        """Coarsest-level chunk -> the level-0 cells inside it."""
        out: dict[Cell, list[Cell]] = {}
        for cell in self.level.cells:
            out.setdefault(self.region_of(cell), []).append(cell)
        return out

    def draw_levels(self, region: Cell) -> dict[Cell, np.ndarray]:
        """Level-0 cell -> the level each of its points is drawn at (all cells of one region)."""

        def compute() -> dict[Cell, np.ndarray]:
            cells = self.region_cells[region]
            datas = [self.level.cell(c) for c in cells]
            ids = np.concatenate(
                [
                    self.offsets[self.cell_index[c]] + 1 + np.arange(len(d.positions))
                    for c, d in zip(cells, datas, strict=True)
                ]
            )
            owners = None if datas[0].owners is None else np.concatenate([d.owners for d in datas])
            drawn = self.pyramid.draw_levels(np.concatenate([d.positions for d in datas]), ids, owners)
            bounds = np.cumsum([0] + [len(d.positions) for d in datas])
            return {c: drawn[a:b] for c, a, b in zip(cells, bounds[:-1], bounds[1:], strict=True)}

        if self.pyramid.depth == 1:
            return {c: np.zeros(self.level.count(c), np.int64) for c in self.region_cells[region]}
        return self._regions.get(region, compute)


@cache
def point_index(store: ZVFStore) -> PointIndex:
    return PointIndex(store)
