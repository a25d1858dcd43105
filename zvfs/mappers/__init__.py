"""Mappers: per ZVF geometry type, which precomputed layers (directories and files) exist."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from ..errors import StoreError
from ..store import ZVFStore
from ..tree import Dir
from .annotation_layer import annotation_dir
from .graphs import EdgeItems
from .lines import ObjectItems
from .meshes import MeshSource, legacy_dir, multilod_dir
from .points import PointSource
from .pyramid import Pyramid
from .skeletons import SkeletonSource, skeleton_dir

Layers = dict[str, Dir]


def _point_cloud(store: ZVFStore, level: int | None) -> Layers:
    return {"annotations": annotation_dir(PointSource(store, level))}


def _line(store: ZVFStore, level: int | None) -> Layers:
    return {"annotations": annotation_dir(ObjectItems(store, "line", level))}


def _polyline(store: ZVFStore, level: int | None) -> Layers:
    return {
        "annotations": annotation_dir(ObjectItems(store, "polyline", level)),
        "skeletons": skeleton_dir(SkeletonSource(store, level or 0)),
    }


def _graph(store: ZVFStore, level: int | None) -> Layers:
    return {
        "annotations": annotation_dir(EdgeItems(store, level)),
        "skeletons": skeleton_dir(SkeletonSource(store, level or 0)),
    }


def _skeleton(store: ZVFStore, level: int | None) -> Layers:
    return {"skeletons": skeleton_dir(SkeletonSource(store, level or 0))}


def _mesh(store: ZVFStore, level: int | None) -> Layers:
    src = MeshSource(store, level)
    return (
        {"meshes": multilod_dir(src)}
        if level is not None
        else {"meshes": multilod_dir(src), "legacy_meshes": legacy_dir(src)}
    )


MAPPERS: dict[str, Callable[[ZVFStore, int | None], Layers]] = {
    "point_cloud": _point_cloud,
    "line": _line,
    "polyline": _polyline,
    "streamline": _polyline,
    "graph": _graph,
    "skeleton": _skeleton,
    "mesh": _mesh,
}


def map_store(store: ZVFStore) -> Dir:
    """The root directory of a store's precomputed tree: its layers, and with a pyramid
    ``levels/N/`` holding the layers of pyramid level N alone (a pinned level of detail)."""
    mapper = MAPPERS.get(store.kind)
    if mapper is None:
        raise StoreError(
            f"{store.path}: geometry type {store.kind!r} is not supported (supported: {', '.join(sorted(MAPPERS))})"
        )
    layers: dict = mapper(store, None)
    depth = Pyramid.of(store).depth
    if depth > 1:
        names = [str(n) for n in range(depth)]
        level_dir = cache(lambda name: Dir(mapper(store, int(name))))
        layers["levels"] = Dir(names=lambda: iter(names), child=lambda name: level_dir(name) if name in names else None)
    return Dir(layers)
