"""zvfs from Python: what the command line does, as functions and objects that print nothing and
raise the command line's one-line errors (:class:`~zvfs.errors.StoreError`,
:class:`~zvfs.errors.UsageError`, :class:`~zvfs.tree.ReadFailed`).

Every function that opens a store takes the :class:`TreeOptions` keywords, the command line's
``--transform``, ``--units``, ``--ignore-store-space``, ``--index-dir``, ``--sharding`` and
``--shard-encoding``; the command line itself
goes through these functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import quote

import numpy as np
from numpy.typing import ArrayLike

from . import link, source
from .cache import Budget
from .errors import UsageError
from .frontends import http
from .images import IMAGES_DIR, Image, parse_image
from .index import IndexOptions
from .mappers.sharding import Sharding
from .tree import DEFAULT_CACHE_BYTES, DirectoryTree, MultiTree, Tree, unique_names

if TYPE_CHECKING:
    import distributed
    from typing_extensions import Unpack

    from .frontends.export import Exported

PathLike = str | os.PathLike[str]
UNMOUNT_TIMEOUT = 60.0


class TreeOptions(TypedDict, total=False):
    """How a store is opened, as on the command line (all optional)."""

    transform: str | ArrayLike | None
    """Affine from the store's coordinates (after its own coordinate metadata) to physical ones:
    4x4 or 3x4, as an array, nested lists, JSON text or a .json/.npy/text file."""
    units: str | Sequence[str] | None
    """Units of the transformed axes: one for all (``"micrometer"``) or one per axis."""
    ignore_store_space: bool
    """Ignore the store's own coordinate metadata: ``transform`` maps the stored coordinates."""
    index_dir: PathLike | None
    """Where store indexes are kept (default ``$ZVFS_INDEX_DIR``, else ``~/.cache/zvfs/index``)."""
    sharding: str
    """Which layers are written sharded: ``"off"`` (default; :func:`export`: ``"auto"``), ``"on"``
    or ``"auto"`` (a layer of more than 4,096 files); see docs/mapping.md#sharding."""
    shard_encoding: str
    """Encoding of shards' chunks and indexes: ``"raw"`` (default) or ``"gzip"``."""


