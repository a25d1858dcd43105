"""The files of one ``neuroglancer_annotations_v1`` collection, over any :class:`AnnotationSource`.

Which annotations exist, where, and with which properties is the source's business (one per ZVF
geometry type); this module only lays out ``info``, ``spatialN/``, ``by_id/`` and ``rel_*/``, one
file per key or, when the layer is sharded (:mod:`.sharding`), shard files keyed as the client
looks them up: ``by_id`` by annotation id, ``rel_*`` by segment id, a spatial level by the
compressed Morton code of the cell over that level's ``grid_shape``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from typing import Protocol

import numpy as np

from ..cache import Budget
from ..encoders import annotations as enc
from ..encoders import sharded
from ..store import Cell
from ..tree import Dir, File
from .common import json_file, parse_cell, parse_uint
from .sharding import CountedChunks, LayerIndexes


class AnnotationSource(Protocol):
    """What a geometry mapper provides for an annotation collection."""

    schema: enc.AnnotationSchema

    def info(self) -> dict: ...

    @property
    def spatial_depth(self) -> int:
        """Number of spatial levels, keys ``spatial0`` (coarsest) ... ``spatial{depth-1}``."""

    def spatial_levels(self) -> Sequence[enc.SpatialLevel]: ...

    def cells(self, level: int) -> Iterable[Cell]: ...

    def cell_extent(self, level: int, cell: Cell) -> tuple[int, int] | None:
        """(annotations, polyline vertices) of a spatial cell, or None if the cell is empty."""

    def cell(self, level: int, cell: Cell) -> enc.Annotations: ...

    def ids(self) -> Iterable[int]: ...

    def annotation_extent(self, aid: int) -> tuple[Sequence[int], int] | None:
        """(related ids per relationship, polyline vertices) of one annotation, or None."""

    def annotation(self, aid: int) -> enc.Annotations: ...

    def related_ids(self, relationship: str) -> Iterable[int]: ...

    def related_extent(self, relationship: str, segment: int) -> tuple[int, int] | None: ...

    def related(self, relationship: str, segment: int) -> enc.Annotations: ...

    # -- every key at once, for sharded indexes (negative counts: the store data cannot be read)
    def cell_table(self, level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every non-empty cell of a level (M, rank), its annotations and polyline vertices."""

    def id_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every annotation id, its related ids per relationship (n, relationships) and polyline vertices."""

    def annotation_batch(self, aids: np.ndarray) -> enc.Annotations:
        """The annotations ``aids`` with their related ids, in any order."""

    def related_table(self, relationship: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every related id with a file, its annotations and polyline vertices."""

    def related_groups(self, relationship: str, segments: np.ndarray) -> tuple[enc.Annotations, np.ndarray]:
        """The annotations of each of ``segments``, back to back, and how many each has."""


def relationship_key(relationship: str) -> str:
    return f"rel_{relationship}"


def annotation_dir(src: AnnotationSource, indexes: LayerIndexes) -> Dir:
    """``info``, one ``spatialN`` per level, ``by_id`` and one ``rel_<id>`` per relationship, each
    sharded when ``indexes`` says the layer is."""
    schema, budget = src.schema, indexes.budget
    children: dict = {"info": json_file(lambda: _info(src, indexes))}
    for k in range(src.spatial_depth):  # known without counting annotations
        key = f"spatial{k}"
        children[key] = indexes.index(key, _spatial_dir(src, k), partial(_spatial_chunks, src, k, budget))
    by_id = Dir(names=lambda: map(str, src.ids()), child=lambda name: _by_id_file(src, name))
    children["by_id"] = indexes.index("by_id", by_id, partial(_by_id_chunks, src, budget))
    for rel in schema.relationships:
        key = relationship_key(rel)
        children[key] = indexes.index(key, _related_dir(src, rel), partial(_related_chunks, src, rel, budget))
    return Dir(children)


