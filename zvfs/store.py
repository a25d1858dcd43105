"""Read access to a ZVF store through ``zarr-vectors`` (the only module that imports it).

Reads go through the per-cell ``building`` primitives (milliseconds a cell), never the O(level)
public selections, and are strict where ``zarr-vectors`` 0.9.2 is lenient: a cell whose chunk files
are missing or damaged (it returns them empty) is an error, found by checking every buffer's row
count against the cell's fragment index.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import zarr_vectors as zv
from zarr_vectors import building as zb

from .cache import Memo
from .errors import StoreError

if TYPE_CHECKING:
    from .space import Space

FRAGMENT_CACHE_BYTES = 32 * 2**20
CELL_CACHE_BYTES = 64 * 2**20  # default bound on decoded chunks, all levels together
MANIFEST_BATCH = 10_000  # object manifests decoded at once

Cell = tuple[int, ...]


@dataclass(frozen=True)
class Axis:
    name: str
    unit: str


@dataclass(frozen=True)
class AttributeInfo:
    """How a per-vertex attribute is stored."""

    name: str
    dtype: np.dtype
    channels: int
    channel_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    unit: str = ""
    description: str = ""


@dataclass
class CellData:
    """Everything of one cell: rows in stored order."""

    positions: np.ndarray  # (N, D) float32
    attributes: dict[str, np.ndarray]  # name -> (N,) or (N, C)
    owners: np.ndarray | None  # (N,) int64 object id per row, or None without an object index
    fragments: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # (F, 2) start, count

    def nbytes(self) -> int:
        arrays = [self.positions, self.fragments, *self.attributes.values()]
        return sum(a.nbytes for a in arrays) + (0 if self.owners is None else self.owners.nbytes) + 256


def is_zvf_store(path: str) -> bool:
    """Whether ``path`` is a directory holding a ZVF root ``zarr.json``."""
    try:
        with open(os.path.join(path, "zarr.json")) as f:
            return "zarr_vectors" in json.load(f).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False


def is_url(path: str) -> bool:
    """Whether ``path`` names a remote store (``s3://``, ``gs://``, ``http(s)://``, ...) that
    zarr-vectors opens through fsspec, rather than a local directory."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme != "file"


def open_store(path: str, cell_cache_bytes: int = CELL_CACHE_BYTES) -> ZVFStore:
    """Open a ZVF store read-only, or raise :class:`StoreError` saying why not; decoded chunks are
    kept up to ``cell_cache_bytes``."""
    if not is_url(path):
        path = os.path.abspath(path.removeprefix("file://"))
        if not os.path.exists(path):
            raise StoreError(f"{path}: no such file or directory")
        if not is_zvf_store(path):
            raise StoreError(f"{path}: not a ZVF store (no zarr.json with 'zarr_vectors' attributes)")
    try:
        ds = zv.open(path, mode="r")
        kinds = tuple(ds.kinds)
        levels = tuple(ds.levels)
    except Exception as exc:
        raise StoreError(f"{path}: cannot open ZVF store: {exc}") from exc
    if len(kinds) != 1:
        raise StoreError(f"{path}: expected one geometry type, found {list(kinds)}")
    if not levels:
        raise StoreError(f"{path}: store has no resolution levels")
    return ZVFStore(path, ds, kinds[0], levels, cell_cache_bytes)


class ZVFStore:
    """One open store: metadata and its levels; safe to share between threads."""

    def __init__(
        self,
        path: str,
        ds: zv.Dataset,
        kind: str,
        level_indices: Sequence[int],
        cell_cache_bytes: int = CELL_CACHE_BYTES,
    ) -> None:
        self.path = path
        self.kind = kind
        self._ds = ds
        self._lock = threading.RLock()
        self.cells: Memo[CellData] = Memo(cell_cache_bytes, getsizeof=CellData.nbytes)  # by (level, cell)
        self.mtime = time.time() if is_url(path) else os.stat(os.path.join(path, "zarr.json")).st_mtime
        self.levels = [LevelReader(self, ds.level(i), i, self._lock) for i in level_indices]

    @cached_property
    def axes(self) -> tuple[Axis, ...]:
        return tuple(Axis(str(a.get("name", f"d{i}")), str(a.get("unit") or "")) for i, a in enumerate(self._ds.axes))

    @cached_property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Declared (lower, upper) bounds, upper inclusive as ZVF writes it."""
        lo, hi = self._ds.bounds
        return np.asarray(lo, np.float64), np.asarray(hi, np.float64)

    def fingerprint(self) -> tuple:
        """(inode, mtime, size) of the root and level metadata: changes when the store is
        replaced or rewritten (two or three ``stat`` calls). Remote stores are taken as fixed."""
        if is_url(self.path):
            return ()
        out = []
        for rel in ["zarr.json", *(f"{lv.index}/zarr.json" for lv in self.levels)]:
            try:
                st = os.stat(os.path.join(self.path, rel))
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    @cached_property
    def space(self) -> Space:
        """Where written coordinates live: the store's axes and units, identity affine, unless
        :meth:`override_space` was called."""
        from .space import Space

        return Space.of(self.axes, self.path)

    def override_space(self, affine: np.ndarray | None, units: Sequence[str] | None) -> None:
        """Use an explicit affine and/or units (``--transform``, ``--units``) instead."""
        from .space import Space

        self.space = Space.of(self.axes, self.path, affine, units)


class LevelReader:
    """One resolution level, read cell by cell."""

    def __init__(self, store: ZVFStore, level: zv.Level, index: int, lock: threading.RLock) -> None:
        self.store = store
        self.index = index
        self._level = level
        self._g = level.store
        self._lock = lock
        self._fragments: Memo[np.ndarray] = Memo(FRAGMENT_CACHE_BYTES, getsizeof=lambda a: a.nbytes + 64)

    def _where(self, what: str) -> str:
        return f"{self.store.path}: level {self.index}: {what}"

    @cached_property
    def chunk_shape(self) -> np.ndarray:
        return np.asarray(self._level.scale, np.float64)

    @cached_property
    def bin_shape(self) -> np.ndarray:
        return np.asarray(self._level.resolution, np.float64)

    @cached_property
    def cells(self) -> list[Cell]:
        """Absolute coordinates of the non-empty cells, sorted."""
        with self._lock:
            return sorted(tuple(int(c) for c in ref.coords) for ref in self._level.cells())

    @cached_property
    def vertex_attributes(self) -> tuple[AttributeInfo, ...]:
        with self._lock:
            names = sorted(self._level.attribute_names("vertex"))
            self._check_listed("vertex_attributes", names)
            return tuple(self._attribute_info(n) for n in names)

    def _check_listed(self, group: str, names: Sequence[str]) -> None:
        """zarr-vectors 0.9.2 lists no attributes at all when one array's metadata is unreadable:
        compare with the arrays on disk, so that such a store fails instead of losing attributes."""
        if group not in self._g.children():
            return
        try:
            stored = self._g[group].children()
        except Exception as exc:
            raise StoreError(self._where(f"{group}: unreadable metadata ({type(exc).__name__}: {exc})")) from exc
        unlisted = sorted(set(stored) - set(names))
        if unlisted:
            raise StoreError(self._where(f"{group}: {unlisted} present but not readable"))

    def _attribute(self, name: str) -> AttributeInfo:
        return next(a for a in self.vertex_attributes if a.name == name)

    def _attribute_info(self, name: str) -> AttributeInfo:
        meta = self._g.read_array_meta(f"vertex_attributes/{name}")
        dtype, ncols = zb.attribute_layout(self._g, name)
        if int(ncols) == 1 and self.cells:
            # zarr-vectors 0.9.2 writes multi-channel attributes of mesh/graph/polyline stores flat
            # with row_shape []: the channel count shows only as rows per vertex.
            cell = self.cells[0]
            rows = len(np.concatenate(zb.read_chunk_attributes(self._g, name, cell)))
            vertices = self.count(cell)
            if vertices and rows != vertices and rows % vertices == 0:
                ncols = rows // vertices
        return AttributeInfo(
            name=name,
            dtype=np.dtype(dtype),
            channels=int(ncols),
            channel_names=tuple(meta.get("channel_names") or ()),
            categories=tuple(meta.get("categories") or ()) if meta.get("encoding") == "dictionary" else (),
            unit=str(meta.get("unit") or ""),
            description=str(meta.get("description") or ""),
        )

    @cached_property
    def has_objects(self) -> bool:
        with self._lock:
            return bool(self._g.array_exists("object_index/object_ids"))

    @cached_property
    def object_ids(self) -> np.ndarray:
        """Sorted ids of the objects at this level (row order of the object index)."""
        if not self.has_objects:
            return np.zeros(0, np.int64)
        with self._lock:
            return np.asarray(self._g.read_array("object_index/object_ids"), np.int64)

    @cached_property
    def object_attribute_names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._level.attribute_names("object")))

    @cached_property
    def _object_values(self) -> dict[str, np.ndarray]:
        """Every per-object attribute, read once (O(objects)); strings as category codes."""
        with self._lock:
            return {name: np.asarray(zb.read_object_attributes(self._g, name)) for name in self.object_attribute_names}

    @cached_property
    def object_attributes(self) -> tuple[AttributeInfo, ...]:
        """Per-object attributes as :class:`AttributeInfo`; string attributes become categorical."""
        out = []
        with self._lock:
            metas = {name: self._g.read_array_meta(f"object_attributes/{name}") for name in self.object_attribute_names}
        for name, meta in metas.items():
            values = self._object_values[name]
            categories = tuple(meta.get("categories") or ())
            dtype = values.dtype
            if dtype.kind in "US":
                categories = tuple(str(c) for c in np.unique(values))
                dtype = np.dtype(
                    np.uint8 if len(categories) <= 256 else np.uint16 if len(categories) <= 65536 else np.uint32
                )
            out.append(
                AttributeInfo(
                    name=name,
                    dtype=dtype,
                    channels=int(values.shape[1]) if values.ndim > 1 else 1,
                    channel_names=tuple(meta.get("channel_names") or ()),
                    categories=categories,
                    unit=str(meta.get("unit") or ""),
                    description=str(meta.get("description") or ""),
                )
            )
        return tuple(out)

    def object_attribute(self, name: str) -> np.ndarray:
        """Dense per-object values, aligned with :attr:`object_ids` (category codes for strings)."""
        values = self._object_values[name]
        if values.dtype.kind in "US":
            info = next(a for a in self.object_attributes if a.name == name)
            return np.searchsorted(np.asarray(info.categories, dtype=values.dtype), values).astype(info.dtype)
        return values

    def fragments(self, cell: Cell) -> np.ndarray:
        """(F, 2) start,count row ranges of a cell's fragments (cached: small, read often)."""
        return self._fragments.get(cell, lambda: self._read_fragments(cell))

    def _read_fragments(self, cell: Cell) -> np.ndarray:
        if cell not in self._cell_set:
            return np.zeros((0, 2), np.int64)
        try:
            with self._lock:
                ranges = zb.read_vertex_fragment_index(self._g, cell).ranges()
        except Exception as exc:  # a missing or damaged chunk file
            raise StoreError(
                self._where(f"cell {cell}: cannot read its fragment index (missing or damaged chunk?): {exc}")
            ) from exc
        if ranges is None:
            raise StoreError(self._where(f"cell {cell} has non-contiguous fragments (unsupported)"))
        return np.asarray(ranges, np.int64).reshape(-1, 2)

    def count(self, cell: Cell) -> int:
        """Number of rows in a cell, from its fragment index alone."""
        frags = self.fragments(cell)
        return int(frags[:, 1].sum()) if len(frags) else 0

    @cached_property
    def _cell_set(self) -> frozenset[Cell]:
        return frozenset(self.cells)

    def cell(self, cell: Cell) -> CellData:
        """:meth:`read_cell` with every attribute, kept in a bounded cache."""
        return self.store.cells.get((self.index, cell), lambda: self.read_cell(cell))

    def read_cell(self, cell: Cell) -> CellData:
        """Positions, per-vertex attributes and owning object of every row of one cell."""
        names = [a.name for a in self.vertex_attributes]
        frags = self.fragments(cell)
        if not len(frags):
            return CellData(np.zeros((0, 3), np.float32), {}, None, frags)
        with self._lock:
            pos = np.asarray(zb.read_chunk_vertex_buffer(self._g, cell), np.float32)
            attrs = {}
            for name in names:
                attrs[name] = np.concatenate(zb.read_chunk_attributes(self._g, name, cell))
        n = len(pos)
        if int(frags[:, 1].sum()) != n:
            raise StoreError(
                self._where(
                    f"cell {cell}: fragment index covers {frags[:, 1].sum()} rows, "
                    f"vertex chunk has {n} (missing or damaged chunk?)"
                )
            )
        for name, col in attrs.items():
            channels = self._attribute(name).channels
            if col.ndim == 1 and channels > 1 and len(col) == n * channels:
                attrs[name] = col = col.reshape(n, channels)  # stored flat, see _attribute_info
            if len(col) != n:
                raise StoreError(
                    self._where(
                        f"cell {cell}: attribute {name!r} has {len(col)} rows, expected {n} (missing or damaged chunk?)"
                    )
                )
        owners = None
        if self.has_objects:
            owners = np.repeat(self._fragment_owners(cell, len(frags)), frags[:, 1])
        return CellData(pos, attrs, owners, frags)

    def _fragment_owners(self, cell: Cell, nfrag: int) -> np.ndarray:
        """Object id of each fragment of a cell (-2 where several objects share it)."""
        if "object_id" in self._fragment_attribute_names:
            with self._lock:
                own = np.asarray(zb.read_chunk_fragment_attributes(self._g, "object_id", cell), np.int64).reshape(-1)
        else:
            own = np.full(nfrag, -1, np.int64)
            for frag, oid in self._manifest_inversion.get(cell, ()):
                own[frag] = oid if own[frag] == -1 else -2
        if len(own) != nfrag:
            raise StoreError(self._where(f"cell {cell}: {len(own)} fragment owners for {nfrag} fragments"))
        return own

    @cached_property
    def _fragment_attribute_names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._level.attribute_names("fragment"))

    @cached_property
    def _manifest_inversion(self) -> dict[Cell, list[tuple[int, int]]]:
        """cell -> [(fragment, object id)] from every manifest of the level (when no owner index)."""
        inv: dict[Cell, list[tuple[int, int]]] = {}
        for oid, manifest in zip(self.object_ids.tolist(), self.manifests(), strict=True):
            for cell, frag in manifest:
                inv.setdefault(cell, []).append((frag, oid))
        return inv

    def object_fragments(self, oid: int) -> list[tuple[Cell, int]]:
        """The (cell, fragment) pieces of one object, in object order."""
        with self._lock:
            manifest = zb.read_object_manifests(self._g, ids=[int(oid)]).get(int(oid), [])
        return [(tuple(int(c) for c in cell), int(frag)) for cell, frag in manifest]

    # -- connectivity (graph, skeleton, mesh, and joins of polylines/lines across cells)
    @cached_property
    def link_attribute_names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._level.attribute_names("link")))

    def links(self) -> tuple[np.ndarray, np.ndarray]:
        """Every link record of the level: (cells (M, L, D), rows (M, L)), endpoints in written order."""
        with self._lock:
            cells, rows = zb.read_link_arrays(self._g, delta=0)
        return np.asarray(cells, np.int64), np.asarray(rows, np.int64)

    def link_attribute(self, name: str) -> np.ndarray:
        """Per-link values, row i belonging to record i of :meth:`links`."""
        with self._lock:
            return np.asarray(zb.read_link_attributes(self._g, name, delta=0))

    def groups(self) -> list[np.ndarray]:
        """Object ids of each ZVF group (index = group id)."""
        with self._lock:
            if not self._g.array_exists("groups"):
                return []
            return [np.asarray(g, np.int64) for g in zb.read_all_groupings(self._g)]

    def _manifest_batches(self) -> Iterator[tuple[list[int], dict[int, list[tuple[Cell, int]]]]]:
        """(object ids, their manifests) of the whole level, :data:`MANIFEST_BATCH` objects at a time:
        zarr-vectors decodes manifests as Python lists, several times their size at once."""
        ids = self.object_ids.tolist()
        for start in range(0, len(ids), MANIFEST_BATCH):
            batch = ids[start : start + MANIFEST_BATCH]
            with self._lock:
                found = zb.read_object_manifests(self._g, ids=batch)
            yield batch, found

    def kept_ids(self) -> np.ndarray:
        """Sorted ids of the objects holding at least one fragment at this level."""
        kept = [oid for batch, found in self._manifest_batches() for oid in batch if found.get(oid)]
        return np.asarray(sorted(kept), np.int64)

    def manifests(self) -> Iterator[list[tuple[Cell, int]]]:
        """Every object's (cell, fragment) pieces, in :attr:`object_ids` order, as zarr-vectors decodes
        them (cells are tuples of ints), a batch at a time."""
        for batch, found in self._manifest_batches():
            yield from (found.get(oid, []) for oid in batch)
