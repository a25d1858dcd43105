"""ZVF ``mesh`` objects -> multi-resolution Draco meshes (``meshes/``) and legacy meshes
(``legacy_meshes/``), one segment per object.

Each object is assembled whole from every chunk it crosses (faces from its link records). Draco
output sizes cannot be known from counts, so a segment is encoded once, on the first ``stat`` or
read of either of its two files, and kept in a byte-bounded cache; legacy fragment sizes come from
counts. Per-vertex attributes have no place in precomputed meshes and are not carried.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from ..cache import Memo
from ..encoders import meshes as enc
from ..objects import ObjectTable
from ..store import ZVFStore
from ..tree import Dir, File
from .annotation_layer import parse_uint
from .common import SegmentIds
from .segments import PROPERTIES_DIR, segment_layer_dir
from .skeletons import to_nanometres

ENCODED_CACHE_BYTES = 128 * 2**20


class MeshSource:
    """Meshes of the objects of one level."""

    def __init__(self, store: ZVFStore) -> None:
        if len(store.axes) != 3:
            raise ValueError(f"{store.path}: meshes need 3 spatial axes, store has {len(store.axes)}")
        self.store = store
        self.level = store.levels[0]
        self.objects = ObjectTable(self.level)
        self.segments = SegmentIds(self.level)
        self.transform = to_nanometres(store)
        self._encoded: Memo[enc.EncodedMesh] = Memo(ENCODED_CACHE_BYTES,
                                                     getsizeof=lambda m: len(m.manifest) + len(m.data))

    @cached_property
    def segment_ids(self) -> np.ndarray:
        return np.sort(self.segments.of(self.objects.ids))

    def object_of(self, name: str) -> int | None:
        seg = parse_uint(name)
        return None if seg is None else self.segments.object_of(seg)

    def mesh(self, oid: int) -> tuple[np.ndarray, np.ndarray]:
        g = self.objects.geometry(oid)
        return g.positions, g.links.reshape(-1, 3)

    def faces(self, oid: int) -> int:
        return len(self.objects.connectivity(oid)[1])

    # -- multi-resolution
    def multilod_info(self) -> dict:
        return enc.info(transform=self.transform, segment_properties=PROPERTIES_DIR)

    def encoded(self, oid: int) -> enc.EncodedMesh:
        return self._encoded.get(oid, lambda: enc.encode_multilod([self.mesh(oid)]))

    # -- legacy: positions in nanometres, one fragment per segment
    def legacy_info(self) -> dict:
        return enc.legacy_info(segment_properties=PROPERTIES_DIR)

    def legacy_fragment(self, oid: int) -> bytes:
        vertices, faces = self.mesh(oid)
        scale = np.asarray(self.transform, np.float64).reshape(3, 4)[:, :3].diagonal()
        return enc.legacy_fragment(vertices * scale, faces)


def multilod_dir(src: MeshSource) -> Dir:
    """``info``, ``segment_properties/``, and ``<segment>.index`` + ``<segment>`` per object."""
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

    return segment_layer_dir(src.multilod_info, src.level, src.segments, names, child)


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
        return File(lambda: src.legacy_fragment(oid),
                    lambda: enc.legacy_fragment_size(src.objects.size(oid), src.faces(oid)))

    def names():
        for seg in src.segment_ids:
            yield f"{seg}:0"
            yield f"{seg}:0:0"

    return segment_layer_dir(src.legacy_info, src.level, src.segments, names, child)
