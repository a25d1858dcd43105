"""Store axes and units -> Neuroglancer coordinate-space ``dimensions`` (SI base units)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import StoreError

# OME-NGFF / UDUNITS space and time unit names -> (scale, SI unit)
_UNITS: dict[str, tuple[float, str]] = {
    "": (1.0, ""),
    "angstrom": (1e-10, "m"),
    "picometer": (1e-12, "m"),
    "nanometer": (1e-9, "m"),
    "micrometer": (1e-6, "m"),
    "micron": (1e-6, "m"),
    "millimeter": (1e-3, "m"),
    "centimeter": (1e-2, "m"),
    "decimeter": (1e-1, "m"),
    "meter": (1.0, "m"),
    "kilometer": (1e3, "m"),
    "femtometer": (1e-15, "m"),
    "nm": (1e-9, "m"),
    "um": (1e-6, "m"),
    "µm": (1e-6, "m"),
    "mm": (1e-3, "m"),
    "cm": (1e-2, "m"),
    "m": (1.0, "m"),
    "second": (1.0, "s"),
    "millisecond": (1e-3, "s"),
    "microsecond": (1e-6, "s"),
    "nanosecond": (1e-9, "s"),
    "minute": (60.0, "s"),
    "hour": (3600.0, "s"),
    "s": (1.0, "s"),
    "ms": (1e-3, "s"),
    "voxel": (1.0, ""),
    "pixel": (1.0, ""),
    "unitless": (1.0, ""),
}


@dataclass(frozen=True)
class Axis:
    """A store axis: its name and unit (as the store declares them)."""

    name: str
    unit: str


_NAME = re.compile(r"^[a-zA-Z][a-zA-Z_0-9]*$")


def si_unit(unit: str) -> tuple[float, str]:
    """'nanometer' -> (1e-9, 'm'); raises KeyError for units Neuroglancer cannot express."""
    return _UNITS[unit.strip().lower() if unit.strip().lower() in _UNITS else unit.strip()]


def dimensions(axes: Sequence[Axis], where: str) -> dict[str, list]:
    """Neuroglancer ``dimensions`` for the store's axes, in store order."""
    out: dict[str, list] = {}
    for i, axis in enumerate(axes):
        name = axis.name if _NAME.match(axis.name) else f"d{i}"
        if name in out:
            raise StoreError(f"{where}: duplicate axis name {axis.name!r}")
        try:
            scale, unit = si_unit(axis.unit)
        except KeyError:
            raise StoreError(
                f"{where}: axis {axis.name!r} has unit {axis.unit!r}, which Neuroglancer cannot express"
            ) from None
        out[name] = [scale, unit]
    return out
