"""Open what a user names on the command line as a :class:`~zvfs.tree.Tree`."""

from __future__ import annotations

import os

from .store import StoreError, is_zvf_store, open_store
from .tree import DEFAULT_CACHE_BYTES, DirectoryTree, Tree, VirtualTree


def open_virtual_tree(
    path: str, cache_bytes: int = DEFAULT_CACHE_BYTES, *, transform: str | None = None, units: str | None = None
) -> VirtualTree:
    """The precomputed tree of a ZVF store (raises :class:`StoreError` with a one-line reason);
    ``transform`` and ``units`` as given on the command line (see :mod:`zvfs.space`).
    ``cache_bytes`` bounds the caches: a quarter for decoded chunks, the rest for encoded files."""
    from .mappers import map_store
    from .space import parse_affine, parse_units

    chunks = cache_bytes // 4
    store = open_store(path, chunks)
    if transform is not None or units is not None:
        rank = len(store.axes)
        store.override_space(
            None if transform is None else parse_affine(transform, rank),
            None if units is None else parse_units(units, rank),
        )
    return VirtualTree(
        map_store(store),
        label=store.path,
        mtime=store.mtime,
        cache_bytes=cache_bytes - chunks,
        fingerprint=store.fingerprint,
    )


def open_tree(path: str, cache_bytes: int = DEFAULT_CACHE_BYTES, **space: str | None) -> Tree:
    """A ZVF store's virtual tree, or a plain directory (e.g. a mount or an export) as it is."""
    if os.path.isdir(path) and not is_zvf_store(path):
        return DirectoryTree(path)
    return open_virtual_tree(path, cache_bytes, **space)


__all__ = ["StoreError", "open_tree", "open_virtual_tree"]
