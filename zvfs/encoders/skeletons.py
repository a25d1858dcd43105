"""Neuroglancer precomputed skeletons (``neuroglancer_skeletons``, unsharded): pure encoders.

One file per segment, named by its base-10 id: uint32 vertex count, uint32 edge count, float32
positions (N, 3), uint32 edges (M, 2), then each vertex attribute in ``info`` order as
(N, num_components) values of its data type; all little-endian. No level of detail, no spatial
index. The spec allows float32 and 8/16/32-bit integer attributes, but the 2.41.2 client renders
only float32 with 1-4 components and fails the whole data source otherwise
(``Data type not supported by WebGL``): :meth:`VertexAttribute.check` says so before it happens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import numeric

IDENTITY: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0)
# Vertex attributes are named in the layer's shader by their id: GLSL's own words cannot be ids.
GLSL_RESERVED = frozenset(
    [
        "attribute",
        "bool",
        "break",
        "bvec2",
        "bvec3",
        "bvec4",
        "case",
        "centroid",
        "const",
        "continue",
        "default",
        "discard",
        "do",
        "else",
        "false",
        "flat",
        "float",
        "for",
        "highp",
        "if",
        "in",
        "inout",
        "int",
        "invariant",
        "isampler2D",
        "ivec2",
        "ivec3",
        "ivec4",
        "layout",
        "lowp",
        "main",
        "mat2",
        "mat3",
        "mat4",
        "mediump",
        "out",
        "precision",
        "return",
        "sampler2D",
        "sampler3D",
        "smooth",
        "struct",
        "switch",
        "true",
        "uint",
        "uniform",
        "usampler2D",
        "uvec2",
        "uvec3",
        "uvec4",
        "varying",
        "vec2",
        "vec3",
        "vec4",
        "void",
        "while",
    ]
)
MAX_COUNT = 2**32 - 1  # vertex and edge counts are uint32
HEADER_BYTES = 8


@dataclass(frozen=True)
class VertexAttribute:
    """One per-vertex attribute as declared in ``info`` (``radius``: float32, 1 component)."""

    id: str
    data_type: str
    num_components: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"vertex attribute id must be a non-empty string, not {self.id!r}")
        if self.data_type not in numeric.TYPES:
            raise ValueError(
                f"vertex attribute {self.id!r}: data_type {self.data_type!r} not in {sorted(numeric.TYPES)}"
            )
        if (
            isinstance(self.num_components, bool)
            or not isinstance(self.num_components, (int, np.integer))
            or self.num_components < 1
        ):
            raise ValueError(f"vertex attribute {self.id!r}: num_components must be a positive integer")

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(numeric.TYPES[self.data_type])

    @property
    def vertex_bytes(self) -> int:
        """Bytes this attribute adds per vertex."""
        return self.dtype.itemsize * int(self.num_components)

    def check(self) -> None:
        """Raise ValueError where the 2.41.2 client cannot render this attribute (fails the layer)."""
        if self.id in GLSL_RESERVED or not self.id.isidentifier() or "__" in self.id or self.id.startswith("gl_"):
            raise ValueError(f"vertex attribute {self.id!r}: not usable as a name in the layer's shader")
        if self.data_type != "float32":
            raise ValueError(
                f"vertex attribute {self.id!r}: Neuroglancer renders float32 attributes only, not {self.data_type}"
            )
        if self.num_components > 4:
            raise ValueError(
                f"vertex attribute {self.id!r}: Neuroglancer renders at most 4 components, not {self.num_components}"
            )

    def json(self) -> dict:
        return {"id": self.id, "data_type": self.data_type, "num_components": int(self.num_components)}


def _check_unique(spec: Sequence[VertexAttribute]) -> None:
    ids = [a.id for a in spec]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate vertex attribute ids in {ids}")


def info(
    vertex_attributes: Sequence[VertexAttribute] = (),
    *,
    transform: ArrayLike | None = None,
    segment_properties: str | None = None,
) -> dict:
    """The ``info`` JSON of an unsharded skeleton directory.

    ``transform`` is the row-major 3x4 matrix from stored coordinates to nanometres; the identity
    is written when it is None (the client assumes it, but cloud-volume requires the key).
    ``segment_properties`` is a relative path, used only when this directory is the layer's source.
    """
    _check_unique(vertex_attributes)
    matrix = np.asarray(IDENTITY if transform is None else transform, np.float64).ravel()
    if matrix.size != 12 or not np.all(np.isfinite(matrix)):
        raise ValueError(f"transform must be 12 finite numbers (row-major 3x4), got {matrix.size} values")
    out: dict = {
        "@type": "neuroglancer_skeletons",
        "transform": [float(v) for v in matrix],
        "vertex_attributes": [a.json() for a in vertex_attributes],
    }
    if segment_properties is not None:
        if not segment_properties:
            raise ValueError("segment_properties must be a non-empty relative path")
        out["segment_properties"] = segment_properties
    return out


def encode(
    vertices: ArrayLike, edges: ArrayLike, attributes: Mapping[str, ArrayLike], spec: Sequence[VertexAttribute]
) -> bytes:
    """One segment's skeleton file.

    ``vertices`` (N, 3) in stored coordinates; ``edges`` (M, 2) vertex indices; ``attributes`` maps
    each id in ``spec`` to (N,) or (N, num_components) values, cast to the declared type.
    """
    _check_unique(spec)
    verts = np.asarray(vertices)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ValueError(f"vertices must have shape (N, 3), not {verts.shape}")
    n = len(verts)
    edge = np.asarray(edges)
    if edge.size == 0:
        edge = edge.reshape(0, 2)
    if edge.ndim != 2 or edge.shape[1] != 2:
        raise ValueError(f"edges must have shape (M, 2), not {edge.shape}")
    if n > MAX_COUNT or len(edge) > MAX_COUNT:
        raise ValueError(f"{n} vertices / {len(edge)} edges exceed the uint32 counts")
    if edge.size and edge.dtype.kind not in "iu":
        raise ValueError(f"edges must be integer vertex indices, not {edge.dtype}")
    if edge.size and (edge.min() < 0 or edge.max() >= n):
        bad = edge[(edge < 0) | (edge >= n)][0]
        raise ValueError(f"edge index {bad} out of range for {n} vertices")
    unknown = set(attributes) - {a.id for a in spec}
    if unknown:
        raise ValueError(f"attributes {sorted(unknown)} are not declared in the spec")
    parts = [
        np.array([n, len(edge)], "<u4").tobytes(),
        numeric.cast(verts, "float32", "vertices").tobytes(),
        edge.astype("<u4").tobytes(),
    ]
    for a in spec:
        if a.id not in attributes:
            raise ValueError(f"missing vertex attribute {a.id!r}")
        values = np.asarray(attributes[a.id])
        if values.ndim == 1:
            values = values[:, None]
        if values.shape != (n, a.num_components):
            raise ValueError(
                f"vertex attribute {a.id!r} has shape {np.asarray(attributes[a.id]).shape}, "
                f"expected ({n}, {a.num_components}) for {n} vertices"
            )
        parts.append(numeric.cast(values, a.data_type, f"vertex attribute {a.id!r}").tobytes())
    return b"".join(parts)


def spec_from_info(info: Mapping) -> list[VertexAttribute]:
    """The vertex attributes a skeleton ``info`` declares, in file order."""
    return [
        VertexAttribute(a["id"], a["data_type"], int(a.get("num_components", 1)))
        for a in info.get("vertex_attributes", [])
    ]


def decode(data: bytes, spec: Sequence[VertexAttribute]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(vertices (N, 3), edges (M, 2), attributes id -> (N, num_components)) of one skeleton file,
    the layout :func:`encode` writes; ValueError where ``data`` is too short (trailing bytes are
    allowed, as the client allows them)."""
    if len(data) < HEADER_BYTES:
        raise ValueError(f"a skeleton file has at least {HEADER_BYTES} bytes, not {len(data)}")
    nv, ne = (int(x) for x in np.frombuffer(data, "<u4", 2))
    if len(data) < size(nv, ne, spec):
        raise ValueError(f"{len(data)} bytes for {nv} vertices and {ne} edges, expected {size(nv, ne, spec)}")
    vertices = np.frombuffer(data, "<f4", 3 * nv, HEADER_BYTES).reshape(nv, 3)
    at = HEADER_BYTES + 12 * nv
    edges = np.frombuffer(data, "<u4", 2 * ne, at).reshape(ne, 2).astype(np.int64)
    at += 8 * ne
    attributes = {}
    for a in spec:
        attributes[a.id] = np.frombuffer(data, a.dtype, nv * a.num_components, at).reshape(nv, a.num_components)
        at += a.vertex_bytes * nv
    return vertices, edges, attributes


def size(n_vertices: int, n_edges: int, spec: Sequence[VertexAttribute]) -> int:
    """Exact size of :func:`encode` for ``n_vertices`` and ``n_edges``."""
    return int(sizes(n_vertices, n_edges, spec))


def sizes(n_vertices: ArrayLike, n_edges: ArrayLike, spec: Sequence[VertexAttribute]) -> np.ndarray:
    """:func:`size` of many skeletons at once (int64, elementwise)."""
    vertices, edges = np.asarray(n_vertices, np.int64), np.asarray(n_edges, np.int64)
    return HEADER_BYTES + vertices * (12 + sum(a.vertex_bytes for a in spec)) + 8 * edges
