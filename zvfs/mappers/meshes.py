"""ZVF ``mesh`` objects -> multi-resolution Draco meshes (``meshes/``) and legacy meshes
(``legacy_meshes/``), one segment per object.

Each object is assembled whole from every chunk it crosses (faces from its link records). Draco
output sizes cannot be known from counts, so a segment is encoded once, on the first ``stat`` or
read of either of its two files, and kept in a byte-bounded cache; legacy fragment sizes come from
counts. Per-vertex attributes have no place in precomputed meshes and are not carried.

Sharded (:mod:`.sharding`), a segment's manifest is the chunk and its fragments the bytes just
before it. A shard's size needs the Draco sizes of all its meshes, so its first ``stat`` encodes
every mesh of the shard (each mesh's two sizes are then kept); shards are therefore planned by
count, about :data:`MESHES_PER_SHARD` meshes each, which bounds that first ``stat``. Legacy meshes
have no sharded form in the client and are never sharded.

Levels of detail: one LOD per ZVF level, LOD 0 the level-0 mesh. A coarse level's own faces are
used where it has them; zarr-vectors' pyramids keep vertices only, so otherwise LOD k is the
level-0 mesh simplified to the object's vertex reduction at level k (its vertex count there over
its level-0 count). An object the level drops takes the reduction of the objects the level keeps
(their summed vertex counts there over at level 0). Reductions never grow from one LOD to the next.
The legacy view is level 0 only.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ..cache import Memo
from ..encoders import meshes as enc
from ..encoders import sharded
from ..meshing import simplify
from ..tree import Dir, File
from .common import Context, parse_uint
from .segments import PROPERTIES_DIR, SEGMENTS, segment_layer_dir
from .sharding import I64, U64, Chunks, LayerIndexes

MESHES_PER_SHARD = 256  # sharded: about this many meshes per shard (the Draco work of a shard's first stat)


class MeshSource:
    """Meshes of the objects of one level."""

    def __init__(self, ctx: Context, only_level: int | None = None) -> None:
        """Every level as a LOD, or with ``only_level`` N just level N's mesh (a pinned level)."""
        store = ctx.store
        if len(store.axes) != 3:
            raise ValueError(f"{store.path}: meshes need 3 spatial axes, store has {len(store.axes)}")
        self.ctx = ctx
        self.store = store
        self.level = store.levels[0]
        self.tables = [ctx.objects(k) if lv.has_objects else None for k, lv in enumerate(store.levels)]
        self.objects = ctx.objects(0)
        self.segments = ctx.segments
        self.transform = ctx.space.to_nanometres()
        self.shown = list(range(len(store.levels))) if only_level is None else [only_level]
        self._encoded: Memo[enc.EncodedMesh] = store.budget.memo(lambda m: len(m.manifest) + len(m.data))
        self._measured: Memo[tuple[int, int]] = store.budget.memo(lambda _: 16)

    @cached_property
    def segment_ids(self) -> np.ndarray:
        return np.sort(self.segments.of(self.objects.ids))

    def object_of(self, name: str) -> int | None:
        seg = parse_uint(name)
        return None if seg is None else self.segments.object_of(seg)

    def mesh(self, oid: int) -> tuple[np.ndarray, np.ndarray]:
        return self.objects.geometry(oid).positions, self.objects.connectivity(oid)[1].reshape(-1, 3)

    def faces(self, oid: int) -> int:
        return len(self.objects.connectivity(oid)[1])

    # -- multi-resolution
    def multilod_info(self) -> dict:
        return enc.info(transform=self.transform, segment_properties=PROPERTIES_DIR)

    @cached_property
    def _sizes(self) -> np.ndarray:
        """(levels, objects) vertex count of each level-0 object at each level (0: dropped)."""
        ids = self.objects.ids
        out = np.zeros((len(self.tables), len(ids)), np.int64)
        for k, table in enumerate(self.tables):
            if table is not None and len(table.ids):
                rows = np.minimum(np.searchsorted(table.ids, ids), len(table.ids) - 1)
                out[k] = np.where(table.ids[rows] == ids, table.objects.sizes()[rows], 0)
        return out

    @cached_property
    def _level_ratios(self) -> list[float]:
        """Per level: summed vertex counts of the objects it keeps, over theirs at level 0 (1 if none)."""
        out = []
        for sizes in self._sizes:
            kept = (sizes > 0) & (self._sizes[0] > 0)
            out.append(float(sizes[kept].sum() / self._sizes[0][kept].sum()) if kept.any() else 1.0)
        return out

    def lod_ratios(self, oid: int) -> list[float]:
        """Target vertex reduction of each LOD of an object (see the module docstring)."""
        sizes = self._sizes[:, self.objects.row_of(oid)]
        out = [1.0]
        for k in range(1, len(sizes)):
            ratio = sizes[k] / sizes[0] if sizes[k] and sizes[0] else self._level_ratios[k]
            out.append(min(out[-1], float(ratio)))
        return out

    def coarse_faces(self, oid: int, k: int) -> enc.Mesh | None:
        """An object's mesh at level k when that level holds triangles for it."""
        table = self.tables[k]
        if table is None or not table.size(oid):
            return None
        faces = table.connectivity(oid)[1]
        if faces.ndim != 2 or faces.shape[1] != 3 or not len(faces):
            return None
        return table.geometry(oid).positions, faces

    def lod(self, oid: int, k: int) -> enc.Mesh:
        """An object's mesh at level k: level 0's, level k's own triangles, or a simplification."""
        if k == 0:
            return self.mesh(oid)
        return self.coarse_faces(oid, k) or simplify(*self.mesh(oid), self.lod_ratios(oid)[k])

    def lods(self, oid: int) -> list[enc.Mesh]:
        """The mesh of every shown LOD of an object, finest first."""
        return [self.lod(oid, k) for k in self.shown]

    def grid(self, lods: list[enc.Mesh]) -> tuple[np.ndarray, np.ndarray]:
        """Octree ``(grid_origin, chunk_shape)``: the encoder's default (the coarsest LOD in one node)
        with LOD-0 nodes no smaller than a level-0 ZVF chunk, so small objects are not cut up."""
        origin, chunk = enc.default_grid(lods)
        return origin, np.maximum(chunk, self.level.chunk_shape)

    def encode(self, oid: int) -> enc.EncodedMesh:
        lods = self.lods(oid)
        origin, chunk = self.grid(lods)
        return enc.encode_multilod(lods, grid_origin=origin, chunk_shape=chunk)

    def encoded(self, oid: int) -> enc.EncodedMesh:
        return self._encoded.get(oid, lambda: self.encode(oid))

    def measured(self, oid: int) -> tuple[int, int]:
        """Sizes of an object's manifest and fragment data (kept longer than its bytes)."""

        def measure() -> tuple[int, int]:
            manifest, data = self.encoded(oid)
            return len(manifest), len(data)

        return self._measured.get(oid, measure)

    # -- legacy: positions in nanometres, one fragment per segment
    def legacy_info(self) -> dict:
        return enc.legacy_info(segment_properties=PROPERTIES_DIR)

    def legacy_fragment(self, oid: int) -> bytes:
        vertices, faces = self.mesh(oid)
        transform = np.asarray(self.transform, np.float64).reshape(3, 4)
        return enc.legacy_fragment(np.asarray(vertices, np.float64) @ transform[:, :3].T + transform[:, 3], faces)


