"""zvfs: Zarr Vector Format stores as read-only Neuroglancer precomputed trees (mount, serve, export)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from functools import partial
from typing import TYPE_CHECKING

from . import memory
from .errors import StoreError, UsageError
from .tree import DEFAULT_CACHE_BYTES, ReadFailed, Tree

if TYPE_CHECKING:
    from .api import TreeOptions

log = logging.getLogger("zvfs")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*$")


def parse_size(text: str) -> int:
    """'512M', '2GiB', '1000000' -> bytes."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 256M or 2G)")
    return int(float(m.group(1)) * 1024 ** " KMGT".index((m.group(2) or " ").upper()))


def parse_fuse_options(text: str) -> dict[str, str | bool]:
    """'allow_other,uid=1000' -> {'allow_other': True, 'uid': '1000'}."""
    opts: dict[str, str | bool] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        opts[key] = value if sep else True
    return opts


def _cache_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache-size",
        type=parse_size,
        default=DEFAULT_CACHE_BYTES,
        metavar="SIZE",
        help="one memory budget for every cache: encoded files, decoded chunks, tables, index arrays (default 512M)",
    )


def _space_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--transform",
        metavar="AFFINE",
        default=None,
        help="affine from store coordinates to physical ones: 4x4 or 3x4 as JSON, or a "
        ".json/.npy/text file (e.g. voxel sizes '[[4,0,0,0],[0,4,0,0],[0,0,25,0]]')",
    )
    p.add_argument(
        "--units",
        default=None,
        metavar="UNITS",
        help="unit of the transformed axes, one for all or one per axis (e.g. micrometer or um,um,nm)",
    )


def _coordinate_args(p: argparse.ArgumentParser) -> None:
    _space_args(p)
    p.add_argument(
        "--ignore-store-space",
        action="store_true",
        help="ignore the store's own coordinate metadata (crs, converter headers): --transform then maps the "
        "stored coordinates themselves",
    )


def _index_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--index-dir",
        metavar="DIR",
        default=None,
        help="where store indexes are kept (default $ZVFS_INDEX_DIR, else ~/.cache/zvfs/index); the store is "
        "never written",
    )


def _image_args(p: argparse.ArgumentParser, served: str) -> None:
    p.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="SOURCE",
        help="a reference image beneath the vector layers (repeatable): a NIfTI file or OME-Zarr/N5/precomputed "
        f"directory ({served}), or a URL: nifti://, zarr://, precomputed://, n5://",
    )


def _tree_args(p: argparse.ArgumentParser) -> None:
    _coordinate_args(p)
    _index_args(p)


def _sharding_args(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--sharding",
        choices=("auto", "on", "off"),
        default=default,
        help=f"write layers as sharded precomputed (few large files): auto shards a layer of more than 4096 "
        f"files (default {default})",
    )
    p.add_argument(
        "--shard-encoding",
        choices=("raw", "gzip"),
        default="raw",
        help="encoding of sharded chunks and indexes (default raw; gzip needs every chunk of a shard encoded to "
        "know its size)",
    )


def _options(args: argparse.Namespace) -> TreeOptions:
    """The tree options of a command line: space, where the index lives and which layers are
    sharded (none for the commands without ``--sharding``)."""
    return {
        "transform": args.transform,
        "units": args.units,
        "ignore_store_space": args.ignore_store_space,
        "index_dir": args.index_dir,
        "sharding": args.sharding if "sharding" in args else "off",
        "shard_encoding": args.shard_encoding if "shard_encoding" in args else "raw",
    }


def _mount(args: argparse.Namespace) -> int:
    from . import api
    from .frontends import fuse

    opener = partial(api.open_tree, args.store, cache_bytes=args.cache_size, directories=False, **_options(args))
    if args.foreground:  # the daemon
        memory.tune()
        return fuse.mount_foreground(opener, args.mountpoint, parse_fuse_options(args.options))
    mounted = fuse.mount(opener, args.mountpoint, daemon_argv=args.argv, log_file=args.log_file)
    print(f"zvfs: {mounted}", file=sys.stderr)
    return 0


