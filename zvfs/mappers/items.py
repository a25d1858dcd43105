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

import numpy as np

from ..encoders import annotations as enc
from ..errors import StoreError
from .common import ChunkTable, Context
from .spatial import SpatialSource

OBJECT, GROUP = "object", "group"


class ItemSource(SpatialSource):
    """An :class:`~zvfs.mappers.annotation_layer.AnnotationSource` over the index's item table.

    Subclasses give a batch of items as annotations (:meth:`batch`) and the items of some objects
    (:meth:`items_of`). Per-item columns are read for the rows a request needs (from the index's
    arrays in the memory budget, or from disk when large), never held here.
    """

    def __init__(self, ctx: Context, only_level: int | None = None) -> None:
        super().__init__(ctx, only_level)
        self.view = f"pin{self.shown[0]}" if self.pinned else "all"

    def _whole(self, name: str) -> np.ndarray:
        """A per-item column whole (for work over every item)."""
        return self.ctx.index.whole(f"items/{name}")

    @property
    def n_items(self) -> int:
        return len(self.ctx.index.array("items/ids"))

    def item_ids(self, rows: slice | np.ndarray) -> np.ndarray:
        """Annotation ids of item rows (sorted by row, never 0)."""
        return self.ctx.index.take("items/ids", rows)

    def item_objects(self, rows: slice | np.ndarray) -> np.ndarray:
        """Rows of items' objects in the level-0 object table (-1: none)."""
        return self.ctx.index.take("items/object", rows)

    @abstractmethod
    def item_vertices(self, rows: slice | np.ndarray) -> np.ndarray:
        """Vertices of item rows (-1: unknown, a damaged chunk)."""

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
            if with_groups and "groups/offsets" in self.ctx.index and len(self.ctx.index.array("groups/offsets")) > 1:
                rels.append(GROUP)
        self.schema = enc.AnnotationSchema(annotation_type, len(self.store.axes), tuple(props), tuple(rels))
        self.schema.check()

    # -- spatial lists
    def make_chunk_table(self, k: int) -> ChunkTable:
        p = f"{self.view}/L{k}"
        chunks, counts = self._whole(f"{p}/chunks"), np.diff(self._whole(f"{p}/offsets"))
        if not self.schema.polyline:
            return ChunkTable(chunks, counts)
        vertices = self._whole(f"{p}/vertices")
        return ChunkTable(chunks, np.where(vertices < 0, -1, counts), vertices)

    def chunk(self, k: int, row: int) -> enc.Annotations:
        p = f"items/{self.view}/L{k}"
        given = int(self.chunk_table(k).order[row])
        offsets = self.ctx.index.take(f"{p}/offsets", slice(given, given + 2))
        return self.batch(self.ctx.index.span(f"{p}/items", slice(int(offsets[0]), int(offsets[1]))))

    def _vertices(self, rows: np.ndarray) -> int:
        if not self.schema.polyline:
            return 0
        per_item = self.item_vertices(rows)
        if (per_item < 0).any():
            raise StoreError(f"{self.store.path}: an item lies partly in a chunk that cannot be read (damaged?)")
        return int(per_item.sum())

    # -- by id
    def _shown_rows(self) -> np.ndarray:
        """The item rows drawn in this source (all, unless it is a pinned level)."""
        return np.flatnonzero(self._whole("level") >= self.shown[0]) if self.pinned else np.arange(self.n_items)

    def ids(self) -> Iterable[int]:
        return (int(i) for i in self.item_ids(self._shown_rows()))

    def id_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self._shown_rows()
        vertices = self.item_vertices(rows) if self.schema.polyline else np.zeros(len(rows), np.int64)
        return self.item_ids(rows).astype(np.uint64), self._related_counts(rows), vertices

    def _row(self, aid: int) -> int | None:
        k = int(self.ctx.index.find("items/ids", np.asarray([aid]))[0])
        if k >= self.n_items or int(self.item_ids(slice(k, k + 1))[0]) != aid:
            return None
        shown = not self.pinned or int(self.ctx.index.take("items/level", slice(k, k + 1))[0]) >= self.shown[0]
        return k if shown else None

    def _groups_of(self, objects: np.ndarray) -> list[np.ndarray]:
        """The groups holding each object row."""
        offsets, groups = (self.ctx.index.array(f"groups/{x}") for x in ("of_offsets", "of"))
        return [np.asarray(groups[int(offsets[o]) : int(offsets[o + 1])]) for o in objects.tolist()]

    def _related_counts(self, rows: np.ndarray) -> np.ndarray:
        """How many related ids each item has, per relationship (n, relationships)."""
        obj = self.item_objects(rows)
        owned = np.maximum(obj, 0)
        columns = []
        for rel in self.schema.relationships:
            if rel == OBJECT:
                columns.append((obj >= 0).astype(np.int64))
            else:
                offsets = "groups/of_offsets"
                held = self.ctx.index.take(offsets, owned + 1) - self.ctx.index.take(offsets, owned)
                columns.append(np.where(obj >= 0, held, 0))
        return np.stack(columns, 1) if columns else np.zeros((len(rows), 0), np.int64)

    def _related_lists(self, rows: np.ndarray) -> list[list[np.ndarray]]:
        """The related ids of each item, per relationship."""
        obj = self.item_objects(rows).tolist()
        none = np.zeros(0, np.uint64)
        columns = []
        for rel in self.schema.relationships:
            if rel == OBJECT:
                assert self.segments is not None
                owners = self.ctx.objects(0).ids_at(np.maximum(np.asarray(obj, np.int64), 0))
                segments = self.segments.of(owners)
                columns.append([segments[i : i + 1] if o >= 0 else none for i, o in enumerate(obj)])
            else:
                held = self._groups_of(np.maximum(np.asarray(obj, np.int64), 0))
                members = [(g + 1).astype(np.uint64) for g in held]
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
        rows = self.ctx.index.find("items/ids", np.asarray(aids))
        ann = self.batch(rows)
        ann.related = self._related_lists(rows)
        return ann

    # -- by object and by group
    def related_ids(self, relationship: str) -> Iterable[int]:
        if relationship == OBJECT:
            assert self.segments is not None
            objects = self._whole("object")
            owned = np.unique(objects[objects >= 0])
            return (int(s) for s in np.sort(self.segments.of(self.ctx.objects(0).ids[owned])))
        offsets = self.ctx.index.whole("groups/offsets")
        return (int(g) + 1 for g in np.flatnonzero(np.diff(offsets) > 0))

    def _related_rows(self, relationship: str, related: int) -> np.ndarray | None:
        if relationship == OBJECT:
            assert self.segments is not None
            oid = self.segments.object_of(related)
            row = None if oid is None else self.ctx.objects(0).row_of(oid)
            rows = self.items_of(np.asarray([row])) if row is not None else np.zeros(0, np.int64)
        else:
            offsets, members = (self.ctx.index.array(f"groups/{x}") for x in ("offsets", "members"))
            g = related - 1
            held = members[int(offsets[g]) : int(offsets[g + 1])] if 0 <= g < len(offsets) - 1 else np.zeros(0)
            rows = self.items_of(np.asarray(held))
        return np.sort(np.asarray(rows, np.int64)) if len(rows) else None

    def related_extent(self, relationship: str, related: int) -> tuple[int, int] | None:
        rows = self._related_rows(relationship, related)
        return None if rows is None else (len(rows), self._vertices(rows))

    def related(self, relationship: str, related: int) -> enc.Annotations:
        return self.related_groups(relationship, np.asarray([related], np.uint64))[0]

    def related_table(self, relationship: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        objects = self._whole("object")
        owned = objects >= 0
        n_objects = len(self.ctx.objects(0).objects)
        items = np.bincount(objects[owned], minlength=n_objects)
        vertices = np.zeros(n_objects, np.int64)
        if self.schema.polyline:
            per_item = self.item_vertices(np.flatnonzero(owned))
            unknown = np.bincount(objects[owned], per_item < 0, n_objects) > 0
            summed = np.bincount(objects[owned], per_item, n_objects)
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
