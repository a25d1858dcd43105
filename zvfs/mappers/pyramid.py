"""Level of detail for annotation layers from the ZVF resolution pyramid.

One precomputed spatial level per usable ZVF level (coarsest first), each on that level's chunk
grid, all sharing the coarsest grid's bounds (``grid_shape * chunk_size == upper - lower``). A ZVF
level is usable while its chunks nest: its chunk shape is a whole multiple of the next finer
level's, and its bin shape divides its chunk shape.

Which base point is drawn at which level: a point is *selected* at level k when it has the smallest
id hash among the candidates in its level-k bin, candidates being the points of objects that the
ZVF level keeps (all points when the store has no objects). Since bins nest, the points selected
at level k form a uniform sample of one point per occupied level-k bin, and a point selected at
level k is selected at every finer level too; it is drawn at the coarsest level that selects it,
so each point appears at exactly one level and the levels drawn together down to level k show one
point per level-k bin, as the ZVF level's metavertices do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from ..store import LevelReader, ZVFStore
from .common import Cell, Grid, id_hash

log = logging.getLogger("zvfs")


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
    @cache
    def of(cls, store: ZVFStore) -> Pyramid:
        """The store's pyramid (built once per open store)."""
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

    @cached_property
    def present(self) -> list[np.ndarray | None]:
        """Per level: sorted ids of the objects it keeps (None: the store has no objects); level 0
        keeps every object it lists."""
        if not self.levels[0].has_objects:
            return [None] * self.depth
        return [self.levels[0].object_ids, *(level.kept_ids() for level in self.levels[1:])]

    def draw_levels(self, positions: np.ndarray, ids: np.ndarray, owners: np.ndarray | None) -> np.ndarray:
        """The level each point is drawn at, for points that include every point of each
        coarsest-level chunk they touch (so every bin is complete)."""
        drawn = np.zeros(len(ids), np.int64)
        order_key = id_hash(ids)
        for k in range(1, self.depth):
            candidates = np.ones(len(ids), bool)
            if self.present[k] is not None and owners is not None:
                candidates = np.isin(owners, self.present[k])
            rows = np.flatnonzero(candidates)
            if not len(rows):
                continue
            bins = np.floor(positions[rows] / self.levels[k].bin_shape).astype(np.int64)
            order = np.lexsort((order_key[rows], *bins.T[::-1]))
            first = np.ones(len(order), bool)
            first[1:] = (np.diff(bins[order], axis=0) != 0).any(1)
            drawn[rows[order[first]]] = k
        return drawn
