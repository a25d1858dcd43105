"""Read access to a ZVF store through ``zarr-vectors`` (the only module that imports it).

Reads go through the per-cell ``building`` primitives (milliseconds a cell), never the O(level)
public selections, and are strict where ``zarr-vectors`` 0.9.2 is lenient: a cell whose chunk files
are missing or damaged (it returns them empty) is an error, found by checking every buffer's row
count against the cell's fragment index.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import fsspec
import numpy as np
import zarr
import zarr_vectors as zv
from zarr_vectors import building as zb
from zarr_vectors.core.arrays import object_ids_for_rows

from .cache import Budget, Memo
from .coordinates import StoreCoordinates
from .errors import StoreError
from .units import Axis

DEFAULT_BUDGET_BYTES = 256 * 2**20  # when a caller gives no budget (a build worker, a test)
METADATA = "zarr.json"
OWNER_ATTRIBUTE = "object_id"

Cell = tuple[int, ...]


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

    def nbytes(self) -> int:
        return sum(a.nbytes for a in [self.positions, *self.attributes.values()]) + 256


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


def open_store(path: str, budget: Budget | None = None) -> ZVFStore:
    """Open a ZVF store read-only, or raise :class:`StoreError` saying why not; decoded chunks and
    fragment indexes are kept in ``budget``."""
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
    return ZVFStore(path, ds, kinds[0], levels, budget or Budget(DEFAULT_BUDGET_BYTES))


class ZVFStore:
    """One open store: metadata and its levels; safe to share between threads."""

    def __init__(
        self,
        path: str,
        ds: zv.Dataset,
        kind: str,
        level_indices: Sequence[int],
        budget: Budget,
    ) -> None:
        self.path = path
        self.kind = kind
        self._ds = ds
        self._lock = threading.RLock()
        self.budget = budget
        self.mtime = time.time() if is_url(path) else os.stat(os.path.join(path, "zarr.json")).st_mtime
        self.levels = [LevelReader(self, ds.level(i), i, self._lock) for i in level_indices]

    @cached_property
    def axes(self) -> tuple[Axis, ...]:
        return tuple(Axis(str(a.get("name", f"d{i}")), str(a.get("unit") or "")) for i, a in enumerate(self._ds.axes))

    @cached_property
    def coordinates(self) -> StoreCoordinates:
        """Every coordinate statement the store's metadata makes (resolved by :mod:`zvfs.coordinates`)."""
        root = zarr.open_group(self.path, mode="r")
        attrs: dict[str, Any] = dict(root.attrs)
        zvattrs = attrs.get("zarr_vectors") or {}
        datasets = ((attrs.get("multiscales") or [{}])[0] or {}).get("datasets") or [{}]
        headers = root.get("headers")
        trk = dict(headers["trk"].attrs) if isinstance(headers, zarr.Group) and "trk" in headers else None
        base = self.levels[0]
        return StoreCoordinates(
            rank=len(self.axes),
            units=tuple(a.unit for a in self.axes),
            crs=zvattrs.get("crs"),
            trk=trk,
            level0=tuple(datasets[0].get("coordinateTransformations") or ()),
            offset=zvattrs.get("coordinate_offset"),
            bin_shape=tuple(base.bin_shape.tolist()),
            chunk_shape=tuple(base.chunk_shape.tolist()),
            kind=self.kind,
        )

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
        out: list[tuple[int, int, int] | None] = []
        for rel in ["zarr.json", *(f"{lv.index}/zarr.json" for lv in self.levels)]:
            try:
                st = os.stat(os.path.join(self.path, rel))
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def content_fingerprint(self) -> str:
        """A hash of every metadata document of the store (root, levels, arrays: what lists its
        chunks, objects and attributes), and for a local store their modification times, so that
        an index built from the store is rebuilt once the store is written again."""
        digest = hashlib.sha256()
        for rel, data, stamp in self._metadata_documents():
            digest.update(f"{rel}\0{stamp}\0".encode() + data)
        return digest.hexdigest()

    def _metadata_documents(self) -> Iterator[tuple[str, bytes, str]]:
        """(relative path, bytes, local modification stamp) of every ``zarr.json`` outside chunk
        directories, in sorted order."""
        if is_url(self.path):
            fs, root = fsspec.core.url_to_fs(self.path)
            for level in ["", *(f"{lv.index}/" for lv in self.levels)]:
                for name in sorted(fs.find(f"{root.rstrip('/')}/{level}", maxdepth=4, withdirs=False)):
                    if name.endswith("/" + METADATA) and "/c/" not in name:
                        yield name.removeprefix(root), fs.cat(name), ""
            return
        found = []
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames[:] = [d for d in dirnames if d != "c"]  # chunk directories hold no metadata
            if METADATA in filenames:
                found.append(os.path.join(dirpath, METADATA))
        for path in sorted(found):
            with open(path, "rb") as f:
                yield os.path.relpath(path, self.path), f.read(), str(os.stat(path).st_mtime_ns)


