"""The ZVF resolution pyramid as the spatial levels of annotation layers (from metadata alone).

One precomputed spatial level per usable ZVF level (coarsest first), each on that level's chunk
grid, all sharing the coarsest grid's bounds (``grid_shape * chunk_size == upper - lower``). A ZVF
level is usable while its chunks nest: its chunk shape is a whole multiple of the next finer
level's, and its bin shape divides its chunk shape.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..store import Cell, LevelReader, ZVFStore

log = logging.getLogger("zvfs")


@dataclass(frozen=True)
class Grid:
    """A level's ZVF cell grid as a Neuroglancer spatial grid: spatial cell = ZVF cell - origin."""

    origin: tuple[int, ...]  # ZVF cell at spatial cell (0, ..., 0)
    shape: tuple[int, ...]
    chunk: tuple[float, ...]

    @classmethod
    def of(cls, store: ZVFStore, level: LevelReader) -> Grid:
        """The smallest cell-aligned grid enclosing the declared bounds and every stored cell."""
        chunk = level.chunk_shape
        lo, hi = store.bounds
        first = np.floor(lo / chunk).astype(np.int64)
        last = np.maximum(first, np.ceil(hi / chunk).astype(np.int64) - 1)  # hi is an outer bound
        if level.cells:
            cells = np.asarray(level.cells, np.int64)
            first, last = np.minimum(first, cells.min(0)), np.maximum(last, cells.max(0))
        return cls(tuple(first.tolist()), tuple((last - first + 1).tolist()), tuple(chunk.tolist()))

    @property
    def lower(self) -> np.ndarray:
        return np.asarray(self.origin) * np.asarray(self.chunk)

    @property
    def upper(self) -> np.ndarray:
        return self.lower + np.asarray(self.shape) * np.asarray(self.chunk)

    def to_spatial(self, cell: Cell) -> Cell:
        return tuple(c - o for c, o in zip(cell, self.origin, strict=True))

    def to_zvf(self, cell: Cell) -> Cell | None:
        if any(not 0 <= c < s for c, s in zip(cell, self.shape, strict=True)):
            return None
        return tuple(c + o for c, o in zip(cell, self.origin, strict=True))


def _whole_multiple(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """a / b as integers when every ratio is a whole number >= 1, else None."""
    ratio = a / b
    rounded = np.rint(ratio)
    return rounded.astype(np.int64) if (rounded >= 1).all() and np.allclose(ratio, rounded) else None


@dataclass(frozen=True)
class Pyramid:
    """The usable ZVF levels (finest first) and their grids over common bounds."""

    levels: tuple[LevelReader, ...]
    grids: tuple[Grid, ...]
    ratios: tuple[np.ndarray, ...]  # per level: its chunk shape / level 0's, per axis

    @classmethod
    def of(cls, store: ZVFStore) -> Pyramid:
        """The store's pyramid, from its metadata."""
        base = store.levels[0]
        levels, ratios = [base], [np.ones(len(base.chunk_shape), np.int64)]
        for level in store.levels[1:]:
            step = _whole_multiple(level.chunk_shape, levels[-1].chunk_shape)
            why = (
                "is empty"
                if not level.cells
                else "has chunks that do not nest in the finer level's"
                if step is None
                else "has bins that do not divide its chunks"
                if _whole_multiple(level.chunk_shape, level.bin_shape) is None
                else ""
            )
            if why:
                log.warning(
                    "%s: pyramid level %d %s; level of detail stops at level %d",
                    store.path,
                    level.index,
                    why,
                    levels[-1].index,
                )
                break
            assert step is not None
            levels.append(level)
            ratios.append(ratios[-1] * step)
        coarse = Grid.of(store, levels[-1])
        grids = []
        for level, ratio in zip(levels, ratios, strict=True):
            origin = np.asarray(coarse.origin) * ratios[-1] // ratio
            shape = np.asarray(coarse.shape) * ratios[-1] // ratio
            grids.append(Grid(tuple(origin.tolist()), tuple(shape.tolist()), tuple(level.chunk_shape.tolist())))
        return cls(tuple(levels), tuple(grids), tuple(ratios))

    @property
    def depth(self) -> int:
        return len(self.levels)

    def band(self, shown: list[int]) -> np.ndarray:
        """For each pyramid level an annotation can be drawn at, the shown level whose spatial level
        holds it: the finest shown level at or below it (-1: not shown). Showing every level maps
        each to itself; showing only level N (``levels/N/``) gathers everything drawn at N or coarser."""
        out = np.full(self.depth, -1, np.int64)
        for k in sorted(shown):
            out[k:] = k
        return out

    def chunk_of(self, k: int, base_cell: Cell) -> Cell:
        """The level-k chunk holding a level-0 chunk."""
        return tuple((np.asarray(base_cell) // self.ratios[k]).tolist())
