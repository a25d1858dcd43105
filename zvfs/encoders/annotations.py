"""Neuroglancer precomputed annotations (``neuroglancer_annotations_v1``): pure encoders.

Layout as the client (v2.41.2, ``getPropertyOffsets``) reads it: geometry (float32), then the
properties stably sorted by alignment (4, 2, 1 bytes), each naturally aligned, the record padded to
a multiple of 4. Polylines start with a uint32 point count. Multiple-annotation encoding (spatial
cells, relationship lists): uint64 count, records, uint64 ids. Single-annotation encoding (by_id):
one record, then per relationship a uint32 count and uint64 segment ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np

# type -> (numpy dtype of one component, components)
PROPERTY_TYPES: dict[str, tuple[str, int]] = {
    "float32": ("<f4", 1), "uint32": ("<u4", 1), "int32": ("<i4", 1),
    "uint16": ("<u2", 1), "int16": ("<i2", 1),
    "uint8": ("u1", 1), "int8": ("i1", 1), "rgb": ("u1", 3), "rgba": ("u1", 4),
}
GEOMETRY_POINTS = {"point": 1, "line": 2, "axis_aligned_bounding_box": 2, "ellipsoid": 2}
MAX_RECORD_BYTES = 255  # past this the client splits properties into groups (a different layout)


@dataclass(frozen=True)
class Property:
    """One annotation property as declared in ``info``."""

    id: str
    type: str
    description: str = ""
    enum_values: tuple[int, ...] = ()
    enum_labels: tuple[str, ...] = ()

    @property
    def alignment(self) -> int:
        return np.dtype(PROPERTY_TYPES[self.type][0]).itemsize

    def json(self) -> dict:
        out: dict = {"id": self.id, "type": self.type}
        if self.description:
            out["description"] = self.description
        if self.enum_values:
            out["enum_values"] = list(self.enum_values)
            out["enum_labels"] = list(self.enum_labels)
        return out


@dataclass(frozen=True)
class AnnotationSchema:
    """Everything that fixes the byte layout of a collection's records."""

    annotation_type: str  # point, line, polyline, ...
    rank: int
    properties: tuple[Property, ...] = ()
    relationships: tuple[str, ...] = ()

    @cached_property
    def ordered_properties(self) -> tuple[Property, ...]:
        """Properties in file order: stable sort by alignment, largest first."""
        return tuple(sorted(self.properties, key=lambda p: -p.alignment))

    @cached_property
    def property_dtype(self) -> np.dtype:
        """Structured dtype of the property block, padded so geometry + block is a multiple of 4."""
        names, formats, offsets, offset = [], [], [], 0
        for p in self.ordered_properties:
            base, comps = PROPERTY_TYPES[p.type]
            offset = -(-offset // p.alignment) * p.alignment
            names.append(p.id)
            formats.append((base, comps) if comps > 1 else base)
            offsets.append(offset)
            offset += np.dtype(base).itemsize * comps
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": -(-offset // 4) * 4})

    @property
    def polyline(self) -> bool:
        return self.annotation_type == "polyline"

    @cached_property
    def record_size(self) -> int:
        """Bytes of one fixed-size record (for polylines: without the points and their count)."""
        points = 0 if self.polyline else GEOMETRY_POINTS[self.annotation_type]
        return 4 * self.rank * points + self.property_dtype.itemsize

    def check(self) -> None:
        """Raise ValueError where the client would read these records with another layout."""
        if self.record_size > MAX_RECORD_BYTES:
            raise ValueError(f"annotation records of {self.record_size} bytes exceed {MAX_RECORD_BYTES}: too many properties")

    def json(self) -> dict:
        return {"annotation_type": self.annotation_type,
                "properties": [p.json() for p in self.ordered_properties]}


@dataclass
class Annotations:
    """A batch of annotations: geometry, property columns and ids.

    ``geometry`` is (n, points*rank) float32; for polylines it is the (V, rank) vertices of all
    polylines back to back, split by ``counts`` (n,).
    """

    geometry: np.ndarray
    properties: Mapping[str, np.ndarray]
    ids: np.ndarray
    counts: np.ndarray | None = None
    related: Sequence[Sequence[np.ndarray]] = field(default_factory=tuple)  # [annotation][relationship]

    def __len__(self) -> int:
        return len(self.ids)


def _property_block(schema: AnnotationSchema, props: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    block = np.zeros(n, schema.property_dtype)
    for p in schema.ordered_properties:
        block[p.id] = props[p.id]
    return block


def _records(schema: AnnotationSchema, ann: Annotations) -> bytes:
    n = len(ann)
    block = _property_block(schema, ann.properties, n)
    if not schema.polyline:
        geom = np.ascontiguousarray(ann.geometry, "<f4").reshape(n, -1)
        return np.concatenate([geom.view(np.uint8).reshape(n, -1), block.view(np.uint8).reshape(n, -1)], 1).tobytes()
    counts = np.asarray(ann.counts, np.int64)
    verts = np.ascontiguousarray(ann.geometry, "<f4").reshape(-1, schema.rank)
    starts = np.concatenate([[0], np.cumsum(counts)])
    props = block.view(np.uint8).reshape(n, -1)
    parts = []
    for i in range(n):
        parts += [np.uint32(counts[i]).tobytes(), verts[starts[i]:starts[i + 1]].tobytes(), props[i].tobytes()]
    return b"".join(parts)


def encode_multiple(schema: AnnotationSchema, ann: Annotations) -> bytes:
    """Spatial cell / relationship list: uint64 count, records, uint64 ids."""
    return np.uint64(len(ann)).tobytes() + _records(schema, ann) + np.asarray(ann.ids, "<u8").tobytes()


def multiple_size(schema: AnnotationSchema, n: int, vertices: int = 0) -> int:
    """Exact size of :func:`encode_multiple` for ``n`` annotations (``vertices`` in all polylines)."""
    extra = 4 * n + 4 * schema.rank * vertices if schema.polyline else 0
    return 8 + n * (schema.record_size + 8) + extra


def encode_single(schema: AnnotationSchema, ann: Annotations) -> bytes:
    """``by_id`` value of the one annotation in ``ann``: record, then related ids per relationship."""
    related = ann.related[0] if ann.related else ()
    if len(related) != len(schema.relationships):
        raise ValueError(f"{len(related)} relationship lists for {len(schema.relationships)} relationships")
    tail = b"".join(np.uint32(len(r)).tobytes() + np.asarray(r, "<u8").tobytes() for r in related)
    return _records(schema, ann) + tail


def single_size(schema: AnnotationSchema, related_counts: Sequence[int], vertices: int = 0) -> int:
    """Exact size of :func:`encode_single` given the number of related ids per relationship."""
    extra = 4 + 4 * schema.rank * vertices if schema.polyline else 0
    return schema.record_size + extra + sum(4 + 8 * k for k in related_counts)


@dataclass(frozen=True)
class SpatialLevel:
    key: str
    grid_shape: tuple[int, ...]
    chunk_size: tuple[float, ...]
    limit: int

    def json(self) -> dict:
        return {"key": self.key, "grid_shape": list(self.grid_shape),
                "chunk_size": list(self.chunk_size), "limit": max(1, int(self.limit))}


def info(schema: AnnotationSchema, dimensions: Mapping[str, list], lower: Sequence[float], upper: Sequence[float],
         spatial: Sequence[SpatialLevel], relationship_keys: Mapping[str, str], by_id_key: str = "by_id") -> dict:
    """The ``info`` JSON of an annotation collection (spatial levels coarse to fine)."""
    return {
        "@type": "neuroglancer_annotations_v1",
        "dimensions": dict(dimensions),
        "lower_bound": [float(v) for v in lower],
        "upper_bound": [float(v) for v in upper],
        **schema.json(),
        "relationships": [{"id": r, "key": relationship_keys[r]} for r in schema.relationships],
        "by_id": {"key": by_id_key},
        "spatial": [s.json() for s in spatial],
    }