class LevelReader:
    """One resolution level, read cell by cell."""

    def __init__(self, store: ZVFStore, level: zv.Level, index: int, lock: threading.RLock) -> None:
        self.store = store
        self.index = index
        self._level = level
        self._g = level.store
        self._lock = lock
        self._fragments: Memo[np.ndarray] = store.budget.memo(lambda a: int(a.nbytes))
        self._cells: Memo[CellData] = store.budget.memo(CellData.nbytes)
        self._object_values: Memo[np.ndarray] = store.budget.memo(lambda a: int(a.nbytes))
        self._object_codes: Memo[np.ndarray] = store.budget.memo(lambda a: int(a.nbytes))  # strings as categories
        self._link_values: Memo[np.ndarray] = store.budget.memo(lambda a: int(a.nbytes))
        self.known_channels: dict[str, int] = {}  # attribute -> channels, when an index says

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
        if name in self.known_channels:
            ncols = self.known_channels[name]
        elif int(ncols) == 1 and self.cells:
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
    def vertex_count(self) -> int:
        """Rows of the level, as its metadata says (at coarse levels: metavertices)."""
        with self._lock:
            return int(self._level.vertex_count)

    @cached_property
    def object_count(self) -> int:
        """Rows of the level's object index, from its metadata (0: none)."""
        with self._lock:
            return int(zb.object_count(self._g))

    @cached_property
    def owner_index(self) -> bool:
        """Whether the level has zarr-vectors' fragment owner index (``fragment_attributes/object_id``):
        which object each fragment of a cell belongs to, without the object manifests."""
        return OWNER_ATTRIBUTE in self._fragment_attribute_names

    @cached_property
    def _fragment_attribute_names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._level.attribute_names("fragment"))

    def fragment_owners(self, cell: Cell) -> np.ndarray:
        """Object id of each fragment of a cell, from the fragment owner index."""
        try:
            with self._lock:
                owners = zb.read_chunk_fragment_attributes(self._g, OWNER_ATTRIBUTE, cell)
        except Exception as exc:
            raise StoreError(self._where(f"cell {cell}: cannot read its fragment owners: {exc}")) from exc
        return np.asarray(owners, np.int64).reshape(-1)

    @property
    def has_objects(self) -> bool:
        return self.object_count > 0

    @property
    def object_ids(self) -> np.ndarray:
        """Ids of the objects at this level, in the object index's row order (sorted)."""
        if not self.has_objects:
            return np.zeros(0, np.int64)
        with self._lock:
            return np.asarray(object_ids_for_rows(self._g), np.int64)

    @cached_property
    def object_attribute_names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._level.attribute_names("object")))

    def _values(self, name: str) -> np.ndarray:
        """A per-object attribute as stored (kept in the budget)."""

        def read() -> np.ndarray:
            with self._lock:
                return np.asarray(zb.read_object_attributes(self._g, name))

        return self._object_values.get(name, read)

    @cached_property
    def object_attributes(self) -> tuple[AttributeInfo, ...]:
        """Per-object attributes as :class:`AttributeInfo`; string attributes become categorical."""
        out = []
        with self._lock:
            metas = {name: self._g.read_array_meta(f"object_attributes/{name}") for name in self.object_attribute_names}
        for name, meta in metas.items():
            values = self._values(name)
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
        values = self._values(name)
        if values.dtype.kind not in "US":
            return values
        info = next(a for a in self.object_attributes if a.name == name)
        categories = np.asarray(info.categories, dtype=values.dtype)
        return self._object_codes.get(name, lambda: np.searchsorted(categories, values).astype(info.dtype))

    def fragments(self, cell: Cell) -> np.ndarray:
        """(F, 2) start,count row ranges of a cell's fragments (kept in the budget: read often)."""
        return self._fragments.get((self.index, cell), lambda: self.read_fragments(cell))

    def read_fragments(self, cell: Cell) -> np.ndarray:
        """:meth:`fragments`, read now."""
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
        """:meth:`read_cell`, kept in the budget."""
        return self._cells.get((self.index, cell), lambda: self.read_cell(cell))

    def read_cell(self, cell: Cell) -> CellData:
        """Positions and per-vertex attributes of every row of one cell, in stored order."""
        names = [a.name for a in self.vertex_attributes]
        frags = self.fragments(cell)
        if not len(frags):
            return CellData(np.zeros((0, len(self.store.axes)), np.float32), {})
        with self._lock:
            try:
                pos = np.asarray(zb.read_chunk_vertex_buffer(self._g, cell), np.float32)
                attrs = {name: np.concatenate(zb.read_chunk_attributes(self._g, name, cell)) for name in names}
            except Exception as exc:  # zstd and zarr errors of a damaged chunk
                raise StoreError(self._where(f"cell {cell}: cannot read its chunks (damaged?): {exc}")) from exc
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
        return CellData(pos, attrs)

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
        """Per-link values, row i belonging to record i of :meth:`links` (kept in the budget)."""

        def read() -> np.ndarray:
            with self._lock:
                return np.asarray(zb.read_link_attributes(self._g, name, delta=0))

        return self._link_values.get(name, read)

    def groups(self) -> list[np.ndarray]:
        """Object ids of each ZVF group (index = group id)."""
        with self._lock:
            if not self._g.array_exists("groups"):
                return []
            return [np.asarray(g, np.int64) for g in zb.read_all_groupings(self._g)]

    def manifests(self, start: int, stop: int) -> list[list[tuple[Cell, int]]]:
        """The (cell, fragment) pieces of the objects in index rows [start, stop), in object order
        (one zarr-vectors read: it keeps 16,384 manifests in one chunk)."""
        with self._lock:
            ids = object_ids_for_rows(self._g, np.arange(start, stop)).tolist()
            found = zb.read_object_manifests(self._g, ids=ids)
        return [[(tuple(int(c) for c in cell), int(frag)) for cell, frag in found.get(oid, [])] for oid in ids]
