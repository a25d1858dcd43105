"""Open what a user names on the command line as a :class:`~zvfs.tree.Tree`."""
from __future__ import annotations

import os

from .store import StoreError, is_zvf_store, open_store
from .tree import DEFAULT_CACHE_BYTES, DirectoryTree, Tree, VirtualTree


def open_virtual_tree(path: str, cache_bytes: int = DEFAULT_CACHE_BYTES) -> VirtualTree:
    """The precomputed tree of a ZVF store (raises :class:`StoreError` with a one-line reason)."""
    from .mappers import map_store

    store = open_store(path)
    return VirtualTree(map_store(store), label=store.path, mtime=store.mtime, cache_bytes=cache_bytes)


def open_tree(path: str, cache_bytes: int = DEFAULT_CACHE_BYTES) -> Tree:
    """A ZVF store's virtual tree, or a plain directory (e.g. a mount or an export) as it is."""
    if os.path.isdir(path) and not is_zvf_store(path):
        return DirectoryTree(path)
    return open_virtual_tree(path, cache_bytes)


__all__ = ["StoreError", "open_tree", "open_virtual_tree"]
