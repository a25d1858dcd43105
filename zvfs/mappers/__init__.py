"""Mappers: per ZVF geometry type, which precomputed layers (directories and files) exist."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from ..errors import StoreError
from ..store import ZVFStore
from ..tree import Dir
from .annotation_layer import AnnotationSource, annotation_dir
from .common import Context
from .graphs import EdgeItems
from .lines import ObjectItems
from .meshes import MeshSource, legacy_dir, multilod_dir
from .points import PointSource
from .skeletons import SkeletonSource, skeleton_dir

Layer = Callable[[Context, "int | None"], "Dir | None"]  # the layer's directory, for every level or one pinned


def _skeletons(ctx: Context, level: int | None) -> Dir:
    return skeleton_dir(SkeletonSource(ctx, level or 0), ctx.layer_indexes())


def _annotations(source: Callable[[Context, int | None], AnnotationSource]) -> Layer:
    return lambda ctx, level: annotation_dir(source(ctx, level), ctx.layer_indexes())


# geometry type -> its layers (directory names, in the tree's order) and how each is made
MAPPERS: dict[str, dict[str, Layer]] = {
    "point_cloud": {"annotations": _annotations(PointSource)},
    "line": {"annotations": _annotations(lambda ctx, level: ObjectItems(ctx, "line", level))},
    "polyline": {
        "annotations": _annotations(lambda ctx, level: ObjectItems(ctx, "polyline", level)),
        "skeletons": _skeletons,
    },
    "graph": {"annotations": _annotations(EdgeItems), "skeletons": _skeletons},
    "skeleton": {"skeletons": _skeletons},
    "mesh": {
        "meshes": lambda ctx, level: multilod_dir(MeshSource(ctx, level), ctx.layer_indexes()),
        "legacy_meshes": lambda ctx, level: legacy_dir(MeshSource(ctx, None)) if level is None else None,
    },
}
MAPPERS["streamline"] = MAPPERS["polyline"]


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
    layers = MAPPERS[ctx.store.kind]

    def made(level: int | None) -> dict[str, Dir]:
        return {name: d for name, make in layers.items() if (d := make(ctx, level)) is not None}

    root: dict[str, Dir] = made(None)
    depth = ctx.index.pyramid.depth
    if depth > 1:
        names = [str(n) for n in range(depth)]
        level_dir = cache(lambda name: Dir(made(int(name))))
        root["levels"] = Dir(names=lambda: iter(names), child=lambda name: level_dir(name) if name in names else None)
    return Dir(root)
