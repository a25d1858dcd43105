"""The numeric types that every precomputed format shares, and the one check that values fit one.

Annotation properties, skeleton vertex attributes and segment-property numbers all take the same
seven little-endian types (the client reads them through JavaScript typed arrays); a ZVF store may
hold 64-bit and half-precision values too, which are written narrowed when every value fits.
"""

from __future__ import annotations

import numpy as np

# precomputed type name -> little-endian numpy dtype
TYPES: dict[str, np.dtype] = {
    name: np.dtype(code)
    for name, code in (
        ("float32", "<f4"),
        ("uint32", "<u4"),
        ("int32", "<i4"),
        ("uint16", "<u2"),
        ("int16", "<i2"),
        ("uint8", "u1"),
        ("int8", "i1"),
    )
}
# stored dtypes without a precomputed type -> the type they are written as
NARROWED = {"int64": "int32", "uint64": "uint32", "float64": "float32", "float16": "float32", "bool": "uint8"}


def type_for(dtype: np.dtype) -> str:
    """The precomputed type a stored dtype is written as (ValueError if there is none)."""
    name = np.dtype(dtype).name
    if name in TYPES:
        return name
    if name in NARROWED:
        return NARROWED[name]
    raise ValueError(f"unsupported attribute dtype {name}")


def misfit(values: np.ndarray, type_name: str) -> str | None:
    """Why ``values`` cannot be written as ``type_name`` unchanged (wrap, truncation, overflow), or
    None when they can. NaN and infinities fit a float type; float values fit an integer type only
    when they are whole and in range."""
    values = np.asarray(values)
    dtype = TYPES[type_name]
    if values.dtype.kind not in "biuf":
        return f"{values.dtype} values are not numbers"
    if not values.size or values.dtype == dtype:
        return None
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            overflow = np.isinf(values.astype(dtype)) & np.isfinite(values)
        return f"values beyond the {type_name} range" if overflow.any() else None
    if values.dtype.kind == "f" and not np.all(np.isfinite(values) & (values == np.round(values))):
        return f"non-integer values cannot be written as {type_name}"
    limits, lo, hi = np.iinfo(dtype), values.min(), values.max()
    if lo < limits.min or hi > limits.max:
        return f"values in [{lo}, {hi}] do not fit {type_name} [{limits.min}, {limits.max}]"
    return None


def cast(values: np.ndarray, type_name: str, what: str) -> np.ndarray:
    """``values`` as ``type_name`` (little-endian), or ValueError naming ``what`` where one would change."""
    why = misfit(values, type_name)
    if why is not None:
        raise ValueError(f"{what}: {why}")
    with np.errstate(over="ignore"):
        return np.asarray(values).astype(TYPES[type_name])
