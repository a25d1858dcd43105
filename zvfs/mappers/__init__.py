"""Mappers: per ZVF geometry type, which precomputed layers (directories and files) exist."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from ..errors import StoreError
from ..store import ZVFStore
from ..tree import Dir
from .annotation_layer import annotation_dir
from .common import Context
from .graphs import EdgeItems
from .lines import ObjectItems
from .meshes import MeshSource, legacy_dir, multilod_dir
from .points import PointSource
from .skeletons import SkeletonSource, skeleton_dir

Layers = dict[str, Dir]


def _point_cloud(ctx: Context, level: int | None) -> Layers:
    return {"annotations": annotation_dir(PointSource(ctx, level))}


def _line(ctx: Context, level: int | None) -> Layers:
    return {"annotations": annotation_dir(ObjectItems(ctx, "line", level))}


def _polyline(ctx: Context, level: int | None) -> Layers:
    return {
        "annotations": annotation_dir(ObjectItems(ctx, "polyline", level)),
        "skeletons": skeleton_dir(SkeletonSource(ctx, level or 0)),
    }


def _graph(ctx: Context, level: int | None) -> Layers:
    return {
        "annotations": annotation_dir(EdgeItems(ctx, level)),
        "skeletons": skeleton_dir(SkeletonSource(ctx, level or 0)),
    }


def _skeleton(ctx: Context, level: int | None) -> Layers:
    return {"skeletons": skeleton_dir(SkeletonSource(ctx, level or 0))}


def _mesh(ctx: Context, level: int | None) -> Layers:
    src = MeshSource(ctx, level)
    return (
        {"meshes": multilod_dir(src)}
        if level is not None
        else {"meshes": multilod_dir(src), "legacy_meshes": legacy_dir(src)}
    )


MAPPERS: dict[str, Callable[[Context, int | None], Layers]] = {
    "point_cloud": _point_cloud,
    "line": _line,
    "polyline": _polyline,
    "streamline": _polyline,
    "graph": _graph,
    "skeleton": _skeleton,
    "mesh": _mesh,
}


def check_supported(store: ZVFStore) -> None:
    """A one-line :class:`StoreError` unless zvfs maps the store's geometry type."""
    if store.kind not in MAPPERS:
        raise StoreError(
            f"{store.path}: geometry type {store.kind!r} is not supported (supported: {', '.join(sorted(MAPPERS))})"
        )


def map_store(ctx: Context) -> Dir:
    """The root directory of a store's precomputed tree: its layers, and with a pyramid
    ``levels/N/`` holding the layers of pyramid level N alone (a pinned level of detail)."""
    check_supported(ctx.store)
    mapper = MAPPERS[ctx.store.kind]
    layers: dict = mapper(ctx, None)
    depth = ctx.index.pyramid.depth
    if depth > 1:
        names = [str(n) for n in range(depth)]
        level_dir = cache(lambda name: Dir(mapper(ctx, int(name))))
        layers["levels"] = Dir(names=lambda: iter(names), child=lambda name: level_dir(name) if name in names else None)
    return Dir(layers)
