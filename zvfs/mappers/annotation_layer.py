"""The files of one ``neuroglancer_annotations_v1`` collection, over any :class:`AnnotationSource`.

Which annotations exist, where, and with which properties is the source's business (one per ZVF
geometry type); this module only lays out ``info``, ``spatialN/``, ``by_id/`` and ``rel_*/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from ..encoders import annotations as enc
from ..store import Cell
from ..tree import Dir, File
from .common import json_file, parse_cell, parse_uint


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


def relationship_key(relationship: str) -> str:
    return f"rel_{relationship}"


def annotation_dir(src: AnnotationSource) -> Dir:
    """``info``, one ``spatialN`` per level, ``by_id`` and one ``rel_<id>`` per relationship."""
    schema = src.schema
    children: dict = {"info": json_file(src.info)}
    for k in range(src.spatial_depth):  # known without counting annotations
        children[f"spatial{k}"] = _spatial_dir(src, k)
    children["by_id"] = Dir(names=lambda: map(str, src.ids()), child=lambda name: _by_id_file(src, name))
    for rel in schema.relationships:
        children[relationship_key(rel)] = _related_dir(src, rel)
    return Dir(children)


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
