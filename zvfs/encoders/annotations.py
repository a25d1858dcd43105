"""Neuroglancer precomputed annotations (``neuroglancer_annotations_v1``): pure encoders.

Layout as the client (v2.41.2, ``getPropertyOffsets``) reads it: geometry (float32), then the
properties stably sorted by alignment (4, 2, 1 bytes), each naturally aligned, the record padded to
a multiple of 4. Polylines start with a uint32 point count. Multiple-annotation encoding (spatial
cells, relationship lists): uint64 count, records, uint64 ids. Single-annotation encoding (by_id):
one record, then per relationship a uint32 count and uint64 segment ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from . import numeric

# type -> (numpy dtype of one component, components)
PROPERTY_TYPES: dict[str, tuple[str, int]] = {
    **{name: (dtype.str, 1) for name, dtype in numeric.TYPES.items()},
    "rgb": ("u1", 3),
    "rgba": ("u1", 4),
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

    @cached_property
    def record_dtype(self) -> np.dtype:
        """Structured dtype of one fixed-size record (not polylines): geometry, then the property block."""
        geometry = 4 * self.rank * GEOMETRY_POINTS[self.annotation_type]
        return np.dtype(
            {
                "names": ["geometry", "properties"],
                "formats": [("<f4", geometry // 4), self.property_dtype],
                "offsets": [0, geometry],
                "itemsize": self.record_size,
            }
        )

    @classmethod
    def from_info(cls, info: Mapping) -> AnnotationSchema:
        """The schema an annotation ``info`` declares (what a reader needs to decode its files)."""
        props = tuple(
            Property(
                p["id"],
                p["type"],
                p.get("description", ""),
                tuple(p.get("enum_values", ())),
                tuple(p.get("enum_labels", ())),
            )
            for p in info.get("properties", [])
        )
        rels = tuple(r["id"] for r in info.get("relationships", []))
        return cls(info["annotation_type"], len(info["dimensions"]), props, rels)

    def check(self) -> None:
        """Raise ValueError where the client would read these records with another layout."""
        if self.record_size > MAX_RECORD_BYTES:
            raise ValueError(
                f"annotation records of {self.record_size} bytes exceed {MAX_RECORD_BYTES}: too many properties"
            )

    def json(self) -> dict:
        return {"annotation_type": self.annotation_type, "properties": [p.json() for p in self.ordered_properties]}


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

    def take(self, rows: np.ndarray) -> Annotations:
        """The annotations at ``rows`` (positions in this batch), in that order."""
        rows = np.asarray(rows, np.int64)
        geometry, counts = self.geometry[rows], None
        if self.counts is not None:  # polylines: the vertex runs of the chosen ones
            all_counts = np.asarray(self.counts, np.int64)
            first = np.concatenate([[0], np.cumsum(all_counts)[:-1]]).astype(np.int64)
            counts = all_counts[rows]
            taken_first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
            vertices = np.repeat(first[rows] - taken_first, counts) + np.arange(int(counts.sum()))
            geometry = self.geometry[vertices]
        related = [self.related[r] for r in rows.tolist()] if self.related else ()
        props = {p: np.asarray(v)[rows] for p, v in self.properties.items()}
        return Annotations(geometry, props, np.asarray(self.ids)[rows], counts, related)


def _property_block(schema: AnnotationSchema, props: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    block = np.zeros(n, schema.property_dtype)
    for p in schema.ordered_properties:
        block[p.id] = props[p.id]
    return block


def _polyline_words(schema: AnnotationSchema, counts: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Word (4-byte) layout of a run of polyline records with these vertex counts: total words, each
    record's count word, its (V, rank) vertex words and its (n, block words) property words. Every
    part of a polyline record is a whole number of words (the property block is padded to 4 bytes)."""
    counts = np.asarray(counts, np.int64)
    block = schema.property_dtype.itemsize // 4
    sizes = 1 + schema.rank * counts + block
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    first_vertex = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    base = np.repeat(starts + 1 - first_vertex * schema.rank, counts) + np.arange(int(counts.sum())) * schema.rank
    vertex_words = base[:, None] + np.arange(schema.rank)
    property_words = (starts + 1 + schema.rank * counts)[:, None] + np.arange(block)
    return int(sizes.sum()), starts, vertex_words, property_words


