"""The coordinate space zvfs writes: store coordinates through an optional affine, in the store's
(or overridden) units.

Skeletons and meshes take any affine in their ``transform``; annotation layers have only
``dimensions``, so their geometry, bounds and grid are written through the affine, which must then
be axis-aligned with positive scales (a voxel size and an offset) to keep the spatial grid a grid.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .errors import UsageError
from .units import Axis, dimensions, si_unit


def parse_affine(text: str, rank: int = 3) -> np.ndarray:
    """A (rank, rank+1) affine from JSON (nested or flat, (rank+1)^2 or rank*(rank+1) numbers) or
    from a ``.json``, ``.npy`` or whitespace-separated text file."""
    if os.path.isfile(text):
        if text.endswith(".npy"):
            values = np.load(text)
        elif text.endswith(".json"):
            with open(text) as f:
                values = np.asarray(json.load(f))
        else:
            values = np.loadtxt(text)
    else:
        try:
            values = np.asarray(json.loads(text), np.float64)
        except ValueError:
            raise UsageError(f"--transform: {text!r} is neither a file nor a JSON matrix") from None
    flat = np.asarray(values, np.float64).reshape(-1)
    if flat.size == (rank + 1) ** 2:
        square = flat.reshape(rank + 1, rank + 1)
        if not np.allclose(square[rank], [0] * rank + [1]):
            raise UsageError("--transform: the last row of a 4x4 affine must be 0 0 0 1")
        return square[:rank]
    if flat.size == rank * (rank + 1):
        return flat.reshape(rank, rank + 1)
    raise UsageError(f"--transform: expected {rank + 1}x{rank + 1} or {rank}x{rank + 1} numbers, got {flat.size}")


def parse_units(text: str, rank: int) -> tuple[str, ...]:
    """'micrometer' (every axis) or 'um,um,nm' (one per axis)."""
    units = tuple(u.strip() for u in text.split(","))
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


@dataclass(frozen=True)
class Space:
    """Axes (names and units) and the affine from store coordinates to written coordinates."""

    axes: tuple[Axis, ...]
    affine: np.ndarray  # (D, D+1)
    where: str = ""

    @classmethod
    def of(
        cls, axes: Sequence[Axis], where: str, affine: np.ndarray | None = None, units: Sequence[str] | None = None
    ) -> Space:
        rank = len(axes)
        if units is not None:
            axes = [replace(a, unit=u) for a, u in zip(axes, units, strict=True)]
        if affine is None:
            affine = np.hstack([np.eye(rank), np.zeros((rank, 1))])
        if affine.shape != (rank, rank + 1):
            raise UsageError(f"{where}: a {affine.shape[0]}x{affine.shape[1]} affine for {rank} axes")
        return cls(tuple(axes), np.asarray(affine, np.float64), where)

    @property
    def identity(self) -> bool:
        rank = len(self.axes)
        return bool(np.array_equal(self.affine, np.hstack([np.eye(rank), np.zeros((rank, 1))])))

    def dimensions(self) -> dict[str, list]:
        return dimensions(self.axes, self.where)

    def check_axis_aligned(self, what: str) -> None:
        linear = self.affine[:, :-1]
        if not (np.count_nonzero(linear - np.diag(np.diag(linear))) == 0 and (np.diag(linear) > 0).all()):
            raise UsageError(
                f"{self.where}: {what} need an axis-aligned transform with positive scales "
                "(voxel size and offset); rotations apply to skeletons and meshes only"
            )

    def points(self, positions: np.ndarray) -> np.ndarray:
        """Store positions (N, D) in written coordinates, float32."""
        if self.identity:
            return positions
        p = np.asarray(positions, np.float64)
        return (p @ self.affine[:, :-1].T + self.affine[:, -1]).astype(np.float32)

    def lengths(self, sizes: Sequence[float]) -> np.ndarray:
        """Axis-aligned extents (e.g. chunk sizes) in written coordinates."""
        return np.asarray(sizes, np.float64) * np.diag(self.affine[:, :-1])

    def to_nanometres(self) -> list[float]:
        """Row-major 3x4 ``transform`` from store coordinates to nanometres (unit-less axes as they are)."""
        scales = []
        for axis in self.axes:
            scale, unit = si_unit(axis.unit)
            scales.append(float(f"{scale / 1e-9:.12g}") if unit == "m" else 1.0)  # 1e-6/1e-9 is not 1000.0
        return (np.diag(scales) @ self.affine).reshape(-1).tolist()
