"""The coordinate space zvfs writes: the store's own coordinate chain (:mod:`zvfs.coordinates`),
then the user's ``--transform`` and ``--units``, as one affine from stored coordinates to physical
ones and the physical axes' units.

Skeletons and meshes take any affine in their ``transform``. Annotation layers have only
``dimensions``, so their files are written in a :class:`Frame`: through the whole affine when its
linear part only scales, flips and swaps axes (the spatial grid then stays a grid: its cells are
swapped and flipped alike), else in stored coordinates with the affine left to the viewer (``zvfs
link`` and ``zvfs view`` put it in the layer's source transform).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike

from .coordinates import StoreCoordinates, homogeneous, resolve
from .errors import UsageError
from .units import Axis, dimensions, si_unit


def parse_affine(value: str | ArrayLike, rank: int = 3) -> np.ndarray:
    """A (rank, rank+1) affine from an array-like or from text: JSON (nested or flat, (rank+1)^2 or
    rank*(rank+1) numbers) or a ``.json``, ``.npy`` or whitespace-separated text file."""
    if isinstance(value, str) and os.path.isfile(value):
        if value.endswith(".npy"):
            values = np.load(value)
        elif value.endswith(".json"):
            with open(value) as f:
                values = np.asarray(json.load(f))
        else:
            values = np.loadtxt(value)
    elif isinstance(value, str):
        try:
            values = np.asarray(json.loads(value), np.float64)
        except ValueError:
            raise UsageError(f"--transform: {value!r} is neither a file nor a JSON matrix") from None
    else:
        values = np.asarray(value, np.float64)
    flat = np.asarray(values, np.float64).reshape(-1)
    if flat.size == (rank + 1) ** 2:
        square = flat.reshape(rank + 1, rank + 1)
        if not np.allclose(square[rank], [0] * rank + [1]):
            raise UsageError("--transform: the last row of a 4x4 affine must be 0 0 0 1")
        return square[:rank]
    if flat.size == rank * (rank + 1):
        return flat.reshape(rank, rank + 1)
    raise UsageError(f"--transform: expected {rank + 1}x{rank + 1} or {rank}x{rank + 1} numbers, got {flat.size}")


def parse_units(value: str | Sequence[str], rank: int) -> tuple[str, ...]:
    """'micrometer' (every axis), 'um,um,nm' or a sequence (one per axis)."""
    units = tuple(u.strip() for u in (value.split(",") if isinstance(value, str) else value))
    if len(units) == 1:
        units *= rank
    if len(units) != rank:
        raise UsageError(f"--units: {len(units)} units for {rank} axes")
    for unit in units:
        try:
            si_unit(unit)
        except KeyError:
            raise UsageError(f"--units: Neuroglancer cannot express the unit {unit!r}") from None
    return units


def identity(rank: int) -> np.ndarray:
    return np.hstack([np.eye(rank), np.zeros((rank, 1))])


@dataclass(frozen=True)
class Frame:
    """Where an annotation layer's files live: stored coordinates through ``affine`` (whose linear
    part is a scaled signed permutation: physical axis ``i`` is stored axis ``perm[i]``, reversed
    where ``signs[i]`` is -1), in ``axes``; ``viewer`` is the rest of the way to the physical space
    (None when the files are physical already), for the viewer to apply."""

    affine: np.ndarray
    perm: tuple[int, ...]
    signs: tuple[int, ...]
    axes: tuple[Axis, ...]
    viewer: np.ndarray | None

    def points(self, positions: np.ndarray) -> np.ndarray:
        """Store positions (N, D) in the files' coordinates, float32."""
        return through(self.affine, positions)

    def grid(self, shape: ArrayLike, chunk: ArrayLike, lower: ArrayLike) -> tuple:
        """A stored spatial grid (shape, chunk size, lower corner) in the files' coordinates:
        (shape, chunk size, lower bound, upper bound)."""
        cells, size, low = np.asarray(shape), np.asarray(chunk, np.float64), np.asarray(lower, np.float64)
        corners = self.points(np.asarray([low, low + cells * size])).astype(np.float64)
        scales = np.abs(self.affine[np.arange(len(self.perm)), list(self.perm)])
        out_shape, out_chunk = cells[list(self.perm)], size[list(self.perm)] * scales
        first = corners.min(0)
        return tuple(out_shape.tolist()), tuple(out_chunk.tolist()), first, first + out_shape * out_chunk

    def cell(self, stored: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
        """The files' spatial cell of a stored spatial cell (of a grid of ``shape``, stored axes)."""
        return tuple(
            int(stored[p]) if s > 0 else int(shape[p]) - 1 - int(stored[p])
            for p, s in zip(self.perm, self.signs, strict=True)
        )

    def stored_cell(self, cell: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
        """:meth:`cell` inverted."""
        out = [0] * len(cell)
        for c, p, s in zip(cell, self.perm, self.signs, strict=True):
            out[p] = int(c) if s > 0 else int(shape[p]) - 1 - int(c)
        return tuple(out)


def through(affine: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(N, D) positions through a (D, D+1) affine, float32 (as they are when it is the identity)."""
    if np.array_equal(affine, identity(affine.shape[0])):
        return positions
    p = np.asarray(positions, np.float64)
    return (p @ affine[:, :-1].T + affine[:, -1]).astype(np.float32)


@dataclass(frozen=True)
class Space:
    """The physical space written: its axes (names and units) and the affine from stored
    coordinates to it, with the statements that decided it."""

    axes: tuple[Axis, ...]
    affine: np.ndarray  # (D, D+1)
    where: str = ""
    stored_axes: tuple[Axis, ...] = ()
    orientation: str | None = None  # 'RAS' for an anatomical space
    decided: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        axes: Sequence[Axis],
        where: str,
        affine: np.ndarray | None = None,
        units: Sequence[str] | None = None,
        coordinates: StoreCoordinates | None = None,
        ignore_store: bool = False,
    ) -> Space:
        """The store's chain (from ``coordinates``, unless ``ignore_store``), then ``affine`` on top,
        in ``units`` when given."""
        rank = len(axes)
        chain = resolve(coordinates, where) if coordinates is not None and not ignore_store else None
        total = identity(rank) if chain is None else chain.affine
        out_units = tuple(a.unit for a in axes) if chain is None else chain.units
        decided = [] if chain is None else list(chain.decided)
        if affine is not None:
            affine = np.asarray(affine, np.float64)
            if affine.shape != (rank, rank + 1):
                raise UsageError(f"{where}: a {affine.shape[0]}x{affine.shape[1]} affine for {rank} axes")
            total = (homogeneous(affine) @ homogeneous(total))[:rank]
            decided.append("--transform" + (" (the store's own coordinates ignored)" if ignore_store else ""))
        if units is not None:
            out_units = tuple(units)
            decided.append(f"--units {','.join(out_units)}")
        return cls(
            tuple(replace(a, unit=u) for a, u in zip(axes, out_units, strict=True)),
            total,
            where,
            tuple(axes),
            None if chain is None else chain.orientation,
            tuple(decided),
            () if chain is None else tuple(chain.ignored),
        )

    def dimensions(self) -> dict[str, list]:
        return dimensions(self.axes, self.where)

    def points(self, positions: np.ndarray) -> np.ndarray:
        """Store positions (N, D) in physical coordinates, float32."""
        return through(self.affine, positions)

    def to_nanometres(self) -> list[float]:
        """Row-major 3x4 ``transform`` from store coordinates to nanometres (unit-less axes as they are)."""
        return (np.diag(_nanometres(self.axes)) @ self.affine).reshape(-1).tolist()

    @cached_property
    def frame(self) -> Frame:
        """Where annotation files are written (see :class:`Frame`)."""
        rank = len(self.axes)
        linear = self.affine[:, :-1]
        perm = np.argmax(np.abs(linear), axis=1)
        monomial = sorted(perm.tolist()) == list(range(rank)) and np.count_nonzero(linear) == rank
        if monomial:
            signs = np.sign(linear[np.arange(rank), perm]).astype(int)
            return Frame(self.affine, tuple(perm.tolist()), tuple(signs.tolist()), self.axes, None)
        return Frame(identity(rank), tuple(range(rank)), (1,) * rank, self.stored_axes or self.axes, self.affine)


def _nanometres(axes: Sequence[Axis]) -> list[float]:
    """Per axis: nanometres per unit (unit-less axes: 1)."""
    scales = []
    for axis in axes:
        scale, unit = si_unit(axis.unit)
        scales.append(float(f"{scale / 1e-9:.12g}") if unit == "m" else 1.0)  # 1e-6/1e-9 is not 1000.0
    return scales