def _not_in_worker_start() -> None:
    """Refuse to open a store while multiprocessing starts this process as a worker: a script
    without ``if __name__ == "__main__":`` runs again in each worker of an index build, and opening
    the store there would wait for that very build."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise UsageError(
            "zvfs was called while a worker process was starting (the script runs again in each worker that "
            "builds an index): put the script's code under if __name__ == '__main__':"
        )


def open_tree(
    store: PathLike,
    *,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    directories: bool = True,
    progress: bool | None = None,
    **options: Unpack[TreeOptions],
) -> Tree:
    """The read-only tree of Neuroglancer precomputed files that zvfs mounts, serves and exports,
    read with ``tree.listdir(path)``, ``tree.stat(path)`` and ``tree.read(path, offset, size)``.

    ``store`` is a ZVF store (a path or an fsspec URL), or a directory holding stores at any depth
    (each under its relative path), or, when ``directories``, any other directory (a mount, an
    export) as it is. Its caches hold up to ``cache_bytes``. The store's index is built first if it
    has none, with a progress bar on stderr if ``progress`` (None: if stderr is a terminal).
    """
    return _open(store, Budget(cache_bytes), directories, options, progress)


def _open(
    store: PathLike, budget: Budget, directories: bool, options: TreeOptions, progress: bool | None = None
) -> Tree:
    """:func:`open_tree` with caches drawing from ``budget``."""
    _not_in_worker_start()
    shown = sys.stderr.isatty() if progress is None else progress
    return source.open_tree(
        os.fspath(store),
        directories=directories,
        budget=budget,
        transform=options.get("transform"),
        units=options.get("units"),
        ignore_store_space=options.get("ignore_store_space", False),
        index=IndexOptions(root=_path(options.get("index_dir")), progress=shown),
        sharding=_sharding(options),
    )


def _sharding(options: TreeOptions) -> Sharding:
    """The sharding ``options`` ask for (:class:`UsageError` naming a wrong value)."""
    try:
        return Sharding(options.get("sharding", "off"), options.get("shard_encoding", "raw"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(value)


def info(
    store: PathLike,
    *,
    transform: str | ArrayLike | None = None,
    units: str | Sequence[str] | None = None,
    ignore_store_space: bool = False,
) -> dict[str, Any]:
    """What ``zvfs info --json`` prints, from the store's metadata alone: geometry, levels,
    attributes, the coordinate chain, physical bounds and the layers zvfs presents."""
    from .describe import describe
    from .store import open_store

    opened = open_store(os.fspath(store))
    return describe(opened, source.open_space(opened, transform, units, ignore_store_space))


def export(
    store: PathLike,
    outdir: PathLike,
    *,
    progress: bool = True,
    resume: bool = False,
    dask: str | distributed.Client | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    **options: Unpack[TreeOptions],
) -> Exported:
    """Write the store's tree as real files under ``outdir`` (a new or empty directory, or an
    fsspec URL such as ``s3://bucket/prefix``), byte-identical to a mount with the same options
    (``sharding`` defaults to ``"auto"`` here: large layers sharded). ``resume`` completes an
    interrupted export; ``dask`` (a scheduler address or a connected ``distributed.Client``) writes
    the files as tasks on that cluster; ``progress`` shows progress bars on stderr (an index build's
    too). Returns how many files there are and how many were written."""
    from .frontends import export as files

    options = {"sharding": "auto", **options}
    opener = partial(open_tree, store, cache_bytes=cache_bytes, directories=False, progress=progress, **options)
    if dask is not None:
        return files.export_dask(opener, os.fspath(outdir), dask, progress=progress, resume=resume)
    return files.export(opener(), os.fspath(outdir), progress=progress, resume=resume)


@contextlib.contextmanager
def mount(
    store: PathLike,
    mountpoint: PathLike,
    *,
    fuse_options: dict[str, str | bool] | None = None,
    log_file: PathLike | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    **options: Unpack[TreeOptions],
) -> Iterator[Path]:
    """A real read-only FUSE mount of the store at ``mountpoint`` (an empty directory) for the
    ``with`` block, unmounted at its end. The store is opened here first (errors are raised now),
    then mounted by a ``zvfs mount --foreground`` daemon of its own, as ``zvfs mount`` does;
    ``fuse_options`` as ``-o`` (e.g. ``{"allow_other": True}``), ``log_file`` the daemon's log."""
    from .frontends import fuse

    argv = _mount_command(store, mountpoint, cache_bytes, fuse_options, options)
    opener = partial(open_tree, store, cache_bytes=cache_bytes, directories=False, **options)
    live = fuse.mount(opener, os.fspath(mountpoint), daemon_argv=argv, log_file=_str(log_file))
    try:
        yield Path(live.mountpoint)
    finally:
        fuse.umount(live.mountpoint)
        try:
            live.daemon.wait(UNMOUNT_TIMEOUT)
        except subprocess.TimeoutExpired:
            live.daemon.kill()
            live.daemon.wait()


def _str(value: PathLike | None) -> str | None:
    return None if value is None else os.fspath(value)


def _mount_command(
    store: PathLike,
    mountpoint: PathLike,
    cache_bytes: int,
    fuse_options: dict[str, str | bool] | None,
    options: TreeOptions,
) -> list[str]:
    """The ``zvfs mount`` command line (without ``zvfs``) that mounts what these arguments say."""
    from .frontends import fuse

    argv = ["mount", os.fspath(store), os.fspath(mountpoint), "--cache-size", str(cache_bytes)]
    if fuse_options:
        argv += ["-o", fuse.format_options(fuse_options)]
    transform, units, index_dir = options.get("transform"), options.get("units"), options.get("index_dir")
    if transform is not None:
        matrix = transform if isinstance(transform, str) else json.dumps(np.asarray(transform, np.float64).tolist())
        argv += ["--transform", matrix]
    if units is not None:
        argv += ["--units", units if isinstance(units, str) else ",".join(units)]
    if options.get("ignore_store_space"):
        argv.append("--ignore-store-space")
    if index_dir is not None:
        argv += ["--index-dir", os.fspath(index_dir)]
    argv += ["--sharding", options.get("sharding", "off"), "--shard-encoding", options.get("shard_encoding", "raw")]
    return argv