def _records(schema: AnnotationSchema, ann: Annotations) -> bytes:
    """The records of a batch, in the layout :func:`_decode_records` reads."""
    n = len(ann)
    block = _property_block(schema, ann.properties, n)
    if not schema.polyline:
        records = np.zeros(n, schema.record_dtype)
        records["geometry"] = np.asarray(ann.geometry, np.float32).reshape(n, -1)
        records["properties"] = block
        return records.tobytes()
    counts = np.asarray(ann.counts, np.int64)
    total, starts, vertex_words, property_words = _polyline_words(schema, counts)
    words = np.zeros(total, "<u4")
    words[starts] = counts
    words[vertex_words] = np.ascontiguousarray(ann.geometry, "<f4").reshape(-1, schema.rank).view("<u4")
    words[property_words] = block.view("<u4").reshape(n, -1)
    return words.tobytes()


def _decode_records(schema: AnnotationSchema, data: bytes, n: int, offset: int) -> tuple[Annotations, int]:
    """``n`` records of ``data`` from ``offset`` (ids left empty) and the offset after them."""
    if not schema.polyline:
        records = np.frombuffer(data, schema.record_dtype, n, offset)
        geometry = records["geometry"].astype(np.float32)
        block, counts, end = records["properties"], None, offset + n * schema.record_size
    else:
        counts_list, at, block_bytes = [], offset, schema.property_dtype.itemsize
        for _ in range(n):  # each record's length depends on its vertex count
            count = int(np.frombuffer(data, "<u4", 1, at)[0])
            counts_list.append(count)
            at += 4 + 4 * schema.rank * count + block_bytes
        counts = np.asarray(counts_list, np.int64)
        words = np.frombuffer(data, "<u4", (at - offset) // 4, offset)
        _, _, vertex_words, property_words = _polyline_words(schema, counts)
        geometry = words[vertex_words].view("<f4").reshape(-1, schema.rank)
        block, end = np.zeros(n, schema.property_dtype), at
        if block.itemsize:
            block = words[property_words].copy().view(schema.property_dtype).reshape(n)
    props = {p.id: np.asarray(block[p.id]) for p in schema.ordered_properties}
    return Annotations(geometry, props, np.zeros(n, np.uint64), counts), end


def _record_ends(schema: AnnotationSchema, ann: Annotations) -> np.ndarray:
    """Where each record of :func:`_records` ends (bytes)."""
    if not schema.polyline:
        return np.arange(1, len(ann) + 1, dtype=np.int64) * schema.record_size
    return np.cumsum(4 + 4 * schema.rank * np.asarray(ann.counts, np.int64) + schema.property_dtype.itemsize)


def encode_multiple(schema: AnnotationSchema, ann: Annotations) -> bytes:
    """Spatial cell / relationship list: uint64 count, records, uint64 ids."""
    return encode_multiples(schema, ann, [len(ann)])[0]


def encode_multiples(schema: AnnotationSchema, ann: Annotations, groups: npt.ArrayLike) -> list[bytes]:
    """:func:`encode_multiple` of consecutive groups of ``ann``, ``groups`` annotations each, encoded
    together (many relationship files at once)."""
    sizes = np.asarray(groups, np.int64).reshape(-1)
    if sizes.sum() != len(ann):
        raise ValueError(f"groups of {int(sizes.sum())} annotations for {len(ann)}")
    records, ids = _records(schema, ann), np.asarray(ann.ids, "<u8").tobytes()
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    ends = np.concatenate([[0], _record_ends(schema, ann)]).astype(np.int64)
    return [
        np.uint64(b - a).tobytes() + records[ends[a] : ends[b]] + ids[8 * a : 8 * b]
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
    ]


def decode_multiple(schema: AnnotationSchema, data: bytes) -> Annotations:
    """The annotations of a spatial cell or relationship file; ValueError unless ``data`` is exactly one."""
    if len(data) < 8:
        raise ValueError(f"a multiple-annotation file has at least 8 bytes, not {len(data)}")
    n = int(np.frombuffer(data, "<u8", 1)[0])
    ann, end = _decode_records(schema, data, n, 8)
    if len(data) != end + 8 * n:
        raise ValueError(f"{len(data)} bytes for {n} annotations, expected {end + 8 * n}")
    ann.ids = np.frombuffer(data, "<u8", n, end).copy()
    return ann


def multiple_size(schema: AnnotationSchema, n: int, vertices: int = 0) -> int:
    """Exact size of :func:`encode_multiple` for ``n`` annotations (``vertices`` in all polylines)."""
    return int(multiple_sizes(schema, n, vertices))


def multiple_sizes(schema: AnnotationSchema, n: npt.ArrayLike, vertices: npt.ArrayLike = 0) -> np.ndarray:
    """:func:`multiple_size` of many files at once (int64, elementwise)."""
    count, points = np.asarray(n, np.int64), np.asarray(vertices, np.int64)
    extra = 4 * count + 4 * schema.rank * points if schema.polyline else 0
    return 8 + count * (schema.record_size + 8) + extra


def encode_single(schema: AnnotationSchema, ann: Annotations) -> bytes:
    """``by_id`` value of the one annotation in ``ann``: record, then related ids per relationship."""
    if len(ann) != 1:
        raise ValueError(f"a by_id file holds one annotation, not {len(ann)}")
    return encode_singles(schema, ann)[0]


def encode_singles(schema: AnnotationSchema, ann: Annotations) -> list[bytes]:
    """:func:`encode_single` of each annotation of ``ann`` (in its order), encoded together."""
    related = ann.related or [()] * len(ann)
    if len(related) != len(ann) or any(len(r) != len(schema.relationships) for r in related):
        raise ValueError(f"every annotation needs {len(schema.relationships)} relationship lists")
    records = _records(schema, ann)
    ends = _record_ends(schema, ann).tolist()
    return [
        records[a:b] + b"".join(np.uint32(len(r)).tobytes() + np.asarray(r, "<u8").tobytes() for r in lists)
        for a, b, lists in zip([0, *ends[:-1]], ends, related, strict=True)
    ]


def decode_single(schema: AnnotationSchema, data: bytes, aid: int = 0) -> Annotations:
    """The one annotation of a ``by_id`` file (id ``aid``), with its related ids; ValueError unless
    ``data`` is exactly one."""
    ann, at = _decode_records(schema, data, 1, 0)
    related = []
    for _ in schema.relationships:
        count = int(np.frombuffer(data, "<u4", 1, at)[0])
        related.append(np.frombuffer(data, "<u8", count, at + 4).copy())
        at += 4 + 8 * count
    if at != len(data):
        raise ValueError(f"{len(data)} bytes for one annotation, expected {at}")
    ann.ids, ann.related = np.asarray([aid], np.uint64), [related]
    return ann


def single_size(schema: AnnotationSchema, related_counts: Sequence[int], vertices: int = 0) -> int:
    """Exact size of :func:`encode_single` given the number of related ids per relationship."""
    return int(single_sizes(schema, [related_counts], [vertices])[0])


def single_sizes(schema: AnnotationSchema, related_counts: npt.ArrayLike, vertices: npt.ArrayLike = 0) -> np.ndarray:
    """:func:`single_size` of many annotations: related ids (n, relationships), vertices (n,)."""
    related = np.asarray(related_counts, np.int64)
    related = related.reshape(len(related), len(schema.relationships))
    points = np.broadcast_to(np.asarray(vertices, np.int64), (len(related),))
    extra = 4 + 4 * schema.rank * points if schema.polyline else 0
    return schema.record_size + extra + 4 * related.shape[1] + 8 * related.sum(1)


@dataclass(frozen=True)
class SpatialLevel:
    key: str
    grid_shape: tuple[int, ...]
    chunk_size: tuple[float, ...]
    limit: int

    def json(self) -> dict:
        return {
            "key": self.key,
            "grid_shape": list(self.grid_shape),
            "chunk_size": list(self.chunk_size),
            "limit": max(1, int(self.limit)),
        }


def info(
    schema: AnnotationSchema,
    dimensions: Mapping[str, list],
    lower: Sequence[float],
    upper: Sequence[float],
    spatial: Sequence[SpatialLevel],
    relationship_keys: Mapping[str, str],
    by_id_key: str = "by_id",
) -> dict:
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