def _umount(args: argparse.Namespace) -> int:
    from .frontends import fuse

    return fuse.umount(args.mountpoint)


def _serve(args: argparse.Namespace) -> int:
    from . import api
    from .frontends import http
    from .images import parse_images, with_images

    memory.tune()
    tree = with_images(
        api.open_tree(args.source, cache_bytes=args.cache_size, **_options(args)), parse_images(args.image)
    )
    return http.serve(tree, port=args.port, bind=args.bind)


def _export(args: argparse.Namespace) -> int:
    from . import api

    if not args.verbose:  # a failed file ends the export with its own one-line error
        logging.getLogger("zvfs").setLevel(logging.CRITICAL)
    exported = api.export(
        args.store,
        args.outdir,
        progress=not args.no_progress,
        resume=args.resume,
        dask=args.dask,
        cache_bytes=args.cache_size,
        **_options(args),
    )
    print(exported)
    return 0


def _index(args: argparse.Namespace) -> int:
    from .cache import Budget
    from .forest import find_stores
    from .index import IndexOptions, IndexState, ensure_index
    from .store import is_url, is_zvf_store

    options = IndexOptions(
        root=args.index_dir, scheduler=args.dask, workers=args.workers, progress=not args.no_progress
    )
    stores = [args.store]
    if not is_url(args.store) and os.path.isdir(args.store) and not is_zvf_store(args.store):
        stores = [os.path.join(args.store, s) for s in find_stores(args.store)]
        if not stores:
            raise UsageError(f"{os.path.abspath(args.store)}: no ZVF store in this directory")
    for store in stores:
        state, path = ensure_index(store, Budget(args.cache_size), options)
        print(f"{store}: index {'already built' if state is IndexState.FOUND else 'built'} at {path}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import json

    from . import api
    from .describe import as_text

    d = api.info(args.store, transform=args.transform, units=args.units, ignore_store_space=args.ignore_store_space)
    print(json.dumps(d, indent=2) if args.json else as_text(d))
    return 0


def _sample(args: argparse.Namespace) -> int:
    from . import samples

    print(samples.build(args.path, kind=args.kind, force=args.force))
    return 0


def _link(args: argparse.Namespace) -> int:
    import json

    from . import api, link
    from .images import image_layer, parse_images

    base = args.base_url if args.base_url.endswith("/") else args.base_url + "/"
    source = link.Source(link.source_name(args.source), api.open_tree(args.source, **_options(args)), base)
    state = link.build_state([source], [image_layer(image, base) for image in parse_images(args.image)])
    print(json.dumps(state, indent=2))
    print(link.state_url(state, args.viewer or link.DEFAULT_VIEWER))
    return 0


def _view(args: argparse.Namespace) -> int:
    from . import api, link
    from .frontends import view
    from .images import IMAGES_DIR, image_tree, parse_images
    from .tree import MultiTree

    view.client_dir()  # fail before opening stores when the client is not installed
    memory.tune()
    images = parse_images(args.image)
    trees: dict[str, Tree] = {}
    for name, path in link.unique_names(args.sources, taken=[IMAGES_DIR]).items():
        try:
            trees[name] = api.open_tree(path, cache_bytes=args.cache_size, **_options(args))
        except StoreError as exc:  # the other stores are still worth showing: a warning, not an error
            if len(args.sources) == 1:
                raise
            log.warning("%s; not shown", exc)
    if not trees:
        raise UsageError("none of the stores could be opened")
    served = image_tree(images)
    return view.serve(
        MultiTree(trees if served is None else {**trees, IMAGES_DIR: served}),
        lambda base: link.union_state(trees, base, images),
        port=args.port,
        bind=args.bind,
        browse=not args.no_browser,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zvfs", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("mount", help="mount a ZVF store read-only as a Neuroglancer precomputed tree")
    p.set_defaults(func=_mount)
    p.add_argument("store", help="ZVF store (directory, usually *.zarrvectors)")
    p.add_argument("mountpoint", help="empty directory")
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    p.add_argument(
        "-o", dest="options", default="", metavar="OPTS", help="FUSE options, comma separated (e.g. allow_other)"
    )
    p.add_argument(
        "--log-file", default=None, help="daemon log in background mode (default /tmp/zvfs-<mountpoint>.log)"
    )
    _cache_arg(p)
    _tree_args(p)
    _sharding_args(p, "off")

    p = sub.add_parser("umount", help="unmount, also a stale mount left by a killed daemon")
    p.set_defaults(func=_umount)
    p.add_argument("mountpoint")

    p = sub.add_parser("serve", help="serve a store (or any directory) over HTTP with CORS and Range")
    p.set_defaults(func=_serve)
    p.add_argument("source", metavar="STORE_OR_DIR")
    p.add_argument("--port", type=int, default=9123, help="TCP port (default 9123; 0 picks a free one)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    _image_args(p, "served under _images/NAME")
    _cache_arg(p)
    _tree_args(p)
    _sharding_args(p, "off")

    p = sub.add_parser("export", help="write the tree as real files")
    p.set_defaults(func=_export)
    p.add_argument("store", help="ZVF store")
    p.add_argument("outdir", help="new or empty directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", action="store_true", help="complete an earlier, interrupted export")
    p.add_argument(
        "--dask",
        metavar="SCHEDULER",
        default=None,
        help="write the files as tasks on this Dask scheduler (e.g. tcp://10.0.0.5:8786)",
    )
    _cache_arg(p)
    _tree_args(p)
    _sharding_args(p, "auto")

    p = sub.add_parser("info", help="what a store holds and where zvfs places it, before mounting (metadata only)")
    p.set_defaults(func=_info)
    p.add_argument("store", help="ZVF store (path or URL)")
    p.add_argument("--json", action="store_true", help="as JSON, for scripts")
    _coordinate_args(p)

    p = sub.add_parser("index", help="build a store's index ahead of time (or every store's under a directory)")
    p.set_defaults(func=_index)
    p.add_argument("store", help="ZVF store (path or URL), or a directory holding stores")
    p.add_argument("--dask", metavar="SCHEDULER", default=None, help="build as tasks on this Dask scheduler")
    p.add_argument("--workers", type=int, default=None, help="local processes (default: every core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _cache_arg(p)
    _index_args(p)

    p = sub.add_parser("sample", help="build a small sample ZVF store with zarr-vectors")
    p.set_defaults(func=_sample)
    p.add_argument("path")
    p.add_argument("--kind", default="point_cloud", help="geometry type (default point_cloud)")
    p.add_argument("--force", action="store_true", help="replace an existing store")

    p = sub.add_parser("link", help="print a Neuroglancer state (JSON) and URL showing every layer of a store")
    p.set_defaults(func=_link)
    p.add_argument("source", metavar="STORE_OR_DIR")
    p.add_argument(
        "--base-url",
        default="http://127.0.0.1:9123/",
        metavar="URL",
        help="where the tree is served (default http://127.0.0.1:9123/, as zvfs serve)",
    )
    p.add_argument(
        "--viewer",
        default=None,
        metavar="URL",
        help="Neuroglancer client URL (default https://neuroglancer-demo.appspot.com/)",
    )
    _image_args(p, "expected under BASE_URL/_images/NAME, as zvfs serve --image serves it")
    _tree_args(p)

    p = sub.add_parser("view", help="serve stores and the Neuroglancer client together, and open the view")
    p.set_defaults(func=_view)
    p.add_argument("sources", nargs="+", metavar="STORE_OR_DIR")
    p.add_argument("--port", type=int, default=9123, help="TCP port (default 9123; 0 picks a free one)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--no-browser", action="store_true", help="only print the URL")
    _image_args(p, "served with the stores")
    _cache_arg(p)
    _tree_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # a background mount re-runs its own command line as its daemon
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s zvfs %(levelname)s %(message)s"
    )
    if not args.verbose:  # zarr's event loop reports reads abandoned after an error at exit: noise
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        return int(args.func(args))
    except (StoreError, UsageError, ReadFailed) as exc:
        print(f"zvfs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `zvfs link STORE | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0


if __name__ == "__main__":
    sys.exit(main())