@dataclasses.dataclass(frozen=True)
class Served:
    """A tree a :class:`Server` serves: its directory ``name`` on the server, its ``url`` (ending
    in '/') and the ``tree`` itself."""

    name: str
    url: str
    tree: Tree


class Server:
    """Stores served over HTTP (CORS, ``HEAD``, byte ranges, as ``zvfs serve``) by a background
    thread, each under ``url + name + "/"``, local reference images under ``url + "_images/"``;
    stores and images can be added while it runs, and all the stores share one memory budget of
    ``cache_bytes``. :meth:`close` (or the end of a ``with`` block) stops it and frees its port and
    threads."""

    def __init__(self, *, port: int = 0, bind: str = "127.0.0.1", cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        from .frontends import view

        self._budget = Budget(cache_bytes)
        self._trees = MultiTree({})
        self._images = MultiTree({})  # served as IMAGES_DIR once it holds an image
        self._lock = threading.Lock()
        sockets = http.listen(port, bind)
        self.url = http.base_url(view.LOOPBACK.get(bind, bind), sockets[0].getsockname()[1])
        self._running = http.Background(http.make_app(self._trees), sockets)

    def add(self, store: PathLike, *, name: str | None = None, **options: Unpack[TreeOptions]) -> Served:
        """Open a store (or a directory of stores, or any directory) and serve it under ``name``
        (default: the store's file name without ``.zarrvectors``; made unique with ``-2``...)."""
        tree = _open(store, self._budget, True, options)
        return self.add_tree(tree, name or link.source_name(os.fspath(store)))

    def add_tree(self, tree: Tree, name: str) -> Served:
        """Serve an opened tree under ``name`` (made unique, and without '/')."""
        with self._lock:
            taken = [*self._trees.trees, IMAGES_DIR]
            (unique,) = unique_names([name.replace("/", "_").strip(".") or "tree"], taken=taken)
            self._trees.add(unique, tree)
        return Served(unique, f"{self.url}{quote(unique)}/", tree)

    def add_image(self, image: PathLike) -> Image:
        """A reference image (:func:`zvfs.images.parse_image`: a NIfTI file, an OME-Zarr, N5 or
        precomputed directory, or a URL), served under ``_images/NAME`` (its file name, made unique)
        when it is local, as ``zvfs serve --image`` serves it; its layer source is
        ``image.source_url(server.url)``."""
        found = parse_image(os.fspath(image))
        if found.path is None:
            return found
        with self._lock:
            (name,) = unique_names([found.name], taken=self._images.trees)
            self._images.add(name, DirectoryTree(found.path))
            if IMAGES_DIR not in self._trees.trees:
                self._trees.add(IMAGES_DIR, self._images)
        return dataclasses.replace(found, name=name)

    @property
    def stores(self) -> dict[str, str]:
        """name -> URL of every store (tree) served."""
        trees = list(self._trees.trees.items())
        return {name: f"{self.url}{quote(name)}/" for name, tree in trees if tree is not self._images}

    def close(self) -> None:
        """Stop serving: the port, the connections and the threads are gone when this returns."""
        self._running.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<zvfs.Server {self.url} serving {', '.join(self.stores) or 'nothing yet'}>"


def serve(
    *stores: PathLike,
    images: Sequence[PathLike] = (),
    port: int = 0,
    bind: str = "127.0.0.1",
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    **options: Unpack[TreeOptions],
) -> Server:
    """A running :class:`Server` of ``stores`` (each under its name: see :meth:`Server.add`) and
    local reference ``images`` (see :meth:`Server.add_image`), on ``port`` (0: a free one)."""
    server = Server(port=port, bind=bind, cache_bytes=cache_bytes)
    try:
        for store in stores:
            server.add(store, **options)
        for image in images:
            server.add_image(image)
    except BaseException:
        server.close()
        raise
    return server