def _info(src: AnnotationSource, indexes: LayerIndexes) -> dict:
    """The source's ``info`` with the ``sharding`` member of each sharded index (by its key)."""
    info = src.info()
    info["by_id"] = indexes.with_sharding(info["by_id"], "by_id")
    for group in ("relationships", "spatial"):
        info[group] = [indexes.with_sharding(entry, entry["key"]) for entry in info[group]]
    return info


def _spatial_chunks(src: AnnotationSource, level: int, budget: Budget) -> CountedChunks:
    shape = src.spatial_levels()[level].grid_shape

    def table() -> tuple[np.ndarray, np.ndarray]:
        cells, counts, vertices = src.cell_table(level)
        sizes = np.where(counts < 0, -1, enc.multiple_sizes(src.schema, counts, vertices))
        return sharded.compressed_morton_code(cells.reshape(-1, len(shape)), shape), sizes

    def encode(codes: np.ndarray) -> dict[int, bytes]:
        cells = sharded.cells_of_morton_codes(codes, shape)
        return {
            int(code): enc.encode_multiple(src.schema, src.cell(level, tuple(cell)))
            for code, cell in zip(codes.tolist(), cells.tolist(), strict=True)
        }

    return CountedChunks(table, encode, budget)


def _by_id_chunks(src: AnnotationSource, budget: Budget) -> CountedChunks:
    def table() -> tuple[np.ndarray, np.ndarray]:
        ids, related, vertices = src.id_table()
        return ids, np.where(vertices < 0, -1, enc.single_sizes(src.schema, related, vertices))

    def encode(ids: np.ndarray) -> dict[int, bytes]:
        batch = src.annotation_batch(ids)
        return dict(zip(batch.ids.tolist(), enc.encode_singles(src.schema, batch), strict=True))

    return CountedChunks(table, encode, budget)


def _related_chunks(src: AnnotationSource, rel: str, budget: Budget) -> CountedChunks:
    def table() -> tuple[np.ndarray, np.ndarray]:
        ids, counts, vertices = src.related_table(rel)
        return ids, np.where((counts < 0) | (vertices < 0), -1, enc.multiple_sizes(src.schema, counts, vertices))

    def encode(ids: np.ndarray) -> dict[int, bytes]:
        batch, groups = src.related_groups(rel, ids)
        return dict(zip(ids.tolist(), enc.encode_multiples(src.schema, batch, groups), strict=True))

    return CountedChunks(table, encode, budget)


def _related_dir(src: AnnotationSource, rel: str) -> Dir:
    return Dir(names=lambda: map(str, src.related_ids(rel)), child=lambda name: _related_file(src, rel, name))


def _spatial_dir(src: AnnotationSource, level: int) -> Dir:
    def child(name: str) -> File | None:
        cell = parse_cell(name, src.schema.rank)
        extent = None if cell is None else src.cell_extent(level, cell)
        if cell is None or extent is None:
            return None
        found, (n, vertices) = cell, extent
        return File(
            lambda: enc.encode_multiple(src.schema, src.cell(level, found)),
            lambda: enc.multiple_size(src.schema, n, vertices),
        )

    return Dir(names=lambda: ("_".join(map(str, c)) for c in src.cells(level)), child=child)


def _by_id_file(src: AnnotationSource, name: str) -> File | None:
    aid = parse_uint(name)
    extent = None if aid is None else src.annotation_extent(aid)
    if aid is None or extent is None:
        return None
    found, (related, vertices) = aid, extent
    return File(
        lambda: enc.encode_single(src.schema, src.annotation(found)),
        lambda: enc.single_size(src.schema, related, vertices),
    )


def _related_file(src: AnnotationSource, rel: str, name: str) -> File | None:
    seg = parse_uint(name)
    extent = None if seg is None else src.related_extent(rel, seg)
    if seg is None or extent is None:
        return None
    found, (n, vertices) = seg, extent
    return File(
        lambda: enc.encode_multiple(src.schema, src.related(rel, found)),
        lambda: enc.multiple_size(src.schema, n, vertices),
    )
