"""ZVF stores and reference images in a ``neuroglancer.Viewer`` (a notebook's, a script's) in one
call: :func:`add`.

The store is served by a local :class:`~zvfs.api.Server` (one per process, started on first use,
or one given), or is taken to be served at a given base URL; its layers are the layers ``zvfs
link`` and ``zvfs view`` show, with the same defaults and shaders, and the view is fitted to them
the same way. Images are :mod:`zvfs.images`' layers, served as ``zvfs view --image`` serves them.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import TYPE_CHECKING, Any

from . import link
from .api import PathLike, Server, open_tree
from .errors import UsageError
from .images import NIFTI_SUFFIXES, SCHEMES, Image, image_layer, parse_image
from .store import is_zvf_store

try:
    import neuroglancer
except ImportError:
    raise ImportError("zvfs.add needs the neuroglancer package: pip install 'zvfs[view]'") from None

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .api import TreeOptions

# the view fit of zvfs link's states -> neuroglancer.ViewerState attributes
FIT = {
    "position": "position",
    "crossSectionScale": "cross_section_scale",
    "projectionScale": "projection_scale",
    "projectionOrientation": "projection_orientation",
}

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
    """Add every layer of a store (or of a directory of stores, a mount, an export), or a
    reference image (:func:`image_of`), to ``viewer`` (a ``neuroglancer.Viewer``); returns the
    names of the layers added: ``NAME/<layer>`` for a store, ``NAME`` for an image.

    ``name`` defaults to the file name without ``.zarrvectors`` (an image's without its format's
    suffix); a layer of the same name is replaced. ``options`` open a store
    (:class:`~zvfs.api.TreeOptions`: ``transform``, ``units``...); an image is placed by its own
    header. A store or local image is served by ``server`` (default: a local server shared by every
    call, started on demand), or, with ``base_url``, is served there already (by ``zvfs serve
    [--image]``). A viewer without a coordinate space takes the store's; ``fit`` moves the view to
    show the store; an image goes beneath the other layers, with its slices shown in 3-D; a viewer
    without layers also takes ``zvfs link``'s layout.
    """
    path = os.fspath(source)
    image = image_of(path)
    sources, images = [], []
    if image is not None:
        if options:
            raise UsageError(f"{path}: an image is placed by its own header; {', '.join(options)} apply to stores")
        if image.path is not None and base_url is None:
            server = server or shared_server()
            image, base_url = server.add_image(path), server.url
        layer = image_layer(image, directory_url(base_url or ""))
        images.append({**layer, "name": name or layer["name"]})
    else:
        label = name or link.source_name(path)
        if base_url is None:
            served = (server or shared_server()).add(path, name=label, **options)
            sources.append(link.Source(label, served.tree, served.url))
        else:
            sources.append(link.Source(label, open_tree(path, **options), directory_url(base_url)))
    dimensions = viewer.state.dimensions.to_json() or None
    return show(viewer, link.build_state(sources, images, dimensions=dimensions), fit)


def image_of(source: str) -> Image | None:
    """The reference image ``source`` names (:func:`zvfs.images.parse_image`), or None for a store:
    a NIfTI file, an image URL of a Neuroglancer data source (``nifti://``, ``zarr://``...; a
    ``.zarr`` over plain ``https://`` is taken for a store), or a local OME-Zarr, N5 or precomputed
    directory that is not a ZVF store."""
    scheme, sep, _ = source.partition("://")
    if (sep and scheme in SCHEMES) or source.lower().endswith(NIFTI_SUFFIXES):
        return parse_image(source)
    if sep or not os.path.isdir(source) or is_zvf_store(source):
        return None
    try:
        return parse_image(source)
    except UsageError:  # a directory of stores, a mount, an export
        return None


def directory_url(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def show(viewer: Any, state: dict, fit: bool) -> list[str]:
    """Put the layers of a ``zvfs link`` state into ``viewer`` (replacing layers of the same names;
    image layers beneath the others, as in ``zvfs view``) and, with ``fit``, its view (in the
    state's coordinate space where the viewer has none); returns the layers' names. A layer without
    a type (one that cannot be used; :mod:`zvfs.link` has warned about it) is left out: the Python
    state refuses it."""
    names = []
    with viewer.txn() as s:
        first = not len(s.layers)
        for layer in state["layers"]:
            if "type" not in layer:
                continue
            spec = {key: value for key, value in layer.items() if key != "name"}
            s.layers[layer["name"]] = neuroglancer.ManagedLayer(layer["name"], spec)
            names.append(layer["name"])
        ordered = sorted(s.layers, key=lambda managed: managed.type != "image")  # stable
        s.layers.clear()
        s.layers.extend(ordered)
        if fit and "position" in state:
            if not s.dimensions.names:
                s.dimensions = neuroglancer.CoordinateSpace(json=state["dimensions"])
            for key, attribute in FIT.items():
                if key in state:  # a store of one point has a position only
                    setattr(s, attribute, state[key])
        if first:
            s.layout = state["layout"]
        if first or state["showSlices"]:
            s.show_slices = state["showSlices"]
    return names


class Viewer(neuroglancer.Viewer):
    """A ``neuroglancer.Viewer`` with :func:`add` as a method:
    ``viewer.add("scan.zarrvectors", transform=...)``."""

    add = add
