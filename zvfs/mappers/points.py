"""ZVF ``point_cloud`` -> point annotations.

Ids: annotation id = 1 + the point's row in the level-0 cells taken in sorted cell order, so ids
are dense, never 0, and fixed by the store alone. The spatial index has one level per usable ZVF
pyramid level; each point is drawn at exactly one level (:func:`~zvfs.index.build.point_levels`),
in the one cell of that level's chunk grid that holds it, shuffled by id so that a prefix drawn by
the client is a uniform sample. The points drawn at coarse levels are kept whole in the store's
index, so a coarse cell reads no store chunk; a level-0 cell reads its one chunk. Per-vertex
attributes become properties, and so do per-object attributes; with an object index, relationship
``object`` links each point to its object's segment id.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

import numpy as np

from ..encoders import annotations as enc
from ..errors import StoreError
from ..index.build import id_hash, owners_of
from ..properties import columns
from .common import ChunkTable, Context
from .spatial import SpatialSource

RELATIONSHIP = "object"


class PointSource(SpatialSource):
    """An :class:`~zvfs.mappers.annotation_layer.AnnotationSource` over a point cloud's pyramid."""

    def __init__(self, ctx: Context, only_level: int | None = None) -> None:
        super().__init__(ctx, only_level)
        index = ctx.index
        self.base = index.level(0)
        taken: set[str] = set()
        self.vertex_columns = columns(self.level.vertex_attributes, "vertex", taken)
        self.object_cols = self.object_columns(taken)
        props = tuple(c.prop for c in self.vertex_columns + self.object_cols)
        rels = (RELATIONSHIP,) if self.segments is not None and not self.pinned else ()
        self.schema = enc.AnnotationSchema("point", len(self.store.axes), props, rels)
        self.schema.check()
        self.first_ids = np.concatenate([[0], np.cumsum(np.maximum(self.base.counts, 0))])

    def _array(self, name: str) -> np.ndarray:
        return self.ctx.index.whole(f"points/{name}")

    @cached_property
    def _damaged(self) -> np.ndarray:
        return self._array("damaged")

    # -- which points a level draws
    def _excluded_offsets(self) -> np.ndarray:
        """Per level-0 cell (CSR offsets into ``excl_row``/``excl_level``) the rows drawn coarser."""
        if "points/excl_offsets" not in self.ctx.index:
            return np.zeros(len(self.base.counts) + 1, np.int64)
        return self._array("excl_offsets")

    def _excluded(self, cell: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, levels) of a level-0 cell drawn at coarser levels: read for that cell alone."""
        offsets = self._excluded_offsets()
        rows = slice(int(offsets[cell]), int(offsets[cell + 1]))
        if rows.start == rows.stop:
            return np.zeros(0, np.int64), np.zeros(0, np.uint8)
        return self.ctx.index.span("points/excl_row", rows), self.ctx.index.span("points/excl_level", rows)

    def _rows(self, cell: int) -> np.ndarray:
        """The rows of a level-0 cell this source draws at level 0 (pinned level 0: all of them)."""
        n = int(self.base.counts[cell])
        if self.pinned:
            return np.arange(n)
        return np.setdiff1d(np.arange(n), self._excluded(cell)[0])

    def _coarse_column(self, name: str, rows: slice | np.ndarray) -> np.ndarray:
        """Rows of a column of the points kept whole in the index: a span read from disk alone, or
        any rows (the whole column read)."""
        name = f"points/coarse_{name}"
        return self.ctx.index.span(name, rows) if isinstance(rows, slice) else self.ctx.index.whole(name)[rows]

    def _coarse_members(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pinned level n >= 1: (chunks, CSR offsets, coarse point rows in hash order) of every
        point drawn at n or coarser, on level n's grid."""
        members = np.flatnonzero(self._array("coarse_level") >= n)
        chunk = self.base.cells[self._array("coarse_cell")[members]] // self.pyramid.ratios[n]
        order = np.lexsort((id_hash(self._coarse_ids(members)), *chunk.T[::-1]))
        members, chunk = members[order], chunk[order]
        changes = np.concatenate([[True], (np.diff(chunk, axis=0) != 0).any(1)]) if len(chunk) else np.zeros(0, bool)
        starts = np.flatnonzero(changes)
        return chunk[starts].reshape(-1, chunk.shape[1]), np.append(starts, len(members)), members

    def _coarse_ids(self, rows: slice | np.ndarray) -> np.ndarray:
        cells, within = self._coarse_column("cell", rows), self._coarse_column("row", rows)
        return (self.first_ids[cells] + within + 1).astype(np.uint64)

    @cached_property
    def _coarse_cells(self) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """Shown level k >= 1 -> (chunks, spans (M, 2), members): coarse cell i draws the points kept
        in the index at ``members[a:b]`` (pinned levels), or at ``a:b`` themselves (a contiguous span,
        read alone)."""
        if self.pinned:
            if self.shown[0] == 0:
                return {}
            chunks, offsets, members = self._coarse_members(self.shown[0])
            return {self.shown[0]: (chunks, np.stack([offsets[:-1], offsets[1:]], 1), members)}
        if "points/chunk_level" not in self.ctx.index:
            return {}
        level, cells, offsets = self._array("chunk_level"), self._array("chunk_cell"), self._array("chunk_offsets")
        out: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        for k in range(1, self.pyramid.depth):
            at = np.flatnonzero(level == k)
            out[k] = (cells[at], np.stack([offsets[at], offsets[at + 1]], 1).astype(np.int64), None)
        return out

    def _coarse_rows(self, k: int, given: int) -> slice | np.ndarray:
        _, spans, members = self._coarse_cells[k]
        a, b = (int(x) for x in spans[given])
        return slice(a, b) if members is None else members[a:b]

    def make_chunk_table(self, k: int) -> ChunkTable:
        if k > 0:
            chunks, spans, _ = self._coarse_cells[k]
            return ChunkTable(chunks, spans[:, 1] - spans[:, 0])
        counts = self.base.counts.copy()
        if not self.pinned:
            counts = np.where(counts < 0, -1, counts - np.diff(self._excluded_offsets()))
        counts[self._damaged] = -1  # listed: Neuroglancer asks; reading it fails (EIO)
        return ChunkTable(self.base.cells, counts)

    # -- batches
    def _owners(self, cell: int, rows: np.ndarray) -> np.ndarray:
        """Object id of the given rows of a level-0 cell (its runs read for that cell alone)."""
        offsets = self._array("owner_offsets")
        cell_runs = slice(int(offsets[cell]), int(offsets[cell + 1]))
        objects, starts, lengths = (
            self.ctx.index.span(f"points/owner_{x}", cell_runs) for x in ("object", "start", "rows")
        )
        return owners_of((objects, starts, lengths), int(self.base.counts[cell]))[rows]

    def _annotations(
        self, positions: np.ndarray, attributes: dict[str, np.ndarray], owners: np.ndarray | None, ids: np.ndarray
    ) -> enc.Annotations:
        props = {c.prop.id: c.values(attributes) for c in self.vertex_columns}
        related: list = []
        if owners is not None:
            props.update(self.object_properties(self.object_cols, owners))
            if self.schema.relationships:
                assert self.segments is not None
                related = [[np.asarray([s], np.uint64)] for s in self.segments.of(owners)]
        return enc.Annotations(self.ctx.space.frame.points(positions), props, ids.astype(np.uint64), related=related)

    def _cell_batch(self, cell: int, rows: np.ndarray) -> enc.Annotations:
        """Annotations for some rows of one level-0 cell (read from the store)."""
        if cell in self._damaged:
            where = tuple(self.base.cells[cell].tolist())
            raise StoreError(f"{self.store.path}: level 0: cell {where}: its chunks cannot be read (damaged?)")
        data = self.level.cell(tuple(self.base.cells[cell].tolist()))
        attributes = {name: column[rows] for name, column in data.attributes.items()}
        owners = self._owners(cell, rows) if self.segments is not None else None
        return self._annotations(data.positions[rows], attributes, owners, self.first_ids[cell] + rows + 1)

    def _coarse_batch(self, rows: slice | np.ndarray) -> enc.Annotations:
        """Annotations for points kept whole in the index (coarse levels)."""
        attributes = {
            a.name: self._coarse_column(f"attribute{i}", rows) for i, a in enumerate(self.level.vertex_attributes)
        }
        owners = self._coarse_column("owner", rows) if self.segments is not None else None
        return self._annotations(self._coarse_column("positions", rows), attributes, owners, self._coarse_ids(rows))

    def chunk(self, k: int, row: int) -> enc.Annotations:
        given = int(self.chunk_table(k).order[row])
        if k > 0:
            return self._coarse_batch(self._coarse_rows(k, given))
        batch = self._cell_batch(given, self._rows(given))
        order = np.argsort(id_hash(batch.ids), kind="stable")
        return enc.Annotations(
            batch.geometry[order], {p: v[order] for p, v in batch.properties.items()}, batch.ids[order]
        )

    # -- by id
    @property
    def _every_id(self) -> bool:
        """Whether this source shows every point (ids 1..N)."""
        return not self.pinned or self.shown[0] == 0

    def _pinned_ids(self) -> np.ndarray:
        _, _, members = self._coarse_cells[self.shown[0]]
        assert members is not None
        return np.sort(self._coarse_ids(members))

    def ids(self) -> Iterable[int]:
        return range(1, int(self.first_ids[-1]) + 1) if self._every_id else self._pinned_ids().tolist()

    def id_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = np.arange(1, int(self.first_ids[-1]) + 1, dtype=np.uint64) if self._every_id else self._pinned_ids()
        related = np.ones((len(ids), len(self.schema.relationships)), np.int64)
        return ids, related, np.zeros(len(ids), np.int64)

    def _locate(self, aid: int) -> tuple[int, int] | None:
        """The level-0 cell and row of a shown annotation."""
        if not 1 <= aid <= self.first_ids[-1]:
            return None
        cell = int(np.searchsorted(self.first_ids, aid - 1, side="right")) - 1
        row = aid - 1 - int(self.first_ids[cell])
        if self.pinned and self.shown[0] > 0:
            rows, levels = self._excluded(cell)
            at = int(np.searchsorted(rows, row))
            if at >= len(rows) or rows[at] != row or levels[at] < self.shown[0]:
                return None
        return cell, row

    def annotation_extent(self, aid: int) -> tuple[list[int], int] | None:
        if self._locate(aid) is None:
            return None
        return [1] * len(self.schema.relationships), 0

    def annotation(self, aid: int) -> enc.Annotations:
        found = self._locate(aid)
        assert found is not None
        return self._cell_batch(found[0], np.asarray([found[1]]))

    def annotation_batch(self, aids: np.ndarray) -> enc.Annotations:
        aids = np.asarray(aids, np.int64)
        cells = np.searchsorted(self.first_ids, aids - 1, side="right") - 1
        return self._cells_batch(cells, aids - 1 - self.first_ids[cells])

    def _cells_batch(self, cells: np.ndarray, rows: np.ndarray) -> enc.Annotations:
        """Annotations of rows of level-0 cells (``cells[i]``, ``rows[i]``: one point each), one
        store read per cell, in the order of (cell, row)."""
        order = np.lexsort((rows, cells))
        cells, rows = cells[order], rows[order]
        cuts = np.flatnonzero(np.diff(cells)) + 1
        runs = zip(np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(cells)]]).tolist(), strict=True)
        return concat(self.schema, [self._cell_batch(int(cells[a]), rows[a:b]) for a, b in runs if b > a])

    # -- by object
    def related_ids(self, relationship: str) -> Iterable[int]:
        assert self.segments is not None
        return (int(s) for s in self.segments.all())

    def related_table(self, relationship: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self.segments is not None
        segments = self.segments.all()
        counts = self.ctx.index.objects(0).sizes()[self.segments.rows_of(segments)]  # -1: unknown
        return segments, counts, np.zeros(len(segments), np.int64)

    def _pieces(self, object_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(level-0 cell, row) of every point of some objects, object after object in their piece
        order, and how many points each object has."""
        objects = self.ctx.index.objects(0)
        pieces = [objects.pieces(int(r)) for r in object_rows]
        cells, starts, n = (
            np.concatenate([np.zeros(0, np.int64), *(np.asarray(p[column], np.int64) for p in pieces)])
            for column in range(3)
        )
        if (n < 0).any():
            raise StoreError(f"{self.store.path}: an object lies partly in a chunk that cannot be read (damaged?)")
        before = np.cumsum(n) - n  # points of the pieces before each piece
        rows = np.repeat(starts - before, n) + np.arange(int(n.sum()))
        return np.repeat(cells, n), rows, np.asarray([int(p[2].sum()) for p in pieces], np.int64)

    def related_extent(self, relationship: str, segment: int) -> tuple[int, int] | None:
        assert self.segments is not None
        oid = self.segments.object_of(segment)
        row = None if oid is None else self.ctx.index.objects(0).row_of(oid)
        return None if row is None else (int(self._pieces(np.asarray([row]))[2][0]), 0)

    def related_groups(self, relationship: str, segments: np.ndarray) -> tuple[enc.Annotations, np.ndarray]:
        assert self.segments is not None
        cells, rows, groups = self._pieces(self.segments.rows_of(segments))
        batch = self._cells_batch(cells, rows)  # in (cell, row) order: back to the objects' own
        return batch.take(np.argsort(np.lexsort((rows, cells)))), groups

    def related(self, relationship: str, segment: int) -> enc.Annotations:
        return self.related_groups(relationship, np.asarray([segment], np.uint64))[0]


def concat(schema: enc.AnnotationSchema, batches: list[enc.Annotations]) -> enc.Annotations:
    """One batch of several (property columns, geometry, ids and related ids back to back)."""
    if not batches:
        return enc.Annotations(
            np.zeros((0, schema.rank), np.float32),
            {p.id: np.zeros(0) for p in schema.properties},
            np.zeros(0, np.uint64),
        )
    props = {p.id: np.concatenate([b.properties[p.id] for b in batches]) for p in schema.properties}
    counts = None if batches[0].counts is None else np.concatenate([b.counts for b in batches])  # type: ignore[misc]
    related = [r for b in batches for r in b.related]
    return enc.Annotations(
        np.concatenate([b.geometry for b in batches]), props, np.concatenate([b.ids for b in batches]), counts, related
    )