class MeshChunks(Chunks):
    """Multi-resolution meshes as the chunks of a sharded index: manifests, fragments as prefixes."""

    def __init__(self, src: MeshSource) -> None:
        self.src = src

    def _objects(self, segments: U64) -> list[int]:
        return self.src.objects.ids[self.src.segments.rows_of(segments)].tolist()

    def ids(self) -> U64:
        return self.src.segment_ids

    def nbytes(self) -> int:  # planned by count: a shard's first stat encodes all its meshes
        return len(self.src.segment_ids) * (sharded.TARGET_SHARD_BYTES // MESHES_PER_SHARD)

    def sizes(self, ids: U64) -> tuple[I64, I64]:
        measured = np.asarray([self.src.measured(o) for o in self._objects(ids)], np.int64).reshape(-1, 2)
        return measured[:, 0], measured[:, 1]

    def encode(self, ids: U64) -> dict[int, bytes]:
        return {s: self.src.encoded(o).manifest for s, o in zip(ids.tolist(), self._objects(ids), strict=True)}

    def prefixes(self, ids: U64) -> dict[int, bytes]:
        return {s: self.src.encoded(o).data for s, o in zip(ids.tolist(), self._objects(ids), strict=True)}


def multilod_dir(src: MeshSource, indexes: LayerIndexes) -> Dir:
    """``info``, ``segment_properties/``, and ``<segment>.index`` + ``<segment>`` per object (or
    shards of them)."""

    def child(name: str) -> File | None:
        stem, dot, ext = name.partition(".")
        oid = src.object_of(stem)
        if oid is None or (dot and ext != "index"):
            return None
        part = (lambda: src.encoded(oid).manifest) if dot else (lambda: src.encoded(oid).data)
        return File(part, lambda: len(part()))

    def names():
        for seg in src.segment_ids:
            yield f"{seg}.index"
            yield str(seg)

    files = indexes.index(SEGMENTS, Dir(names=names, child=child), lambda: MeshChunks(src), files_per_chunk=2)
    info = lambda: indexes.with_sharding(src.multilod_info(), SEGMENTS)  # noqa: E731
    return segment_layer_dir(info, src.ctx, 0, files.names, files.child)


def legacy_dir(src: MeshSource) -> Dir:
    """``info``, ``segment_properties/``, and ``<segment>:0`` (manifest) + ``<segment>:0:0`` per object."""

    def child(name: str) -> File | None:
        parts = name.split(":")
        oid = src.object_of(parts[0])
        if oid is None or parts[1:] not in (["0"], ["0", "0"]):
            return None
        if len(parts) == 2:
            manifest = enc.legacy_manifest([f"{parts[0]}:0:0"])
            return File(lambda: manifest, lambda: len(manifest))
        return File(
            lambda: src.legacy_fragment(oid), lambda: enc.legacy_fragment_size(src.objects.size(oid), src.faces(oid))
        )

    def names():
        for seg in src.segment_ids:
            yield f"{seg}:0"
            yield f"{seg}:0:0"

    return segment_layer_dir(src.legacy_info, src.ctx, 0, names, child)
