"""Whole objects of one level, assembled from cells: rows in object order, per-vertex attributes,
and explicit connectivity in object-local indices.

``zarr-vectors`` 0.9.2 raises on per-object reads of mesh, graph and skeleton stores and reads whole
levels for per-cell selections; here every object is put together from the per-cell buffers named
by its pieces in the store's index (which also holds its links, in object-local indices), so
objects crossing chunk seams come out whole and a request reads only the chunks its object holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import StoreError
from .index import StoreIndex
from .store import LevelReader


@dataclass
class ObjectGeometry:
    """One object's vertex data, in object row order (its shape: :meth:`ObjectTable.connectivity`)."""

    positions: np.ndarray  # (n, D) float32
    attributes: dict[str, np.ndarray]  # name -> (n,) or (n, C)


class ObjectTable:
    """Object id -> whole :class:`ObjectGeometry` at one level; thread-safe."""

    def __init__(self, index: StoreIndex, level: LevelReader) -> None:
        self.level = level
        self.objects = index.objects(level.index)
        self.cells = index.level(level.index).cells

    @property
    def ids(self) -> np.ndarray:
        """Object ids in row order (sorted)."""
        return np.asarray(self.objects.ids[:])

    def ids_at(self, rows: slice | np.ndarray) -> np.ndarray:
        """Object ids of some rows (read for those rows alone)."""
        return self.objects.ids_at(rows)

    def row_of(self, oid: int) -> int | None:
        return self.objects.row_of(int(oid))

    def rows_of(self, oids: np.ndarray) -> np.ndarray:
        """Rows of object ids (which must be present)."""
        return self.objects.rows_of(oids)

    def _row(self, oid: int) -> int:
        """:meth:`row_of`, raising KeyError for an id the level does not hold."""
        k = self.row_of(oid)
        if k is None:
            raise KeyError(oid)
        return k

    def size(self, oid: int) -> int:
        """Vertices of an object (0 if the level does not hold it)."""
        k = self.row_of(oid)
        return 0 if k is None else self._known(oid, self.objects.size(k))

    def _known(self, oid: int, size: int) -> int:
        if size < 0:
            raise StoreError(
                f"{self.level.store.path}: level {self.level.index}: object {oid} crosses a chunk whose fragment "
                "index cannot be read (damaged or missing chunk)"
            )
        return size

    def pieces(self, oid: int) -> np.ndarray:
        """Rows per stored fragment of an object, in order (runs of implicit connectivity; raises
        KeyError for an absent id). Needs no link records."""
        rows = self.objects.pieces(self._row(oid))[2].astype(np.int64)
        self._known(oid, -1 if (rows < 0).any() else 0)
        return rows

    def cells_of(self, oid: int) -> list[tuple[int, ...]]:
        """Cells holding part of an object, in object order (repeats removed)."""
        cell_index = self.objects.pieces(self._row(oid))[0]
        return [tuple(self.cells[i].tolist()) for i in dict.fromkeys(cell_index.tolist())]

    def connectivity(self, oid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """An object's shape without its vertex data: :meth:`pieces`, object-local link endpoints
        (E, L) and their record numbers (raises KeyError for an absent id)."""
        pieces = self.pieces(oid)
        local, records = self.objects.links(self._row(oid))
        return pieces, local, records

    def geometry(self, oid: int) -> ObjectGeometry:
        """The whole object's vertex data (raises KeyError for an id the level does not hold)."""
        cell_index, start, rows = self.objects.pieces(self._row(oid))
        self._known(oid, -1 if (rows < 0).any() else 0)
        datas = [(self.level.cell(tuple(self.cells[c].tolist())), s, n) for c, s, n in zip(
            cell_index.tolist(), start.tolist(), rows.tolist(), strict=True)]  # fmt: skip
        dim = len(self.level.store.axes)
        positions = (
            np.concatenate([d.positions[s : s + n] for d, s, n in datas]) if datas else np.zeros((0, dim), np.float32)
        )
        attributes = (
            {
                a.name: np.concatenate([d.attributes[a.name][s : s + n] for d, s, n in datas])
                for a in self.level.vertex_attributes
            }
            if datas
            else {}
        )
        return ObjectGeometry(positions, attributes)

    def geometries(self, oids: Sequence[int]) -> list[ObjectGeometry]:
        """:meth:`geometry` of many objects, read in the order of their first chunk, so that a batch
        larger than the chunk cache (a whole group's polylines) decodes each chunk about once."""

        def first_cell(oid: int) -> int:
            k = self.row_of(oid)
            cells = self.objects.pieces(k)[0] if k is not None else np.zeros(0)
            return int(cells[0]) if len(cells) else -1

        out: list = [None] * len(oids)
        for i in sorted(range(len(oids)), key=lambda i: first_cell(oids[i])):
            out[i] = self.geometry(oids[i])
        return out
