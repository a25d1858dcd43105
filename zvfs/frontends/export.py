"""Export front end: write a tree as real files, for static hosting.

The output is a local directory or any fsspec URL (``s3://bucket/prefix``). Files are written
under a temporary name and renamed where the filesystem can, so a partial file never shows; with
``resume`` a rerun skips files already written completely (right size). With a Dask scheduler the
files are written by tasks on the cluster, each re-opening the tree from a picklable ``opener``
and writing a disjoint batch.
"""

from __future__ import annotations

import contextlib
import pickle
import posixpath
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import fsspec
from fsspec.implementations.local import LocalFileSystem
from tqdm import tqdm

from ..errors import UsageError
from ..tree import Tree

if TYPE_CHECKING:
    import distributed

BATCHES_PER_WORKER = 8


def walk(tree: Tree, path: str = "") -> Iterator[tuple[str, bool]]:
    """(path, is_dir) of everything under ``path``, depth first, in listing order."""
    for name in tree.listdir(path):
        child = posixpath.join(path, name)
        is_dir = tree.stat(child).is_dir
        yield child, is_dir
        if is_dir:
            yield from walk(tree, child)


def _output(outdir: str, resume: bool) -> tuple[fsspec.AbstractFileSystem, str]:
    """The output filesystem and root; refuses a non-empty output unless resuming."""
    fs, root = fsspec.core.url_to_fs(outdir)
    if fs.exists(root):
        if not fs.isdir(root):
            raise UsageError(f"{outdir}: output exists and is not a directory")
        if fs.ls(root) and not resume:
            raise UsageError(f"{outdir}: output directory exists and is not empty (use --resume to complete it)")
    return fs, root.rstrip("/")


def write_files(
    tree: Tree,
    paths: Sequence[str],
    fs: fsspec.AbstractFileSystem,
    root: str,
    resume: bool,
    tick: Callable[[], None] = lambda: None,
) -> int:
    """Write ``paths`` of ``tree`` under ``root``; returns how many were written (not skipped)."""
    atomic = isinstance(fs, LocalFileSystem)
    written = 0
    for path in paths:
        target = f"{root}/{path}"
        if resume and fs.exists(target) and fs.size(target) == tree.stat(path).size:
            tick()
            continue
        fs.makedirs(posixpath.dirname(target), exist_ok=True)
        tmp = target + ".part" if atomic else target
        with fs.open(tmp, "wb") as f:
            f.write(tree.read(path))
        if atomic:
            fs.mv(tmp, target)
        written += 1
        tick()
    return written


@dataclass(frozen=True)
class Exported:
    """What an export did: ``files`` in the tree, ``written`` of them (the rest were complete)."""

    label: str
    outdir: str
    files: int
    written: int
    dask_workers: int | None = None

    def __str__(self) -> str:
        if self.dask_workers is not None:
            return (
                f"exported {self.files} files ({self.written} written) from {self.label} to {self.outdir} "
                f"with {self.dask_workers} Dask workers"
            )
        return (
            f"exported {self.files} files ({self.written} written, {self.files - self.written} already complete) "
            f"from {self.label} to {self.outdir}"
        )


def export(tree: Tree, outdir: str, *, progress: bool = True, resume: bool = False) -> Exported:
    """Write every file of ``tree`` under ``outdir`` (created; must be empty unless ``resume``)."""
    fs, root = _output(outdir, resume)
    entries = list(walk(tree))
    for path, _ in filter(lambda e: e[1], entries):
        fs.makedirs(f"{root}/{path}", exist_ok=True)
    files = [path for path, is_dir in entries if not is_dir]
    with tqdm(total=len(files), unit="file", disable=not progress, file=sys.stderr) as bar:
        written = write_files(tree, files, fs, root, resume, bar.update)
    return Exported(tree.label, outdir, len(files), written)


_WORKER_TREES: dict[bytes, Tree] = {}


def _worker_batch(opener: Callable[[], Tree], outdir: str, paths: list[str], resume: bool) -> int:
    """A Dask task: write one batch, opening the tree once per worker process."""
    key = pickle.dumps(opener)
    tree = _WORKER_TREES.get(key)
    if tree is None:
        tree = _WORKER_TREES[key] = opener()
    fs, root = fsspec.core.url_to_fs(outdir)
    return write_files(tree, paths, fs, root.rstrip("/"), resume)


def export_dask(
    opener: Callable[[], Tree],
    outdir: str,
    scheduler: str | distributed.Client,
    *,
    progress: bool = True,
    resume: bool = False,
) -> Exported:
    """:func:`export` as tasks on a Dask cluster: a scheduler address (``tcp://host:port``), or a
    connected ``distributed.Client`` (left open)."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError("--dask needs dask.distributed: pip install 'zvfs[dask]'") from None
    tree = opener()
    _output(outdir, resume)
    files = [path for path, is_dir in walk(tree) if not is_dir]
    with contextlib.nullcontext(scheduler) if isinstance(scheduler, Client) else Client(scheduler) as client:
        workers = max(1, len(client.scheduler_info()["workers"]))
        size = max(1, -(-len(files) // (workers * BATCHES_PER_WORKER)))
        batches = [files[i : i + size] for i in range(0, len(files), size)]
        futures = {
            client.submit(_worker_batch, opener, outdir, batch, resume, pure=False): len(batch) for batch in batches
        }
        written = 0
        with tqdm(total=len(files), unit="file", disable=not progress, file=sys.stderr) as bar:
            for future in as_completed(futures):
                written += future.result()
                bar.update(futures[future])
    return Exported(tree.label, outdir, len(files), written, workers)
