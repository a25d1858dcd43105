"""Export front end: write a tree as real files, for static hosting."""
from __future__ import annotations

import os
import posixpath
import sys
from typing import Iterator

from tqdm import tqdm

from ..errors import UsageError
from ..tree import Tree


def walk(tree: Tree, path: str = "") -> Iterator[tuple[str, bool]]:
    """(path, is_dir) of everything under ``path``, depth first, in listing order."""
    for name in tree.listdir(path):
        child = posixpath.join(path, name)
        is_dir = tree.stat(child).is_dir
        yield child, is_dir
        if is_dir:
            yield from walk(tree, child)


def export(tree: Tree, outdir: str, *, progress: bool = True) -> int:
    """Write every file of ``tree`` under ``outdir`` (created; must be empty if it exists)."""
    if os.path.exists(outdir) and (not os.path.isdir(outdir) or os.listdir(outdir)):
        raise UsageError(f"{outdir}: output directory exists and is not empty")
    entries = list(walk(tree))
    for path, _ in filter(lambda e: e[1], entries):
        os.makedirs(os.path.join(outdir, *path.split("/")), exist_ok=True)
    files = [path for path, is_dir in entries if not is_dir]
    with tqdm(total=len(files), unit="file", disable=not progress, file=sys.stderr) as bar:
        for path in files:
            write_file(tree, path, outdir)
            bar.update()
    print(f"exported {len(files)} files from {tree.label} to {outdir}")
    return 0


def write_file(tree: Tree, path: str, outdir: str) -> None:
    """One file, written under a temporary name and renamed, so a partial file never shows."""
    target = os.path.join(outdir, *path.split("/"))
    tmp = target + ".part"
    with open(tmp, "wb") as f:
        f.write(tree.read(path))
    os.replace(tmp, target)
