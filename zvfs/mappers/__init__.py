"""Mappers: per ZVF geometry type, which precomputed layers (directories and files) exist."""
from __future__ import annotations

from typing import Callable

from ..errors import StoreError
from ..store import ZVFStore
from ..tree import Dir
from .annotation_layer import annotation_dir
from .graphs import EdgeItems
from .lines import ObjectItems
from .meshes import MeshSource, legacy_dir, multilod_dir
from .points import PointSource
from .skeletons import SkeletonSource, skeleton_dir


def _point_cloud(store: ZVFStore) -> Dir:
    return Dir({"annotations": annotation_dir(PointSource(store))})


def _line(store: ZVFStore) -> Dir:
    return Dir({"annotations": annotation_dir(ObjectItems(store, "line"))})


def _polyline(store: ZVFStore) -> Dir:
    return Dir({"annotations": annotation_dir(ObjectItems(store, "polyline")),
                "skeletons": skeleton_dir(SkeletonSource(store))})


def _graph(store: ZVFStore) -> Dir:
    return Dir({"annotations": annotation_dir(EdgeItems(store)),
                "skeletons": skeleton_dir(SkeletonSource(store))})


def _skeleton(store: ZVFStore) -> Dir:
    return Dir({"skeletons": skeleton_dir(SkeletonSource(store))})


def _mesh(store: ZVFStore) -> Dir:
    src = MeshSource(store)
    return Dir({"meshes": multilod_dir(src), "legacy_meshes": legacy_dir(src)})


MAPPERS: dict[str, Callable[[ZVFStore], Dir]] = {
    "point_cloud": _point_cloud,
    "line": _line,
    "polyline": _polyline,
    "streamline": _polyline,
    "graph": _graph,
    "skeleton": _skeleton,
    "mesh": _mesh,
}


def map_store(store: ZVFStore) -> Dir:
    """The root directory of a store's precomputed tree."""
    mapper = MAPPERS.get(store.kind)
    if mapper is None:
        raise StoreError(f"{store.path}: geometry type {store.kind!r} is not supported "
                         f"(supported: {', '.join(sorted(MAPPERS))})")
    return mapper(store)
