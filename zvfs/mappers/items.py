"""Annotation sources whose annotations are items spanning several vertices (lines, polylines,
graph edges): the item table, the spatial index and the relationship index shared by all of them.

Level of detail follows the ZVF pyramid's object sparsity: an item is drawn at the coarsest
spatial level whose ZVF level keeps its object (items without an object, and stores without a
pyramid, at level 0). Within that level it is listed in every chunk holding one of its vertices,
so it is drawn wherever it passes (the client may draw it once per visible cell; identical
overdraw is invisible). Within a cell the items are shuffled by id, so a drawn prefix is a uniform
sample.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from functools import cached_property

import numpy as np

from ..encoders import annotations as enc
from ..properties import Column
from ..store import ZVFStore
from .annotation_layer import annotation_info
from .common import Cell, SegmentIds, shuffle_order
from .pyramid import Pyramid

OBJECT, GROUP = "object", "group"


class Membership:
    """One relationship as (item row, related id) pairs, looked up from either side."""

    def __init__(self, rows: np.ndarray, related: np.ndarray) -> None:
        rows, related = np.asarray(rows, np.int64), np.asarray(related, np.uint64)
        by_row, by_id = np.lexsort((related, rows)), np.lexsort((rows, related))
        self._rows_by_row, self._related_by_row = rows[by_row], related[by_row]
        self._related_by_id, self._rows_by_id = related[by_id], rows[by_id]

    def of(self, row: int) -> np.ndarray:
        keys = self._rows_by_row
        return self._related_by_row[np.searchsorted(keys, row) : np.searchsorted(keys, row, side="right")]

    def members(self, related: int) -> np.ndarray:
        keys, key = self._related_by_id, np.uint64(related)
        return self._rows_by_id[np.searchsorted(keys, key) : np.searchsorted(keys, key, side="right")]

    def ids(self) -> np.ndarray:
        return np.unique(self._related_by_id)


class ItemSource(ABC):
    """An :class:`~zvfs.mappers.annotation_layer.AnnotationSource` over a table of items.

    Subclasses give, per item (row ``i`` of the table): its annotation id (:attr:`item_ids`,
    sorted, never 0), its cells and vertex count (:meth:`item_cells`), the object it belongs to
    (:attr:`item_objects`, or None) and a batch of items as annotations (:meth:`batch`).
    """

    schema: enc.AnnotationSchema
    columns: list[Column]

    def __init__(self, store: ZVFStore, only_level: int | None = None) -> None:
        """Every pyramid level, or with ``only_level`` N one spatial level on level N's grid holding
        every item drawn at N or coarser."""
        self.store = store
        self.level = store.levels[0]
        store.space.check_axis_aligned("annotation layers")
        self.pyramid = Pyramid.of(store)
        self.grid = self.pyramid.grids[0]
        self.shown = list(range(self.pyramid.depth)) if only_level is None else [only_level]
        self.segments = SegmentIds(self.level)

    # -- what a geometry type provides
    @property
    @abstractmethod
    def item_ids(self) -> np.ndarray: ...

    @abstractmethod
    def item_cells(self) -> tuple[list[list[Cell]], np.ndarray]:
        """Per item: the ZVF cells holding its vertices; and its vertex count (for polylines)."""

    @property
    def item_objects(self) -> np.ndarray | None:
        return None

    @abstractmethod
    def batch(self, items: np.ndarray) -> enc.Annotations:
        """Annotations of table rows ``items`` (geometry, properties, ids; related ids for by_id)."""

    def make_schema(
        self, annotation_type: str, props: Sequence[enc.Property], with_objects: bool, with_groups: bool = False
    ) -> None:
        """The schema; relationships ``object`` (to the object's segment id) and ``group`` (to
        1 + the index of every ZVF group holding the object) when asked and the store has them."""
        rels = []
        pinned = len(self.shown) < self.pyramid.depth  # a view of one level; the layer has relationships
        if with_objects and self.level.has_objects and not pinned:
            rels.append(OBJECT)
            if with_groups and len(self.level.groups()):
                rels.append(GROUP)
        self.schema = enc.AnnotationSchema(annotation_type, len(self.store.axes), tuple(props), tuple(rels))
        self.schema.check()

    @cached_property
    def _memberships(self) -> dict[str, Membership]:
        objects = self.item_objects
        out = {}
        if OBJECT in self.schema.relationships:
            rows = np.flatnonzero(objects >= 0)
            out[OBJECT] = Membership(rows, self.segments.of(objects[rows]))
        if GROUP in self.schema.relationships:
            pairs = [
                (rows, np.full(len(rows), g + 1))
                for g, members in enumerate(self.level.groups())
                for rows in [np.flatnonzero(np.isin(objects, members))]
            ]
            out[GROUP] = Membership(np.concatenate([r for r, _ in pairs]), np.concatenate([g for _, g in pairs]))
        return out

    def related_of(self, items: np.ndarray) -> list[list[np.ndarray]]:
        return [[self._memberships[r].of(int(k)) for r in self.schema.relationships] for k in items]

    # -- indexes
    @cached_property
    def _table(self) -> tuple[list[list[Cell]], np.ndarray]:
        return self.item_cells()

    @cached_property
    def _item_levels(self) -> np.ndarray:
        """The pyramid level each item is drawn at: the coarsest that keeps its object."""
        drawn = np.zeros(len(self.item_ids), np.int64)
        objects = self.item_objects
        for k in range(1, self.pyramid.depth):
            kept = self.pyramid.present[k]
            if objects is not None and kept is not None:
                drawn[np.isin(objects, kept)] = k
        return drawn

    @cached_property
    def _by_cell(self) -> list[dict[Cell, np.ndarray]]:
        """Per pyramid level: chunk -> item rows drawn there, shuffled by id."""
        members: list[dict[Cell, list[int]]] = [{} for _ in range(self.pyramid.depth)]
        band = self.pyramid.band(self.shown)
        for i, (cells, drawn) in enumerate(zip(self._table[0], self._item_levels.tolist(), strict=True)):
            k = int(band[drawn])
            if k < 0:
                continue
            for chunk in dict.fromkeys(self.pyramid.chunk_of(k, c) for c in cells):
                members[k].setdefault(chunk, []).append(i)
        ids = self.item_ids
        return [
            {c: (rows := np.asarray(m, np.int64))[shuffle_order(ids[rows])] for c, m in sorted(level.items())}
            for level in members
        ]

    def _vertices(self, rows: np.ndarray) -> int:
        return int(self._table[1][rows].sum()) if self.schema.polyline else 0

    # -- AnnotationSource
    def info(self) -> dict:
        return annotation_info(self)

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
            limit = max((len(r) for r in self._by_cell[k].values()), default=1)
            out.append(enc.SpatialLevel(f"spatial{spatial}", grid.shape, grid.chunk, limit))
        return out

    def cells(self, level: int) -> Iterable[Cell]:
        k = self._level(level)
        return (self.pyramid.grids[k].to_spatial(c) for c in self._by_cell[k])

    def _rows_in(self, level: int, cell: Cell) -> np.ndarray | None:
        k = self._level(level)
        chunk = self.pyramid.grids[k].to_zvf(cell)
        return None if chunk is None else self._by_cell[k].get(chunk)

    def cell_extent(self, level: int, cell: Cell) -> tuple[int, int] | None:
        rows = self._rows_in(level, cell)
        return None if rows is None else (len(rows), self._vertices(rows))

    def cell(self, level: int, cell: Cell) -> enc.Annotations:
        return self.batch(self._rows_in(level, cell))

    @cached_property
    def _shown(self) -> np.ndarray:
        """Whether each item is drawn in this source (all, unless it is a pinned level)."""
        return self.pyramid.band(self.shown)[self._item_levels] >= 0

    def ids(self) -> Iterable[int]:
        return (int(i) for i in self.item_ids[self._shown])

    def _row(self, aid: int) -> int | None:
        k = int(np.searchsorted(self.item_ids, aid))
        return k if k < len(self.item_ids) and self.item_ids[k] == aid and self._shown[k] else None

    def annotation_extent(self, aid: int) -> tuple[list[int], int] | None:
        k = self._row(aid)
        if k is None:
            return None
        related = [len(self._memberships[r].of(k)) for r in self.schema.relationships]
        return related, self._vertices(np.asarray([k]))

    def annotation(self, aid: int) -> enc.Annotations:
        rows = np.asarray([self._row(aid)])
        ann = self.batch(rows)
        ann.related = self.related_of(rows)
        return ann

    def related_ids(self, relationship: str) -> Iterable[int]:
        return (int(i) for i in self._memberships[relationship].ids())

    def _members(self, relationship: str, related: int) -> np.ndarray | None:
        rows = self._memberships[relationship].members(related)
        return rows if len(rows) else None

    def related_extent(self, relationship: str, related: int) -> tuple[int, int] | None:
        rows = self._members(relationship, related)
        return None if rows is None else (len(rows), self._vertices(rows))

    def related(self, relationship: str, related: int) -> enc.Annotations:
        return self.batch(self._members(relationship, related))
