"""zvfs: Zarr Vector Format stores as read-only Neuroglancer precomputed trees.

The Python API (docs/python.md): :func:`open_tree`, :func:`info`, :func:`export`, :func:`mount`,
:func:`serve` / :class:`Server`, and :func:`add` (a store's layers into a ``neuroglancer.Viewer``)
/ :class:`Viewer`. Importing ``zvfs`` is cheap: each is imported when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import StoreError, UsageError

if TYPE_CHECKING:
    from .api import Served as Served
    from .api import Server as Server
    from .api import TreeOptions as TreeOptions
    from .api import export as export
    from .api import info as info
    from .api import mount as mount
    from .api import open_tree as open_tree
    from .api import serve as serve
    from .frontends.export import Exported as Exported
    from .tree import NotFound as NotFound
    from .tree import ReadFailed as ReadFailed
    from .tree import Tree as Tree
    from .viewer import Viewer as Viewer
    from .viewer import add as add

__version__ = "0.1.0"

_LAZY = {
    "open_tree": "api",
    "info": "api",
    "export": "api",
    "mount": "api",
    "serve": "api",
    "Server": "api",
    "Served": "api",
    "TreeOptions": "api",
    "Exported": "frontends.export",
    "Tree": "tree",
    "NotFound": "tree",
    "ReadFailed": "tree",
    "add": "viewer",
    "Viewer": "viewer",
}

__all__ = ["StoreError", "UsageError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'zvfs' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
