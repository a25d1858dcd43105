"""Open what a user names on the command line as a :class:`~zvfs.tree.Tree`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from numpy.typing import ArrayLike

from .cache import Budget
from .forest import StoreForest
from .index import IndexOptions, open_index
from .mappers import check_supported, map_store
from .mappers.common import Context
from .mappers.sharding import Sharding
from .space import Space, parse_affine, parse_units
from .store import StoreError, ZVFStore, is_zvf_store, open_store
from .tree import DEFAULT_CACHE_BYTES, DirectoryTree, Tree, VirtualTree


def open_context(
    path: str,
    budget: Budget | None = None,
    *,
    transform: str | ArrayLike | None = None,
    units: str | Sequence[str] | None = None,
    ignore_store_space: bool = False,
    index: IndexOptions | None = None,
    sharding: Sharding | None = None,
) -> Context:
    """What a store's mappers work from: the store opened read-only, the physical space its tree
    is written in (the store's own coordinate chain, then ``transform`` and ``units`` as on the
    command line, see :mod:`zvfs.space`), its index, opened or built first as ``index`` says, and
    which of its layers are sharded (none by default). Raises :class:`StoreError` with a one-line
    reason."""
    budget = budget or Budget(DEFAULT_CACHE_BYTES)
    store = open_store(path, budget)
    check_supported(store)
    space = open_space(store, transform, units, ignore_store_space)
    return Context(store, open_index(store, budget, index or IndexOptions()), space, sharding)


def open_space(
    store: ZVFStore,
    transform: str | ArrayLike | None = None,
    units: str | Sequence[str] | None = None,
    ignore_store_space: bool = False,
) -> Space:
    """The physical space of a store's tree: its coordinate chain, then ``transform`` and ``units``."""
    rank = len(store.axes)
    return Space.of(
        store.axes,
        store.path,
        None if transform is None else parse_affine(transform, rank),
        None if units is None else parse_units(units, rank),
        coordinates=store.coordinates,
        ignore_store=ignore_store_space,
    )


def open_virtual_tree(
    path: str,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    *,
    budget: Budget | None = None,
    **options: Any,
) -> VirtualTree:
    """The precomputed tree of a ZVF store (see :func:`open_context` for ``options``); every cache
    of the tree draws from ``budget`` (default: a new one of ``cache_bytes``)."""
    budget = budget or Budget(cache_bytes)
    ctx = open_context(path, budget, **options)
    store = ctx.store
    return VirtualTree(
        map_store(ctx), label=store.path, mtime=store.mtime, budget=budget, fingerprint=store.fingerprint
    )


def open_tree(
    path: str,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    *,
    directories: bool = True,
    budget: Budget | None = None,
    **options: Any,
) -> Tree:
    """What ``path`` names, as a tree: a ZVF store's virtual tree; a directory holding stores (at any
    depth) as a :class:`~zvfs.forest.StoreForest` of their trees, sharing one budget; any other
    directory (a mount, an export) as it is, when ``directories`` allows. Caches draw from
    ``budget`` (default: a new one of ``cache_bytes``)."""
    budget = budget or Budget(cache_bytes)
    if not (os.path.isdir(path) and not is_zvf_store(path)):
        return open_virtual_tree(path, budget=budget, **options)
    forest = StoreForest(path, budget, lambda store: open_virtual_tree(store, budget=budget, **options))
    if forest.stores:
        return forest
    if not directories:
        raise StoreError(f"{os.path.abspath(path)}: not a ZVF store (no zarr.json with 'zarr_vectors' attributes), "
                         "and no store below it")  # fmt: skip
    return DirectoryTree(path)


__all__ = ["StoreError", "open_tree", "open_virtual_tree"]
