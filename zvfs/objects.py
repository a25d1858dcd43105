"""Whole objects of one level, assembled from cells: rows in object order, per-vertex attributes,
and explicit connectivity (link records) in object-local indices.

``zarr-vectors`` 0.9.2 raises on per-object reads of mesh, graph and skeleton stores and reads whole
levels for per-cell selections; here every object is put together from the per-cell buffers and one
read of the level's link records, so objects crossing chunk seams come out whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from .store import Cell, LevelReader


@dataclass
class ObjectGeometry:
    """One object's vertex data, in object row order (its shape: :meth:`ObjectTable.connectivity`)."""

    positions: np.ndarray  # (n, D) float32
    attributes: dict[str, np.ndarray]  # name -> (n,) or (n, C)


class ObjectTable:
    """Object id -> whole :class:`ObjectGeometry` at one level; thread-safe, lazily indexed."""

    def __init__(self, level: LevelReader) -> None:
        self.level = level

    @cached_property
    def ids(self) -> np.ndarray:
        return self.level.object_ids

    @cached_property
    def _cell_offsets(self) -> dict[Cell, int]:
        """First level-wide row number of each cell (cells in sorted order)."""
        counts = [self.level.count(c) for c in self.level.cells]
        starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        return dict(zip(self.level.cells, starts[:-1].tolist(), strict=True))

    @cached_property
    def _pieces(self) -> list[list[tuple[Cell, int, int]]]:
        """Per object (aligned with :attr:`ids`): (cell, first row, row count) of each fragment."""
        ranges: dict[Cell, list[list[int]]] = {}  # cell -> fragment (start, count), read once here

        def piece(cell: Cell, frag: int) -> tuple[Cell, int, int]:
            if cell not in ranges:
                ranges[cell] = self.level.fragments(cell).tolist()
            start, count = ranges[cell][frag]
            return cell, start, count

        return [[piece(cell, frag) for cell, frag in manifest] for manifest in self.level.manifests()]

    @cached_property
    def _owner(self) -> tuple[np.ndarray, np.ndarray]:
        """Per level-wide row: owning object row (-1 none, -2 shared) and index inside it."""
        total = sum(self.level.count(c) for c in self.level.cells)
        owner = np.full(total, -1, np.int64)
        local = np.full(total, -1, np.int64)
        for k, pieces in enumerate(self._pieces):
            n = 0
            for cell, start, count in pieces:
                rows = self._cell_offsets[cell] + start + np.arange(count)
                owner[rows] = np.where(owner[rows] == -1, k, -2)
                local[rows] = n + np.arange(count)
                n += count
        return owner, local

    @cached_property
    def records(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every link record of the level: endpoint cells (M, L, D), rows in those cells (M, L), and
        the object row owning all its endpoints (-1 for a record spanning objects or shared rows)."""
        cells, rows = self.level.links()
        if not rows.size:
            return (
                np.zeros((0, 2, len(self.level.store.axes)), np.int64),
                np.zeros((0, 2), np.int64),
                np.zeros(0, np.int64),
            )
        own = self.owner_of(cells, rows)
        whole = (own[:, 0] >= 0) & (own == own[:, :1]).all(1)
        return cells, rows, np.where(whole, own[:, 0], -1)

    def _global(self, cells: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Level-wide row numbers of (cell, row) endpoints."""
        flat = cells.reshape(-1, cells.shape[-1])
        uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
        base = np.asarray([self._cell_offsets.get(tuple(c), -1) for c in uniq.tolist()], np.int64)
        if (base < 0).any():
            bad = uniq[np.flatnonzero(base < 0)[0]].tolist()
            raise ValueError(f"level {self.level.index}: a link record points into empty cell {bad}")
        return (base[inverse.reshape(-1)] + rows.reshape(-1)).reshape(rows.shape)

    def owner_of(self, cells: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Object row owning each (cell, row) endpoint (-1 none, -2 shared)."""
        return self._owner[0][self._global(cells, rows)]

    @cached_property
    def _links(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Records wholly inside one object, grouped by object: (record indices, their object rows,
        object-local endpoint indices)."""
        cells, rows, owner = self.records
        records = np.flatnonzero(owner >= 0)
        order = records[np.argsort(owner[records], kind="stable")]
        local = self._owner[1][self._global(cells[order], rows[order])] if len(order) else np.zeros((0, 2), np.int64)
        return order, owner[order], local

    def row_of(self, oid: int) -> int | None:
        k = int(np.searchsorted(self.ids, oid))
        return k if k < len(self.ids) and self.ids[k] == oid else None

    def cells_of(self, oid: int) -> list[Cell]:
        """Cells holding part of an object, in object order (repeats removed)."""
        k = self.row_of(oid)
        return [] if k is None else list(dict.fromkeys(cell for cell, _, _ in self._pieces[k]))

    def size(self, oid: int) -> int:
        k = self.row_of(oid)
        return 0 if k is None else sum(count for _, _, count in self._pieces[k])

    def _row(self, oid: int) -> int:
        """:meth:`row_of`, raising KeyError for an id the level does not hold."""
        k = self.row_of(oid)
        if k is None:
            raise KeyError(oid)
        return k

    def _counts(self, k: int) -> np.ndarray:
        return np.asarray([c for _, _, c in self._pieces[k]], np.int64)

    def pieces(self, oid: int) -> np.ndarray:
        """Rows per stored fragment of an object, in order (runs of implicit connectivity; raises
        KeyError for an absent id). Needs no link records."""
        return self._counts(self._row(oid))

    def connectivity(self, oid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """An object's shape without its vertex data: :meth:`pieces`, object-local link endpoints
        (E, L) and their record indices (raises KeyError for an absent id)."""
        k = self._row(oid)
        order, owners, local = self._links
        lo, hi = np.searchsorted(owners, k), np.searchsorted(owners, k, side="right")
        return self._counts(k), local[lo:hi], order[lo:hi]

    def geometry(self, oid: int) -> ObjectGeometry:
        """The whole object's vertex data (raises KeyError for an id the level does not hold); it
        needs no link records, so polylines never read them."""
        k = self._row(oid)
        datas = [(self.level.cell(cell), start, count) for cell, start, count in self._pieces[k]]
        dim = len(self.level.store.axes)
        positions = (
            np.concatenate([d.positions[s : s + c] for d, s, c in datas]) if datas else np.zeros((0, dim), np.float32)
        )
        attributes = (
            {
                a.name: np.concatenate([d.attributes[a.name][s : s + c] for d, s, c in datas])
                for a in self.level.vertex_attributes
            }
            if datas
            else {}
        )
        return ObjectGeometry(positions, attributes)

    def geometries(self, oids: Sequence[int]) -> list[ObjectGeometry]:
        """:meth:`geometry` of many objects, read in the order of their first chunk, so that a batch
        larger than the chunk cache (a whole group's polylines) decodes each chunk about once."""

        def first_cell(oid: int) -> Cell:
            k = self.row_of(oid)
            return self._pieces[k][0][0] if k is not None and self._pieces[k] else ()

        out: list = [None] * len(oids)
        for i in sorted(range(len(oids)), key=lambda i: first_cell(oids[i])):
            out[i] = self.geometry(oids[i])
        return out


@cache
def object_table(level: LevelReader) -> ObjectTable:
    """The one :class:`ObjectTable` of a level (its indexes are built once per open store)."""
    return ObjectTable(level)
