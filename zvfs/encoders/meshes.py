"""Neuroglancer precomputed meshes: pure encoders.

Multi-resolution (``neuroglancer_multilod_draco``, unsharded): per segment a manifest ``<id>.index``
and a data file ``<id>`` holding the Draco fragments of all octree nodes, in manifest order, LOD 0
first. What the client (v2.41.2) requires and this module guarantees:

* a node at LOD k and position p covers ``grid_origin + chunk_shape * 2^k * [p, p + 1]``; positions
  within a LOD are in Z-order (x the least significant bit), and every node's parent ``p >> 1``
  exists at LOD k+1 (as an empty node of size 0 if it has no triangles);
* POSITION is an int32 attribute q in ``[0, 2^bits - 1]``, decoded without Draco dequantization as
  ``grid_origin + vertex_offsets[k] + chunk_shape * 2^k * (p + q / (2^bits - 1))``;
* at LOD > 0 no triangle crosses the node's 2x2x2 sub-grid (the client sorts triangles into octants
  around q = 2^(bits-1)).

Triangles are therefore clipped at the grid planes (LOD 0: node boundaries; LOD k > 0: the LOD k-1
grid) and each piece goes to the node that contains it; a triangle is never stored whole in a node
it leaves, as its vertices would be clamped. ``vertex_offsets`` are written as zeros.

Legacy (``neuroglancer_legacy_mesh``): a JSON manifest ``<id>:0`` listing fragment files, each
``uint32 n; float32 xyz[n][3]; uint32 tri[f][3]`` with positions in nm (no transform).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import DracoPy
import numpy as np

QUANTIZATION_BITS = (10, 16)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0)
MAX_POSITION = 1 << 21  # grid positions interleave into a 63-bit Z-order key
COMPRESSION_LEVEL = 7  # Draco: 0 fastest, 10 smallest

Mesh = tuple[np.ndarray, np.ndarray]  # vertices float (N, 3), faces int (F, 3)


class EncodedMesh(NamedTuple):
    """One segment: ``<id>.index`` and ``<id>`` contents."""

    manifest: bytes
    data: bytes


def info(
    *,
    vertex_quantization_bits: int = 16,
    transform: Sequence[float] | None = None,
    lod_scale_multiplier: float = 1.0,
    segment_properties: str | None = None,
) -> dict:
    """The ``info`` JSON of a multi-resolution mesh directory (``transform``: stored model -> nm)."""
    if vertex_quantization_bits not in QUANTIZATION_BITS:
        raise ValueError(f"vertex_quantization_bits must be 10 or 16, not {vertex_quantization_bits}")
    if not lod_scale_multiplier > 0:
        raise ValueError(f"lod_scale_multiplier must be positive, not {lod_scale_multiplier}")
    t = [float(x) for x in (IDENTITY if transform is None else transform)]
    if len(t) != 12:
        raise ValueError(f"transform needs 12 numbers (4x3 row-major), got {len(t)}")
    out = {
        "@type": "neuroglancer_multilod_draco",
        "vertex_quantization_bits": vertex_quantization_bits,
        "transform": t,
        "lod_scale_multiplier": float(lod_scale_multiplier),
    }
    if segment_properties:
        out["segment_properties"] = segment_properties
    return out


def manifest_size(fragments_per_lod: Sequence[int]) -> int:
    """Exact size of a manifest with these node counts (empty nodes included)."""
    return 28 + 20 * len(fragments_per_lod) + 16 * sum(fragments_per_lod)


@dataclass(frozen=True)
class Manifest:
    """A multi-resolution manifest (``<id>.index``), one layout for :meth:`encode` and :meth:`decode`:
    float32 chunk_shape[3], grid_origin[3]; uint32 num_lods; float32 lod_scales[num_lods],
    vertex_offsets[num_lods][3]; uint32 nodes per LOD; then per LOD uint32 positions[3][n] (all x,
    then y, then z) and uint32 fragment sizes[n]."""

    chunk_shape: np.ndarray  # (3,)
    grid_origin: np.ndarray  # (3,)
    lod_scales: np.ndarray  # (L,)
    vertex_offsets: np.ndarray  # (L, 3)
    positions: tuple[np.ndarray, ...]  # per LOD: (n, 3) node positions, Z-ordered
    sizes: tuple[np.ndarray, ...]  # per LOD: (n,) fragment bytes (0: empty node)

    @property
    def num_lods(self) -> int:
        return len(self.lod_scales)

    @property
    def counts(self) -> np.ndarray:
        """Nodes per LOD."""
        return np.asarray([len(p) for p in self.positions], np.int64)

    def encode(self) -> bytes:
        head = [
            np.asarray(self.chunk_shape, "<f4"),
            np.asarray(self.grid_origin, "<f4"),
            np.asarray([self.num_lods], "<u4"),
            np.asarray(self.lod_scales, "<f4"),
            np.asarray(self.vertex_offsets, "<f4").reshape(-1, 3),
            np.asarray([len(p) for p in self.positions], "<u4"),
        ]
        parts = [a.tobytes() for a in head]
        for pos, size in zip(self.positions, self.sizes, strict=True):
            parts += [np.ascontiguousarray(np.asarray(pos).T, "<u4").tobytes(), np.asarray(size, "<u4").tobytes()]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        """The manifest in ``data``; ValueError unless ``data`` is exactly one manifest."""
        if len(data) < 28:
            raise ValueError(f"a manifest has at least 28 bytes, not {len(data)}")
        head = np.frombuffer(data, "<f4", 6).astype(np.float64)
        lods = int(np.frombuffer(data, "<u4", 1, 24)[0])
        if len(data) < 28 + 20 * lods:
            raise ValueError(f"manifest of {len(data)} bytes is too short for {lods} LODs")
        scales = np.frombuffer(data, "<f4", lods, 28).astype(np.float64)
        offsets = np.frombuffer(data, "<f4", 3 * lods, 28 + 4 * lods).astype(np.float64).reshape(lods, 3)
        counts = np.frombuffer(data, "<u4", lods, 28 + 16 * lods).astype(np.int64)
        if len(data) != manifest_size(counts.tolist()):
            raise ValueError(f"manifest of {len(data)} bytes, expected {manifest_size(counts.tolist())}")
        at, positions, sizes = 28 + 20 * lods, [], []
        for n in counts.tolist():
            positions.append(np.frombuffer(data, "<u4", 3 * n, at).reshape(3, n).T.astype(np.int64))
            sizes.append(np.frombuffer(data, "<u4", n, at + 12 * n).astype(np.int64))
            at += 16 * n
        return cls(head[:3], head[3:], scales, offsets, tuple(positions), tuple(sizes))

    def fragments(self) -> list[tuple[int, np.ndarray, int, int]]:
        """(LOD, node position, offset, size) of every node, in data-file order (offset into ``<id>``)."""
        out, offset = [], 0
        for lod, (pos, size) in enumerate(zip(self.positions, self.sizes, strict=True)):
            for p, n in zip(pos, size.tolist(), strict=True):
                out.append((lod, p, offset, n))
                offset += n
        return out

    def node_box(self, lod: int, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower corner, edge lengths) of a node in stored model coordinates."""
        edge = self.chunk_shape * 2.0**lod
        return self.grid_origin + self.vertex_offsets[lod] + edge * np.asarray(position, np.float64), edge


