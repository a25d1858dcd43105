"""Annotation sources whose annotations are items spanning several vertices (lines, polylines,
graph edges): the item table, its spatial lists and relationships, all from the store's index.

Level of detail follows the ZVF pyramid's object sparsity: an item is drawn at the coarsest
spatial level whose ZVF level keeps its object (items without an object, and stores without a
pyramid, at level 0), unless that level's cells would hold too many items: then a fixed share of
them, chosen by id, goes on to the next finer level (:func:`~zvfs.index.build.item_levels`). Within
its level an item is listed in every chunk holding one of its vertices, so it is drawn wherever it
passes (the client may draw it once per visible cell; identical overdraw is invisible). Within a
cell the items are shuffled by id, so a drawn prefix is a uniform sample.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from functools import cached_property

import numpy as np

from ..encoders import annotations as enc
from ..errors import StoreError
from .common import ChunkTable, Context
from .spatial import SpatialSource

OBJECT, GROUP = "object", "group"


class ItemSource(SpatialSource):
    """An :class:`~zvfs.mappers.annotation_layer.AnnotationSource` over the index's item table.

    Subclasses give a batch of items as annotations (:meth:`batch`) and the items of some objects
    (:meth:`items_of`).
    """

    def __init__(self, ctx: Context, only_level: int | None = None) -> None:
        super().__init__(ctx, only_level)
        self.view = f"pin{self.shown[0]}" if self.pinned else "all"

    def _array(self, name: str) -> np.ndarray:
        return self.ctx.index.whole(f"items/{name}")

    @cached_property
    def item_ids(self) -> np.ndarray:
        """Annotation id of each item (sorted, never 0)."""
        return self._array("ids")

    @cached_property
    def item_objects(self) -> np.ndarray:
        """Row of each item's object in the level-0 object table (-1: none)."""
        return self._array("object")

    @abstractmethod
    def item_vertices(self) -> np.ndarray:
        """Vertices of each item (-1: unknown, a damaged chunk)."""

    @abstractmethod
    def batch(self, items: np.ndarray) -> enc.Annotations:
        """Annotations of item rows ``items`` (geometry, properties, ids)."""

    @abstractmethod
    def items_of(self, object_rows: np.ndarray) -> np.ndarray:
        """Item rows of the given object rows."""

    def make_schema(self, annotation_type: str, props: Sequence[enc.Property], with_groups: bool = False) -> None:
        """The schema; relationships ``object`` (to the object's segment id) and ``group`` (to
        1 + the index of every ZVF group holding the object) when the store has them."""
        rels = []
        if self.segments is not None and not self.pinned:
            rels.append(OBJECT)
            if with_groups and "groups/offsets" in self.ctx.index and len(self.ctx.index.whole("groups/offsets")) > 1:
                rels.append(GROUP)
        self.schema = enc.AnnotationSchema(annotation_type, len(self.store.axes), tuple(props), tuple(rels))
        self.schema.check()

    # -- spatial lists
    def _members(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = f"{self.view}/L{k}"
        return self._array(f"{p}/chunks"), self._array(f"{p}/offsets"), self._array(f"{p}/items")

    def make_chunk_table(self, k: int) -> ChunkTable:
        chunks, offsets, items = self._members(k)
        counts = np.diff(offsets)
        vertices = np.zeros(len(counts), np.int64)
        if self.schema.polyline and len(items):
            per_item = self.item_vertices()[items]
            vertices = np.add.reduceat(per_item, offsets[:-1]) if len(counts) else vertices
            unknown = np.add.reduceat((per_item < 0).astype(np.int64), offsets[:-1]) > 0
            counts = np.where(unknown, -1, counts)
        return ChunkTable(chunks, counts, vertices)

    def chunk(self, k: int, row: int) -> enc.Annotations:
        _, offsets, items = self._members(k)
        given = int(self.chunk_table(k).order[row])
        return self.batch(items[offsets[given] : offsets[given + 1]])

    def _vertices(self, rows: np.ndarray) -> int:
        if not self.schema.polyline:
            return 0
        per_item = self.item_vertices()[rows]
        if (per_item < 0).any():
            raise StoreError(f"{self.store.path}: an item lies partly in a chunk that cannot be read (damaged?)")
        return int(per_item.sum())

    # -- by id
    @cached_property
    def _shown(self) -> np.ndarray:
        """Whether each item is drawn in this source (all, unless it is a pinned level)."""
        return self._array("level") >= self.shown[0] if self.pinned else np.ones(len(self.item_ids), bool)

    def ids(self) -> Iterable[int]:
        return (int(i) for i in self.item_ids[self._shown])

    def id_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.flatnonzero(self._shown)
        vertices = self.item_vertices()[rows] if self.schema.polyline else np.zeros(len(rows), np.int64)
        return self.item_ids[rows].astype(np.uint64), self._related_counts(rows), vertices

    def _row(self, aid: int) -> int | None:
        k = int(np.searchsorted(self.item_ids, aid))
        return k if k < len(self.item_ids) and self.item_ids[k] == aid and self._shown[k] else None

    def _groups_of(self) -> tuple[np.ndarray, np.ndarray]:
        """(CSR offsets by object row, group indices): the groups holding each object."""
        return self.ctx.index.whole("groups/of_offsets"), self.ctx.index.whole("groups/of")

    def _related_counts(self, rows: np.ndarray) -> np.ndarray:
        """How many related ids each item has, per relationship (n, relationships)."""
        obj = self.item_objects[rows]
        columns = [
            (obj >= 0).astype(np.int64) if rel == OBJECT else np.where(obj >= 0, np.diff(self._groups_of()[0])[obj], 0)
            for rel in self.schema.relationships
        ]
        return np.stack(columns, 1) if columns else np.zeros((len(rows), 0), np.int64)

    def _related_lists(self, rows: np.ndarray) -> list[list[np.ndarray]]:
        """The related ids of each item, per relationship."""
        obj = self.item_objects[rows].tolist()
        none = np.zeros(0, np.uint64)
        columns = []
        for rel in self.schema.relationships:
            if rel == OBJECT:
                assert self.segments is not None
                owners = self.ctx.objects(0).ids[[max(o, 0) for o in obj]] if obj else np.zeros(0, np.int64)
                segments = self.segments.of(owners)
                columns.append([segments[i : i + 1] if o >= 0 else none for i, o in enumerate(obj)])
            else:
                offsets, groups = self._groups_of()
                members = [(groups[offsets[o] : offsets[o + 1]] + 1).astype(np.uint64) for o in obj]
                columns.append([m if o >= 0 else none for m, o in zip(members, obj, strict=True)])
        return [list(r) for r in zip(*columns, strict=True)] if columns else [[] for _ in obj]

    def annotation_extent(self, aid: int) -> tuple[list[int], int] | None:
        k = self._row(aid)
        if k is None:
            return None
        return self._related_counts(np.asarray([k]))[0].tolist(), self._vertices(np.asarray([k]))

    def annotation(self, aid: int) -> enc.Annotations:
        assert self._row(aid) is not None
        return self.annotation_batch(np.asarray([aid], np.uint64))

    def annotation_batch(self, aids: np.ndarray) -> enc.Annotations:
        rows = np.searchsorted(self.item_ids, np.asarray(aids, self.item_ids.dtype))
        ann = self.batch(rows)
        ann.related = self._related_lists(rows)
        return ann

    # -- by object and by group
    def related_ids(self, relationship: str) -> Iterable[int]:
        if relationship == OBJECT:
            assert self.segments is not None
            owned = np.unique(self.item_objects[self.item_objects >= 0])
            return (int(s) for s in np.sort(self.segments.of(self.ctx.objects(0).ids[owned])))
        offsets = self.ctx.index.whole("groups/offsets")
        return (g + 1 for g in range(len(offsets) - 1) if offsets[g + 1] > offsets[g])

    def _related_rows(self, relationship: str, related: int) -> np.ndarray | None:
        if relationship == OBJECT:
            assert self.segments is not None
            oid = self.segments.object_of(related)
            row = None if oid is None else self.ctx.objects(0).row_of(oid)
            rows = self.items_of(np.asarray([row])) if row is not None else np.zeros(0, np.int64)
        else:
            offsets, members = self.ctx.index.whole("groups/offsets"), self.ctx.index.whole("groups/members")
            g = related - 1
            rows = self.items_of(members[offsets[g] : offsets[g + 1]]) if 0 <= g < len(offsets) - 1 else np.zeros(0)
        return np.sort(np.asarray(rows, np.int64)) if len(rows) else None

    def related_extent(self, relationship: str, related: int) -> tuple[int, int] | None:
        rows = self._related_rows(relationship, related)
        return None if rows is None else (len(rows), self._vertices(rows))

    def related(self, relationship: str, related: int) -> enc.Annotations:
        return self.related_groups(relationship, np.asarray([related], np.uint64))[0]

    def related_table(self, relationship: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        owned = self.item_objects >= 0
        n_objects = len(self.ctx.objects(0).ids)
        items = np.bincount(self.item_objects[owned], minlength=n_objects)
        vertices = np.zeros(n_objects, np.int64)
        if self.schema.polyline:
            per_item = self.item_vertices()[owned]
            unknown = np.bincount(self.item_objects[owned], per_item < 0, n_objects) > 0
            summed = np.bincount(self.item_objects[owned], per_item, n_objects)
            vertices = np.where(unknown, -1, summed).astype(np.int64)
        if relationship == OBJECT:
            assert self.segments is not None
            rows = np.flatnonzero(items)
            keys, counts, points = self.segments.of(self.ctx.objects(0).ids[rows]), items[rows], vertices[rows]
        else:
            offsets, members = self.ctx.index.whole("groups/offsets"), self.ctx.index.whole("groups/members")
            keys = np.arange(1, len(offsets), dtype=np.uint64)
            counts, points = (np.diff(np.concatenate([[0], np.cumsum(v[members])])[offsets]) for v in (items, vertices))
            unknown = np.diff(np.concatenate([[0], np.cumsum(vertices[members] < 0)])[offsets]) > 0
            points = np.where(unknown, -1, points)
        kept = counts > 0  # no items: no file
        order = np.argsort(keys[kept])
        return keys[kept][order], counts[kept][order].astype(np.int64), points[kept][order].astype(np.int64)

    def related_groups(self, relationship: str, segments: np.ndarray) -> tuple[enc.Annotations, np.ndarray]:
        found = [self._related_rows(relationship, int(s)) for s in np.asarray(segments).tolist()]
        rows = [np.zeros(0, np.int64) if r is None else r for r in found]
        return self.batch(np.concatenate([np.zeros(0, np.int64), *rows])), np.asarray([len(r) for r in rows])
