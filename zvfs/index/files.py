"""Where a store's persistent index lives, and how its arrays are written, checked and read.

An index is a directory of raw little-endian arrays plus ``index.json`` (format version, the
store it describes and its fingerprint, and each array's dtype, shape and CRC-32). It is built in
a private temporary directory and renamed into place, so a reader never sees half of one; a lock
file makes a second process that wants the same index wait for the first instead of building it
twice. Opening checks every array's size and checksum, so a truncated or damaged index is rebuilt,
never trusted. Arrays are read with ``pread`` (small ones whole, large ones by slices), never
memory-mapped, so the pages they come from are the kernel's page cache and not the daemon's
resident memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

FORMAT_VERSION = 2  # 2: items/<view>/L<k>/vertices
MANIFEST = "index.json"
VERIFIED = "verified.json"
CRC_BLOCK = 8 * 2**20


class IndexCorrupt(Exception):
    """An index directory that is incomplete or does not match its manifest."""


def default_root() -> Path:
    """``$ZVFS_INDEX_DIR``, else ``$XDG_CACHE_HOME/zvfs/index``, else ``~/.cache/zvfs/index``."""
    if os.environ.get("ZVFS_INDEX_DIR"):
        return Path(os.environ["ZVFS_INDEX_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zvfs" / "index"


def index_key(store: str, fingerprint: str) -> str:
    """The directory name of a store's index: readable store name plus a hash of what decides it."""
    digest = hashlib.sha256(f"{FORMAT_VERSION}\0{store}\0{fingerprint}".encode()).hexdigest()[:24]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in store.rstrip("/").rsplit("/", 1)[-1])[:40]
    return f"{name}-{digest}"


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value: object) -> None:
    """Write ``value`` as ``path`` atomically (a reader sees the old file or the new one); where the
    directory cannot be written (a shared, read-only index), nothing is written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(value))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(CRC_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc


@dataclass(frozen=True)
class ArraySpec:
    dtype: str
    shape: tuple[int, ...]
    crc: int

    @property
    def nbytes(self) -> int:
        return int(np.dtype(self.dtype).itemsize * np.prod(self.shape, dtype=np.int64))


@dataclass
class _Open:
    """An array being written: its file, dtype and row shape, and rows so far."""

    file: BinaryIO
    dtype: str
    row_shape: tuple[int, ...]
    rows: int = 0


class Writer:
    """Arrays of an index being built, in a private directory until :meth:`publish`."""

    def __init__(self, root: Path, key: str, meta: dict) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.final = root / key
        self.dir = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        self.meta = meta
        self.arrays: dict[str, ArraySpec] = {}
        self._open: dict[str, _Open] = {}

    def put(self, name: str, values: np.ndarray) -> None:
        """A whole array."""
        self.append(name, values)
        self.close(name)

    def append(self, name: str, values: np.ndarray) -> None:
        """Rows added to array ``name`` (created on first use; rows of equal shape and dtype)."""
        values = np.ascontiguousarray(values)
        dtype = values.dtype.newbyteorder("<") if values.dtype.byteorder == ">" else values.dtype
        if name not in self._open:
            (self.dir / name).parent.mkdir(parents=True, exist_ok=True)
            f = open(self.dir / name, "wb")  # noqa: SIM115 - closed by close()
            self._open[name] = _Open(f, dtype.str, values.shape[1:])
        array = self._open[name]
        if values.shape[1:] != array.row_shape or np.dtype(array.dtype) != dtype:
            raise ValueError(
                f"index array {name}: rows of {values.dtype}{values.shape[1:]}, not {array.dtype}{array.row_shape}"
            )
        array.file.write(values.astype(array.dtype, copy=False).tobytes())
        array.rows += len(values)

    def close(self, name: str) -> None:
        array = self._open.pop(name)
        array.file.close()
        self.arrays[name] = ArraySpec(array.dtype, (array.rows, *array.row_shape), _crc(self.dir / name))

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    def load(self, name: str) -> np.ndarray:
        """An array written (and closed) earlier in this build."""
        spec = self.arrays[name]
        return np.fromfile(self.dir / name, np.dtype(spec.dtype)).reshape(spec.shape)

    def publish(self) -> Path:
        """Make the index visible under its final name (atomically); another process that got there
        first wins and this copy is dropped."""
        for name in list(self._open):
            self.close(name)
        manifest = {
            **self.meta,
            "format": FORMAT_VERSION,
            "arrays": {n: {"dtype": a.dtype, "shape": list(a.shape), "crc32": a.crc} for n, a in self.arrays.items()},
        }
        (self.dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        for path in self.dir.rglob("*"):
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
        try:
            os.rename(self.dir, self.final)
        except OSError:  # already there: published by someone else meanwhile
            self.discard()
        return self.final

    def discard(self) -> None:
        for name in list(self._open):
            self._open.pop(name).file.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class IndexFiles:
    """A published index, checked against its manifest when opened: every array's size always, and
    its CRC-32 whenever a file's inode, size or modification time differs from when the index was
    last checked (recorded in :data:`VERIFIED`), so that an index written to since, truncated or
    damaged is found out, while an unchanged one opens without reading it all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            if manifest.get("format") != FORMAT_VERSION:
                raise IndexCorrupt(f"{path}: index format {manifest.get('format')}, expected {FORMAT_VERSION}")
            self.meta = manifest
            self.arrays = {
                name: ArraySpec(a["dtype"], tuple(a["shape"]), int(a["crc32"]))
                for name, a in manifest["arrays"].items()
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorrupt(f"{path}: unreadable index manifest ({exc})") from exc
        stamps = {}
        for name, spec in self.arrays.items():
            file = path / name
            try:
                st = file.stat()
            except OSError as exc:
                raise IndexCorrupt(f"{file}: missing ({exc})") from exc
            if st.st_size != spec.nbytes:
                raise IndexCorrupt(f"{file}: {st.st_size} bytes, expected {spec.nbytes}")
            stamps[name] = [st.st_ino, st.st_size, st.st_mtime_ns]
        if _read_json(path / VERIFIED) != stamps:  # new, or a file written since it was last checked
            for name, spec in self.arrays.items():
                if _crc(path / name) != spec.crc:
                    raise IndexCorrupt(f"{path / name}: checksum mismatch")
            _write_json(path / VERIFIED, stamps)

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    def load(self, name: str) -> np.ndarray:
        """A whole array, read into memory."""
        return self.disk(name)[:]

    def disk(self, name: str) -> DiskArray:
        """An array read by slices, on demand."""
        spec = self.arrays[name]
        return DiskArray(self.path / name, np.dtype(spec.dtype), spec.shape)


TAKE_GAP = 512  # rows between two wanted ones that DiskArray.take reads through rather than seek past


class DiskArray:
    """An array on disk, read a slice at a time with ``pread`` (rows along the first axis)."""

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.shape = path, dtype, shape
        self._row = int(dtype.itemsize * np.prod(shape[1:], dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: slice | int) -> np.ndarray:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("DiskArray slices are contiguous")
            return self._read(start, max(start, stop))
        i = index + len(self) if index < 0 else index
        if not 0 <= i < len(self):
            raise IndexError(index)
        return self._read(i, i + 1)[0]

    def _read(self, start: int, stop: int) -> np.ndarray:
        n = (stop - start) * self._row
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, n, start * self._row) if n else b""
        finally:
            os.close(fd)
        if len(data) != n:
            raise IndexCorrupt(f"{self.path}: short read")
        return np.frombuffer(data, self.dtype).reshape(stop - start, *self.shape[1:])

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows at any positions, runs of nearby rows read together: the cost follows ``len(rows)``."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        wanted = np.unique(rows)
        if len(wanted) and (wanted[0] < 0 or wanted[-1] >= len(self)):
            raise IndexError(f"{self.path}: rows outside 0..{len(self) - 1}")
        runs = np.split(wanted, np.flatnonzero(np.diff(wanted) > TAKE_GAP) + 1) if len(wanted) else []
        found = [self._read(int(r[0]), int(r[-1]) + 1)[r - r[0]] for r in runs]
        values = np.concatenate(found) if found else np.zeros((0, *self.shape[1:]), self.dtype)
        return values[np.searchsorted(wanted, rows)]

    def searchsorted(self, value: int | float, side: str = "left") -> int:
        """``np.searchsorted`` over a sorted 1-D array, reading O(log n) elements."""
        lo, hi = 0, len(self)
        while lo < hi:
            mid = (lo + hi) // 2
            x = self._read(mid, mid + 1)[0]
            if x < value or (side == "right" and x == value):
                lo = mid + 1
            else:
                hi = mid
        return lo


def prune(root: Path, key: str, store: str) -> None:
    """Remove the other indexes of ``store`` under ``root`` (of earlier versions of the store)."""
    prefix = key.rsplit("-", 1)[0] + "-"
    for other in root.glob(f"{prefix}*"):
        meta = _read_json(other / MANIFEST)
        if other.name != key and isinstance(meta, dict) and meta.get("store") == store:
            shutil.rmtree(other, ignore_errors=True)


@contextlib.contextmanager
def locked(root: Path, key: str) -> Iterator[None]:
    """Exclusive use of ``key`` among processes (released when the holder exits, also if killed)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{key}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