def zorder_key(positions: np.ndarray) -> np.ndarray:
    """Z-order key of (n, 3) non-negative grid positions, bits interleaved x, y, z from the bottom."""
    p = np.asarray(positions, np.uint64).reshape(-1, 3)
    key = np.zeros(len(p), np.uint64)
    for bit in range(21):
        for axis in range(3):
            key |= ((p[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return key


def _mesh(vertices: np.ndarray, faces: np.ndarray) -> Mesh:
    v = np.asarray(vertices, np.float64).reshape(-1, 3)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    if not np.isfinite(v).all():
        raise ValueError("mesh vertices must be finite")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"face indices out of range for {len(v)} vertices")
    return v, f


def _f32(x: np.ndarray, direction: float) -> np.ndarray:
    """``x`` rounded to float32 towards ``direction`` (the manifest stores float32)."""
    y = np.asarray(x, np.float64).astype(np.float32)
    off = y > x if direction < 0 else y < x
    return np.where(off, np.nextafter(y, np.float32(direction)), y).astype(np.float64)


def default_grid(lods: Sequence[Mesh]) -> tuple[np.ndarray, np.ndarray]:
    """``(grid_origin, chunk_shape)`` when the caller gives none.

    Origin: lower corner of the vertices referenced by any LOD. LOD-0 node: a cube whose edge is the
    largest extent divided by 2^(num_lods-1), so the coarsest LOD fits in one node and each finer
    LOD has up to 8x as many. Both exact in float32 (origin rounded down, edge up).
    """
    used = [v[np.unique(f)] for v, f in (_mesh(*m) for m in lods) if f.size]
    if not used:
        return np.zeros(3), np.ones(3)
    pts = np.concatenate(used)
    origin = _f32(pts.min(0), -np.inf)
    extent = float((pts.max(0) - origin).max()) or 1.0
    return origin, np.full(3, _f32(np.float64(extent / 2 ** (len(lods) - 1)), np.inf))


def default_lod_scales(lods: Sequence[Mesh]) -> list[float]:
    """Median edge length of each LOD (its spatial resolution, as the client compares it with
    ``detailCutoff * pixel size``), made non-decreasing; empty LODs take the previous value."""
    scales: list[float] = []
    for v, f in (_mesh(*m) for m in lods):
        e = np.linalg.norm(v[f] - v[np.roll(f, 1, axis=1)], axis=2) if f.size else np.zeros(0)
        e = e[e > 0]
        scales.append(float(np.median(e)) if e.size else 0.0)
    running = next((s for s in scales if s > 0), 1.0)
    out = []
    for s in scales:
        running = max(running, s)
        out.append(running)
    return out


def _intersect(u: np.ndarray, i: np.ndarray, j: np.ndarray, axis: int, plane: np.ndarray) -> np.ndarray:
    """Points where edges (i, j) cross ``u[:, axis] == plane``; computed from the lower end so that a
    shared edge gives bit-identical points in both triangles."""
    swap = u[i, axis] > u[j, axis]
    lo, hi = np.where(swap, j, i), np.where(swap, i, j)
    t = (plane - u[lo, axis]) / (u[hi, axis] - u[lo, axis])
    p = u[lo] + t[:, None] * (u[hi] - u[lo])
    p[:, axis] = plane
    return p


def clip_to_grid(u: np.ndarray, faces: np.ndarray) -> Mesh:
    """Split triangles so that none crosses a plane ``u[:, axis] == integer`` (they may touch one).

    Orientation is kept; new vertices are appended; no triangle is lost.
    """
    for axis in range(3):
        while True:
            c = u[faces, axis]
            plane = np.floor(c.min(1)) + 1  # the first plane above each triangle's lowest vertex
            cross = plane < c.max(1)
            if not cross.any():
                break
            split, plane = faces[cross], plane[cross]
            side = np.sign(u[split, axis] - plane[:, None]).astype(np.int64)
            # first corner: the one on the plane, else the one alone on its side
            first = np.argmax(side == -side.sum(1, keepdims=True), 1)
            a, b, c_ = np.take_along_axis(split, (first[:, None] + np.arange(3)) % 3, 1).T
            on = np.take_along_axis(side, first[:, None], 1)[:, 0] == 0
            n = len(u)
            # corner on the plane: cut the opposite edge once -> (a, b, p), (a, p, c)
            p1 = _intersect(u, b[on], c_[on], axis, plane[on])
            i1 = n + np.arange(len(p1))
            # no corner on the plane: cut both edges at a -> (a, p, q), (p, b, c), (p, c, q)
            off = ~on
            p2 = _intersect(u, a[off], b[off], axis, plane[off])
            q2 = _intersect(u, a[off], c_[off], axis, plane[off])
            ip = n + len(p1) + np.arange(len(p2))
            iq = ip + len(p2)
            ao, bo, co = a[off], b[off], c_[off]
            u = np.concatenate([u, p1, p2, q2])
            faces = np.concatenate(
                [
                    faces[~cross],
                    np.stack([a[on], b[on], i1], 1),
                    np.stack([a[on], i1, c_[on]], 1),
                    np.stack([ao, ip, iq], 1),
                    np.stack([ip, bo, co], 1),
                    np.stack([ip, co, iq], 1),
                ]
            )
    return u, faces


def _lod_fragments(
    mesh: Mesh, origin: np.ndarray, chunk: np.ndarray, lod: int, bits: int, compression_level: int
) -> dict[tuple[int, ...], bytes]:
    """Draco fragment of every non-empty node of one LOD, by node position."""
    v, f = mesh
    if not f.size:
        return {}
    per_node = 2 if lod else 1  # sub-grid cells per node edge
    top = 2**bits - 1
    u = (v - origin) / (chunk * 2.0**lod / per_node)
    u, f = clip_to_grid(u, f)
    corners = u[f] / per_node  # (F, 3 corners, 3) in node units
    node = np.floor(corners.mean(1)).astype(np.int64)
    if node.min() < 0 or node.max() >= MAX_POSITION:
        raise ValueError(f"LOD {lod} reaches outside the octree grid (below grid_origin or too many nodes)")
    q = np.clip(np.rint((corners - node[:, None, :]) * top), 0, top).astype(np.int32)
    solid = ~((q[:, 0] == q[:, 1]).all(1) | (q[:, 1] == q[:, 2]).all(1) | (q[:, 2] == q[:, 0]).all(1))
    q, node = q[solid], node[solid]
    order = np.argsort(zorder_key(node), kind="stable")
    q, node = q[order], node[order]
    starts = np.flatnonzero(np.concatenate([[True], (node[1:] != node[:-1]).any(1)]))
    out = {}
    for s, e in zip(starts, np.append(starts[1:], len(node)), strict=True):
        points, inverse = np.unique(q[s:e].reshape(-1, 3), axis=0, return_inverse=True)
        tri = inverse.reshape(-1, 3).astype(np.uint32)
        out[tuple(int(x) for x in node[s])] = DracoPy.encode(
            points.astype(np.int32), tri, preserve_order=False, compression_level=compression_level
        )
    return out


def encode_multilod(
    lods: Sequence[Mesh],
    *,
    grid_origin: Sequence[float] | np.ndarray | None = None,
    chunk_shape: Sequence[float] | np.ndarray | None = None,
    lod_scales: Sequence[float] | None = None,
    vertex_quantization_bits: int = 16,
    compression_level: int = COMPRESSION_LEVEL,
) -> EncodedMesh:
    """Manifest and fragment data of one segment.

    ``lods``: (vertices, faces) per LOD, finest first, in stored model coordinates. ``grid_origin``
    and ``chunk_shape`` (LOD-0 node size) default to :func:`default_grid`, ``lod_scales`` to
    :func:`default_lod_scales`. ``grid_origin`` is rounded down to float32, ``chunk_shape`` to
    nearest. Unreferenced vertices are ignored; triangle pieces that quantize to a line or a point
    are dropped. Deterministic.
    """
    if vertex_quantization_bits not in QUANTIZATION_BITS:
        raise ValueError(f"vertex_quantization_bits must be 10 or 16, not {vertex_quantization_bits}")
    meshes = [_mesh(*m) for m in lods]
    if not meshes:
        raise ValueError("a multi-resolution mesh needs at least one LOD")
    if grid_origin is None or chunk_shape is None:
        origin0, chunk0 = default_grid(meshes)
        grid_origin = origin0 if grid_origin is None else grid_origin
        chunk_shape = chunk0 if chunk_shape is None else chunk_shape
    # compute with exactly the float32 values the readers will use; origin rounded down, so that a
    # vertex on the given origin is not below the stored one
    origin = _f32(np.asarray(grid_origin, np.float64).reshape(3), -np.inf)
    chunk = np.asarray(chunk_shape, np.float32).reshape(3).astype(np.float64)
    if not (chunk > 0).all():
        raise ValueError(f"chunk_shape must be positive, not {chunk.tolist()}")
    scales = default_lod_scales(meshes) if lod_scales is None else [float(s) for s in lod_scales]
    if len(scales) != len(meshes):
        raise ValueError(f"{len(scales)} lod_scales for {len(meshes)} LODs")
    present = [s for s in scales if s != 0]  # 0 marks an absent LOD
    if min(scales) < 0 or present != sorted(present):
        raise ValueError(f"lod_scales must be non-negative and non-decreasing (0 = absent), not {scales}")

    nodes = [
        _lod_fragments(m, origin, chunk, k, vertex_quantization_bits, compression_level) for k, m in enumerate(meshes)
    ]
    for k in range(len(nodes) - 1):  # every node needs its parent, empty if need be
        for p in nodes[k]:
            nodes[k + 1].setdefault((p[0] >> 1, p[1] >> 1, p[2] >> 1), b"")
    positions = []
    for lod in nodes:
        pos = np.array(sorted(lod), np.int64).reshape(-1, 3)
        positions.append(pos[np.argsort(zorder_key(pos), kind="stable")])

    frags = [[lod[tuple(int(x) for x in p)] for p in pos] for lod, pos in zip(nodes, positions, strict=True)]
    manifest = Manifest(
        chunk,
        origin,
        np.asarray(scales, np.float64),
        np.zeros((len(nodes), 3)),
        tuple(positions),
        tuple(np.asarray([len(b) for b in lod], np.int64) for lod in frags),
    )
    return EncodedMesh(manifest.encode(), b"".join(b for lod in frags for b in lod))


def legacy_info(segment_properties: str | None = None) -> dict:
    """The ``info`` JSON of a legacy mesh directory (always serve it: the info-less form is broken)."""
    out: dict = {"@type": "neuroglancer_legacy_mesh"}
    if segment_properties:
        out["segment_properties"] = segment_properties
    return out


def legacy_manifest(fragments: Sequence[str]) -> bytes:
    """``<id>:0``: the fragment file names, relative to the mesh directory."""
    return json.dumps({"fragments": list(fragments)}).encode()


def legacy_fragment(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """One legacy fragment; ``vertices`` in nm (model space), all kept, unreferenced ones too."""
    v = np.ascontiguousarray(vertices, "<f4").reshape(-1, 3)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"face indices out of range for {len(v)} vertices")
    return np.asarray([len(v)], "<u4").tobytes() + v.tobytes() + f.astype("<u4").tobytes()


def decode_legacy_fragment(data: bytes) -> Mesh:
    """(vertices in nm, faces) of a legacy fragment; ValueError unless ``data`` is exactly one."""
    n = int(np.frombuffer(data, "<u4", 1)[0]) if len(data) >= 4 else -1
    if n < 0 or (len(data) - 4 - 12 * n) % 12 or len(data) < 4 + 12 * n:
        raise ValueError(f"not a legacy mesh fragment ({len(data)} bytes)")
    vertices = np.frombuffer(data, "<f4", 3 * n, 4).reshape(n, 3)
    return vertices, np.frombuffer(data, "<u4", offset=4 + 12 * n).reshape(-1, 3).astype(np.int64)


def legacy_fragment_size(n_vertices: int, n_faces: int) -> int:
    """Exact size of :func:`legacy_fragment`."""
    return 4 + 12 * n_vertices + 12 * n_faces
