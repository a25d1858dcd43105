"""ZVF stores in a ``neuroglancer.Viewer`` (a notebook's, a script's) in one call: :func:`add`.

The store is served by a local :class:`~zvfs.api.Server` (one per process, started on first use,
or one given), or is taken to be served at a given base URL; its layers are the layers ``zvfs
link`` and ``zvfs view`` show, with the same defaults and shaders, and the view is fitted to them
the same way.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import TYPE_CHECKING, Any

from . import link
from .api import PathLike, Server, open_tree

try:
    import neuroglancer
except ImportError:
    raise ImportError("zvfs.add needs the neuroglancer package: pip install 'zvfs[view]'") from None

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .api import TreeOptions

# state keys (as in zvfs link's states) -> neuroglancer.ViewerState attributes
FIT = {
    "position": "position",
    "crossSectionScale": "cross_section_scale",
    "projectionScale": "projection_scale",
    "projectionOrientation": "projection_orientation",
}
FIRST_VIEW = {"layout": "layout", "showSlices": "show_slices"}  # set only in a viewer without layers

_shared: Server | None = None
_shared_lock = threading.Lock()


def shared_server() -> Server:
    """The local server :func:`add` uses unless given one: started on first use, stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Server()
            atexit.register(_shared.close)
        return _shared


def add(
    viewer: Any,
    source: PathLike,
    *,
    name: str | None = None,
    fit: bool = True,
    server: Server | None = None,
    base_url: str | None = None,
    **options: Unpack[TreeOptions],
) -> list[str]:
    """Add every layer of a store (or of a directory of stores, a mount, an export) to
    ``viewer`` (a ``neuroglancer.Viewer``); returns the names of the layers, ``NAME/<layer>``.

    ``name`` defaults to the store's file name without ``.zarrvectors``; a layer of the same name
    is replaced. ``options`` open the store (:class:`~zvfs.api.TreeOptions`: ``transform``,
    ``units``...). The store is served by ``server`` (default: a local server shared by every call,
    started on demand), or, with ``base_url``, is already served there (e.g. by ``zvfs serve``).
    A viewer without a coordinate space takes the store's; ``fit`` moves the view to show the
    store; a viewer without layers also takes ``zvfs link``'s layout.
    """
    label = name or link.source_name(os.fspath(source))
    if base_url is None:
        served = (server or shared_server()).add(source, name=label, **options)
        tree, url = served.tree, served.url
    else:
        tree, url = open_tree(source, **options), base_url if base_url.endswith("/") else base_url + "/"
    dimensions = viewer.state.dimensions.to_json() or None
    return show(viewer, link.build_state([link.Source(label, tree, url)], dimensions=dimensions), fit)


def show(viewer: Any, state: dict, fit: bool) -> list[str]:
    """Put the layers of a ``zvfs link`` state into ``viewer`` (replacing layers of the same names)
    and, with ``fit``, its view; returns the layers' names. A layer without a type (one that cannot
    be used; :mod:`zvfs.link` has warned about it) is left out: the Python state refuses it."""
    names = []
    with viewer.txn() as s:
        first = not len(s.layers)
        for layer in state["layers"]:
            if "type" not in layer:
                continue
            spec = {key: value for key, value in layer.items() if key != "name"}
            s.layers[layer["name"]] = neuroglancer.ManagedLayer(layer["name"], spec)
            names.append(layer["name"])
        if not s.dimensions.names:
            s.dimensions = neuroglancer.CoordinateSpace(json=state["dimensions"])
        settings = {**(FIT if fit else {}), **(FIRST_VIEW if first else {})}
        for key, attribute in settings.items():
            if key in state:
                setattr(s, attribute, state[key])
    return names


class Viewer(neuroglancer.Viewer):
    """A ``neuroglancer.Viewer`` with :func:`add` as a method:
    ``viewer.add("scan.zarrvectors", transform=...)``."""

    add = add
