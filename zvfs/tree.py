"""The virtual tree: path -> directory listing, exact file size, bytes.

Pure core shared by every front end; it knows nothing of FUSE or HTTP. Mappers build it from
:class:`Dir` and :class:`File` nodes; front ends use only :class:`Tree`'s three questions
(``stat``, ``listdir``, ``read``) and its two errors (:class:`NotFound`, :class:`ReadFailed`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from .cache import Budget, Memo

log = logging.getLogger("zvfs")

DEFAULT_CACHE_BYTES = 512 * 2**20


class NotFound(LookupError):
    """No file or directory at that path (ENOENT / 404)."""


class ReadFailed(IOError):
    """A file exists but could not be produced (EIO / 500); the message names store and path."""


@dataclass(frozen=True)
class Stat:
    is_dir: bool
    size: int
    mtime: float


class File:
    """A file whose exact size is known from ``size()`` without producing its bytes.

    ``size`` may be omitted for files whose size is only known once encoded (e.g. Draco); the
    tree then encodes on ``stat`` and keeps the bytes in its cache. A file that is large and read
    in pieces (a shard) gives ``ranged(start, stop)`` instead of ``data``, with ``size``: it
    produces only what a read asks for, and the tree keeps none of its bytes.
    """

    __slots__ = ("data", "ranged", "size")

    def __init__(
        self,
        data: Callable[[], bytes] | None = None,
        size: Callable[[], int] | None = None,
        *,
        ranged: Callable[[int, int], bytes] | None = None,
    ) -> None:
        if (data is None) == (ranged is None) or (ranged is not None and size is None):
            raise ValueError("a file has either data, or ranged reads and a size")
        self.data = data
        self.size = size
        self.ranged = ranged


class Dir:
    """A directory, either of fixed children or of children produced on lookup."""

    __slots__ = ("_child", "_children", "_names")

    def __init__(
        self,
        children: Mapping[str, Node] | None = None,
        *,
        names: Callable[[], Iterable[str]] | None = None,
        child: Callable[[str], Node | None] | None = None,
    ) -> None:
        self._children = dict(children or {})
        self._names = names
        self._child = child

    def names(self) -> Iterator[str]:
        yield from self._children
        if self._names is not None:
            yield from self._names()

    def child(self, name: str) -> Node | None:
        node = self._children.get(name)
        if node is None and self._child is not None:
            node = self._child(name)
        return node


Node = File | Dir


class Tree(Protocol):
    """What every front end needs of a tree (virtual, or a real directory)."""

    label: str

    def stat(self, path: str) -> Stat: ...

    def listdir(self, path: str) -> Iterator[str]: ...

    def read(self, path: str, offset: int = 0, size: int | None = None) -> bytes: ...

    def cached(self, path: str) -> tuple[Stat, bytes] | None:
        """A file's stat and bytes if they are at hand without any work (else None), so that a
        server can answer without handing the request to a worker thread."""


def split_path(path: str) -> list[str]:
    """Path components of a tree-relative path; rejects any that could leave the tree."""
    if "\0" in path:
        raise NotFound(path)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise NotFound(path)
    return parts


class VirtualTree:
    """A tree of nodes built by a mapper, with exact sizes and a byte-bounded cache of file bytes."""

    def __init__(
        self,
        root: Dir,
        label: str,
        mtime: float,
        budget: Budget | None = None,
        fingerprint: Callable[[], object] | None = None,
    ) -> None:
        """``fingerprint`` (cheap, e.g. the store's metadata stat) is checked before every file is
        sized or read: once it changes, files fail rather than mix old sizes with new bytes."""
        self.root = root
        self.label = label
        self.mtime = mtime
        self._fingerprint = fingerprint
        self._opened = fingerprint() if fingerprint else None
        budget = budget or Budget(DEFAULT_CACHE_BYTES)
        self._bytes: Memo[bytes] = budget.memo(len)
        self._sizes: Memo[int] = budget.memo(lambda _: 32)

    def _check_unchanged(self) -> None:
        if self._fingerprint is not None and self._fingerprint() != self._opened:
            msg = f"{self.label}: the store changed after it was opened; mount (or serve) it again"
            log.error("%s", msg)
            raise ReadFailed(msg)

    @property
    def encodes(self) -> int:
        """How many times a file's bytes were produced (cache misses), for benchmarks and tests."""
        return self._bytes.misses

    def _node(self, path: str) -> Node:
        node: Node = self.root
        for name in split_path(path):
            if not isinstance(node, Dir):
                raise NotFound(path)
            parent = node
            child = self._guard(path, lambda: parent.child(name))  # noqa: B023 - called at once
            if child is None:
                raise NotFound(path)
            node = child
        return node

    def _guard(self, path: str, fn: Callable):
        try:
            return fn()
        except (NotFound, ReadFailed):
            raise
        except Exception as exc:  # any failure inside a mapper or encoder is this file's failure only
            msg = f"{self.label}: /{path.lstrip('/')}: {type(exc).__name__}: {exc}"
            log.error("%s", msg, exc_info=log.isEnabledFor(logging.DEBUG))
            raise ReadFailed(msg) from exc

    def _data(self, path: str, node: File) -> bytes:
        self._check_unchanged()
        key = posixpath.normpath("/" + path)
        produce = node.data
        assert produce is not None
        data = self._bytes.get(key, lambda: self._guard(path, produce), expected=self._sizes.peek(key) or 0)
        size = self._sizes.get(key, lambda: len(data))
        if size != len(data):
            raise ReadFailed(f"{self.label}: {key}: size {size} announced but {len(data)} bytes produced")
        return data

    def stat(self, path: str) -> Stat:
        node = self._node(path)
        if isinstance(node, Dir):
            return Stat(True, 0, self.mtime)
        return Stat(False, self._size(path, node), self.mtime)

    def _size(self, path: str, node: File) -> int:
        self._check_unchanged()
        key = posixpath.normpath("/" + path)
        size_of = node.size
        if size_of is None:  # known only once encoded; _data records it
            size = self._sizes.peek(key)
            return len(self._data(path, node)) if size is None else size
        return self._sizes.get(key, lambda: self._guard(path, size_of))

    def listdir(self, path: str) -> Iterator[str]:
        node = self._node(path)
        if not isinstance(node, Dir):
            raise NotADirectoryError(path)
        return iter(self._guard(path, lambda: list(node.names())))

    def read(self, path: str, offset: int = 0, size: int | None = None) -> bytes:
        node = self._node(path)
        if isinstance(node, Dir):
            raise IsADirectoryError(path)
        if node.ranged is None:
            data = self._data(path, node)
            return data[offset : len(data) if size is None else offset + size]
        total = self._size(path, node)  # the node already found: no second walk of the path
        start, stop = min(offset, total), total if size is None else min(offset + size, total)
        ranged = node.ranged
        data = self._guard(path, lambda: ranged(start, stop))
        if len(data) != stop - start:
            msg = f"{self.label}: /{path.lstrip('/')}: {stop - start} bytes asked at {start} but {len(data)} produced"
            raise ReadFailed(msg)
        return data

    def cached(self, path: str) -> tuple[Stat, bytes] | None:
        data = self._bytes.peek("/" + "/".join(split_path(path)))  # the key _data uses
        if data is None:
            return None
        self._check_unchanged()
        return Stat(False, len(data), self.mtime), data


class DirectoryTree:
    """A real directory (or one file, as the root) seen through the same three questions, for
    ``zvfs serve DIR``. A path that does not exist is :class:`NotFound`; any other failure of the
    file system (a stale mount inside the directory, a permission) is :class:`ReadFailed` naming it."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.label = self.root

    def _real(self, path: str) -> str:
        real = os.path.realpath(os.path.join(self.root, *split_path(path)))
        if real != self.root and not real.startswith(self.root + os.sep):
            raise NotFound(path)
        return real

    @contextlib.contextmanager
    def _os_errors(self, path: str, real: str) -> Iterator[None]:
        """The file system's errors as the tree's; only a path that exists but is of the wrong kind
        keeps its own (NotADirectoryError, IsADirectoryError), as :class:`VirtualTree` raises them."""
        try:
            yield
        except FileNotFoundError:
            raise NotFound(path) from None
        except (NotADirectoryError, IsADirectoryError):
            if not os.path.lexists(real):  # a path through a file ('note.txt/x') names nothing
                raise NotFound(path) from None
            raise
        except OSError as exc:
            raise ReadFailed(f"{self.label}: /{path}: {exc}") from exc

    def stat(self, path: str) -> Stat:
        real = self._real(path)
        with self._os_errors(path, real):
            st = os.stat(real)
        return Stat(stat.S_ISDIR(st.st_mode), st.st_size, st.st_mtime)

    def listdir(self, path: str) -> Iterator[str]:
        real = self._real(path)
        with self._os_errors(path, real):
            return iter(sorted(os.listdir(real)))

    def read(self, path: str, offset: int = 0, size: int | None = None) -> bytes:
        real = self._real(path)
        with self._os_errors(path, real), open(real, "rb") as f:
            f.seek(offset)
            return f.read() if size is None else f.read(size)

    def cached(self, path: str) -> None:
        return None


def unique_names(names: Iterable[str], taken: Iterable[str] = ()) -> list[str]:
    """``names`` made unique for trees side by side: a repeated name (or one in ``taken``) gets
    ``-2``, ``-3``..."""
    seen, out = set(taken), []
    for base in names:
        name, k = base, 1
        while name in seen:
            k += 1
            name = f"{base}-{k}"
        seen.add(name)
        out.append(name)
    return out


class MultiTree:
    """Named trees side by side (``zvfs view``, a server of the Python API): ``NAME/PATH`` is
    ``PATH`` of tree ``NAME``; trees can be added while it is served. With a ``base`` tree, every
    other path is the base's (``zvfs serve STORE --image``: images beside a store)."""

    def __init__(self, trees: Mapping[str, Tree], base: Tree | None = None) -> None:
        self.trees: dict[str, Tree] = {}
        self.base = base
        self.label = base.label if base else ""
        self.mtime = 0.0
        for name, tree in trees.items():
            self.add(name, tree)

    def add(self, name: str, tree: Tree) -> None:
        """Show ``tree`` as directory ``name`` (replacing a tree of that name)."""
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            raise ValueError(f"not a directory name: {name!r}")
        self.trees[name] = tree
        self.label = ", ".join(t.label for t in [*([self.base] if self.base else []), *self.trees.values()])
        self.mtime = max(self.mtime, tree.stat("").mtime)

    def _locate(self, path: str) -> tuple[Tree | None, str]:
        """(tree, path inside it), or (None, '') for the root of named trees alone."""
        parts = split_path(path)
        tree = self.trees.get(parts[0]) if parts else None
        if tree is not None:
            return tree, "/".join(parts[1:])
        if self.base is not None:
            return self.base, path
        if parts:
            raise NotFound(path)
        return None, ""

    def stat(self, path: str) -> Stat:
        tree, rest = self._locate(path)
        return Stat(True, 0, self.mtime) if tree is None else tree.stat(rest)

    def listdir(self, path: str) -> Iterator[str]:
        if not split_path(path):
            below = [n for n in self.base.listdir("") if n not in self.trees] if self.base is not None else []
            return iter([*below, *self.trees])
        tree, rest = self._locate(path)
        assert tree is not None
        return tree.listdir(rest)

    def read(self, path: str, offset: int = 0, size: int | None = None) -> bytes:
        tree, rest = self._locate(path)
        if tree is None:
            raise IsADirectoryError(path)
        return tree.read(rest, offset, size)

    def cached(self, path: str) -> tuple[Stat, bytes] | None:
        tree, rest = self._locate(path)
        return None if tree is None else tree.cached(rest)
