"""ZVF ``skeleton``, ``graph``, ``polyline`` and ``streamline`` objects -> precomputed skeletons.

One skeleton per object, named by its segment id (the ``segment_id`` object attribute when usable,
else object id + 1). Edges: skeletons use their [child, parent] tree (parent = previous row within
a stored fragment, overridden by explicit link records); graphs their explicit edges; polylines and
streamlines join consecutive vertices (an unbranched skeleton). Every numeric per-vertex attribute
becomes a float32 vertex attribute (the only type the client renders); more than 4 channels are
split. Polylines and streamlines also carry ``direction``, each vertex's unit direction in the
physical space (after the transform), for the direction-encoded colours of tractography viewers
(a store attribute of that name keeps it; the generated one is then ``direction_2``). ``transform``
maps store coordinates to nanometres (the coordinate chain, units, ``--transform``).
``segment_properties/`` lists every object.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ..encoders import EXTENSION
from ..encoders import skeletons as enc
from ..objects import ObjectGeometry, ObjectTable
from ..properties import unique_id
from ..tree import Dir, File
from .common import Context, parse_uint
from .segments import PROPERTIES_DIR, SEGMENTS, segment_layer_dir
from .sharding import CountedChunks, LayerIndexes

MAX_COMPONENTS = 4
PATH_KINDS = ("polyline", "streamline")
DIRECTION = "direction"


def directions(path: np.ndarray) -> np.ndarray:
    """Unit direction (N, 3) float32 of a path at each of its vertices, in the space of ``path``: the
    central difference inside, one-sided at the ends; zero where the path does not move."""
    p = np.asarray(path, np.float64)
    if len(p) < 2:
        return np.zeros((len(p), 3), np.float32)
    step = np.gradient(p, axis=0)
    norm = np.linalg.norm(step, axis=1, keepdims=True)
    return np.divide(step, norm, out=np.zeros_like(step), where=norm > 0).astype(np.float32)


class SkeletonSource:
    """Skeleton files over the objects of one level."""

    def __init__(self, ctx: Context, level_index: int = 0) -> None:
        store = ctx.store
        if len(store.axes) != 3:
            raise ValueError(f"{store.path}: skeletons need 3 spatial axes, store has {len(store.axes)}")
        self.ctx = ctx
        self.store = store
        self.kind = store.kind
        self.level = store.levels[level_index]
        self.objects = ctx.objects(level_index)
        self.segments = ctx.segments
        taken: set[str] = set(enc.GLSL_RESERVED)
        self.attributes: list[tuple[enc.VertexAttribute, str, slice]] = []
        for a in self.level.vertex_attributes:
            for start in range(0, a.channels, MAX_COMPONENTS):
                width = min(MAX_COMPONENTS, a.channels - start)
                name = a.name if a.channels <= MAX_COMPONENTS else f"{a.name}_{start}"
                spec = enc.VertexAttribute(unique_id(name, taken), "float32", width)
                spec.check()
                self.attributes.append((spec, a.name, slice(start, start + width)))
        self.direction = None
        if self.kind in PATH_KINDS:  # after the store's own attributes, so that they keep their names
            self.direction = enc.VertexAttribute(unique_id(DIRECTION, taken), "float32", 3)

    @property
    def spec(self) -> list[enc.VertexAttribute]:
        return [s for s, _, _ in self.attributes] + ([self.direction] if self.direction else [])

    def info(self) -> dict:
        out = enc.info(self.spec, transform=self.ctx.space.to_nanometres(), segment_properties=PROPERTIES_DIR)
        if self.direction is not None:
            out[EXTENSION] = {"direction": self.direction.id}
        return out

    def edges(self, oid: int) -> np.ndarray:
        """(E, 2) object-local edges, from the object's shape alone where the level has it (no vertex
        data read; polylines need no link records either); a coarse level of a graph or skeleton
        store, where zarr-vectors keeps no edges, gets level 0's edges contracted onto its vertices."""
        if self.kind in ("graph", "skeleton") and self.level.index > 0 and not len(self.objects.connectivity(oid)[1]):
            return self._contracted(oid)
        return self._edges(self.objects, oid)

    def _edges(self, objects: ObjectTable, oid: int) -> np.ndarray:
        if self.kind == "graph":
            return objects.connectivity(oid)[1].reshape(-1, 2)
        if self.kind == "skeleton":
            pieces, links, _ = objects.connectivity(oid)
            n = int(pieces.sum())
            parent = np.arange(-1, n - 1)
            parent[np.concatenate([[0], np.cumsum(pieces)[:-1]]).astype(np.int64)] = -1
            if len(links):
                parent[links[:, 0]] = links[:, 1]
            child = np.flatnonzero(parent >= 0)
            return np.stack([child, parent[child]], 1)
        n = int(objects.pieces(oid).sum())
        return np.stack([np.arange(n - 1), np.arange(1, n)], 1) if n > 1 else np.zeros((0, 2), np.int64)

    def _contracted(self, oid: int) -> np.ndarray:
        """Level 0's edges of an object, each end moved to this level's vertex in the same bin of this
        level (a coarse vertex is the centroid of the finer ones in its bin); edges within one bin
        vanish, repeats are kept once. zarr-vectors repeats a bin's vertex where the object crosses
        chunks: each repeat is joined to the bin's first row, so that the coarse skeleton stays
        connected where level 0's is, every row included."""
        fine = self.ctx.objects(0)
        coarse = np.floor(self.objects.geometry(oid).positions / self.level.bin_shape).astype(np.int64)
        finer = np.floor(fine.geometry(oid).positions / self.level.bin_shape).astype(np.int64)
        _, bin_of = np.unique(np.concatenate([coarse, finer]), axis=0, return_inverse=True)
        bin_of = bin_of.reshape(-1)
        bins, first = np.unique(bin_of[: len(coarse)], return_index=True)
        row_in = np.full(int(bin_of.max(initial=-1)) + 1, -1, np.int64)
        row_in[bins] = first
        rows = np.arange(len(coarse))
        repeats = np.stack([rows, row_in[bin_of[: len(coarse)]]], 1)
        ends = np.concatenate([row_in[bin_of[len(coarse) :]][self._edges(fine, oid)], repeats])
        ends = ends[(ends >= 0).all(1) & (ends[:, 0] != ends[:, 1])]
        return np.unique(np.sort(ends, axis=1), axis=0) if len(ends) else np.zeros((0, 2), np.int64)

    def size(self, oid: int) -> int:
        return enc.size(self.objects.size(oid), len(self.edges(oid)), self.spec)

    def sizes(self, oids: np.ndarray) -> np.ndarray:
        """:meth:`size` of many objects (-1: a damaged chunk); from counts alone for polylines."""
        if self.kind not in PATH_KINDS:
            return np.asarray([self.size(int(o)) for o in oids], np.int64)
        n = self.objects.objects.sizes_at(self.objects.rows_of(oids))
        return np.where(n < 0, -1, enc.sizes(n, np.maximum(n - 1, 0), self.spec))

    def encode(self, oid: int) -> bytes:
        return self._encode(oid, self.objects.geometry(oid))

    def encode_many(self, oids: np.ndarray) -> list[bytes]:
        """:meth:`encode` of many objects, their chunks read in order (:meth:`ObjectTable.geometries`)."""
        ids = [int(o) for o in oids]
        return [self._encode(o, g) for o, g in zip(ids, self.objects.geometries(ids), strict=True)]

    def _encode(self, oid: int, g: ObjectGeometry) -> bytes:
        values = {}
        for spec, name, channels in self.attributes:
            column = np.asarray(g.attributes[name], np.float64).reshape(len(g.positions), -1)[:, channels]
            values[spec.id] = column.astype(np.float32)
        if self.direction is not None:
            values[self.direction.id] = directions(self.ctx.space.points(g.positions))
        return enc.encode(g.positions, self.edges(oid), values, self.spec)

    @cached_property
    def _held(self) -> tuple[np.ndarray, np.ndarray]:
        """Segments of the objects this level holds (ascending; a coarse level may drop some) and
        those objects' ids."""
        held = self.objects.ids[self.objects.objects.sizes() != 0]
        segments = self.segments.of(held)
        order = np.argsort(segments)
        return segments[order], held[order]

    @property
    def segment_ids(self) -> np.ndarray:
        return self._held[0]

    def objects_of(self, segments: np.ndarray) -> np.ndarray:
        """Object ids of segments this level holds."""
        held_segments, held = self._held
        return held[np.searchsorted(held_segments, segments)]

    def object_of(self, segment: int) -> int | None:
        oid = self.segments.object_of(segment)
        return oid if oid is not None and self.objects.size(oid) else None


def skeleton_dir(src: SkeletonSource, indexes: LayerIndexes) -> Dir:
    """``info``, ``segment_properties/info`` and one file per segment id (or shards of them)."""

    def child(name: str) -> File | None:
        seg = parse_uint(name)
        oid = None if seg is None else src.object_of(seg)
        if oid is None:
            return None
        return File(lambda: src.encode(oid), lambda: src.size(oid))

    def table() -> tuple[np.ndarray, np.ndarray]:
        return src.segment_ids, src.sizes(src.objects_of(src.segment_ids))

    def encode(segments: np.ndarray) -> dict[int, bytes]:
        return dict(zip(segments.tolist(), src.encode_many(src.objects_of(segments)), strict=True))

    plain = Dir(names=lambda: map(str, src.segment_ids), child=child)
    files = indexes.index(SEGMENTS, plain, lambda: CountedChunks(table, encode, indexes.budget))
    info = lambda: indexes.with_sharding(src.info(), SEGMENTS)  # noqa: E731
    return segment_layer_dir(info, src.ctx, src.level.index, files.names, files.child)
