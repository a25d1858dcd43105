"""Every coordinate statement a store carries, resolved to one physical space.

Strongest first (``docs/mapping.md``, "Coordinates"):

1. ``--transform`` / ``--units`` given by the user: the transform composes on top of the store's
   own chain (it maps the store's physical space), or replaces it with ``--ignore-store-space``;
   the units name the final space's units.
2. A converter header that defines its space exactly: ``headers/trk`` (TrackVis voxel-millimetres
   to RAS+ millimetres from the header's voxel sizes, dimensions, voxel order and ``vox_to_ras``,
   as nibabel reads a TRK file; ``space: rasmm`` stores are RAS+ mm already).
3. The ``crs`` object (``input_space``, ``output_space``, ``units``, ``affine``): an affine from voxel
   indices is applied; ``voxmm`` needs the TRK header (the affine the converter writes maps voxel
   indices, not voxel-millimetres); an input already in the output space is the identity; an LPS
   output is turned to RAS+.
4. The NGFF ``coordinateTransformations`` of level 0: zarr-vectors keeps its bin bookkeeping there
   (scale 1, translation half a bin or a chunk), which is no statement about the vertices; a
   ``zarr_vectors.coordinate_offset`` (world = stored + offset) is applied.
5. The axes' units. Streamlines whose axes carry none (and nothing above says otherwise) are RAS+
   millimetres, as TCK and TRX define them (zvtools keeps no unit for either): said in a warning.

Anything not understood is ignored with a one-line warning naming the store and what was ignored;
nothing is guessed silently. Whatever decided, :class:`Resolution` says so (``zvfs info``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("zvfs")

ANATOMICAL = {"rasmm": "RAS", "ras": "RAS", "lpsmm": "LPS", "lps": "LPS", "scanner": "RAS", "world": None}
VOXELS = {"voxel", "voxels", "vox", "ijk", "index", "indices"}
_LETTERS = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}


@dataclass(frozen=True)
class StoreCoordinates:
    """The coordinate metadata a store carries (read by :mod:`zvfs.store`)."""

    rank: int
    units: tuple[str, ...]  # of the axes
    crs: Mapping[str, Any] | None = None
    trk: Mapping[str, Any] | None = None  # the ``headers/trk`` group's attributes
    level0: Sequence[Mapping[str, Any]] = ()  # NGFF coordinateTransformations of level 0
    offset: Sequence[float] | None = None  # zarr_vectors.coordinate_offset
    bin_shape: Sequence[float] = ()
    chunk_shape: Sequence[float] = ()
    kind: str = ""  # the geometry type


@dataclass
class Resolution:
    """The resolved space: ``affine`` (D, D+1) from stored to physical coordinates in ``units``,
    ``orientation`` ('RAS' for an anatomical space, else None), and what decided it."""

    affine: np.ndarray
    units: tuple[str, ...]
    orientation: str | None = None
    decided: list[str] = field(default_factory=list)  # the statements used, strongest last
    ignored: list[str] = field(default_factory=list)  # the statements ignored, and why


def homogeneous(affine: np.ndarray) -> np.ndarray:
    """(D, D+1) -> (D+1, D+1)."""
    rank = affine.shape[0]
    return np.vstack([affine, np.eye(1, rank + 1, rank)])


def _axis_codes(vox_to_ras: np.ndarray) -> str:
    """The world direction each voxel axis of a voxel-to-RAS affine follows most closely ('RAS',
    'LPS', 'ASR', ...): the largest remaining entries first, one world axis per voxel axis."""
    m = vox_to_ras[:3, :3]
    codes = ["?"] * 3
    used: set[int] = set()
    for _, voxel, world in sorted(((abs(m[w, v]), v, w) for v in range(3) for w in range(3)), reverse=True):
        if codes[voxel] == "?" and world not in used:
            codes[voxel] = "RAS"[world] if m[world, voxel] > 0 else "LPI"[world]
            used.add(world)
    return "".join(codes)


def trackvis_to_rasmm(header: Mapping[str, Any]) -> np.ndarray:
    """The 4x4 affine from TrackVis voxel-millimetres to RAS+ millimetres, as nibabel reads TRK files:
    voxel-mm to voxel indices (divide by the voxel sizes, minus half a voxel: TrackVis counts from a
    voxel's corner), the header's voxel order turned into the orientation of ``vox_to_ras`` (a
    flipped axis counting down from ``dimensions - 1``), then ``vox_to_ras``. An all-zero
    ``vox_to_ras`` is the identity and an empty voxel order LPS, as in nibabel."""
    sizes = np.asarray(header["voxel_size"], np.float64)
    dims = np.asarray(header["dimensions"], np.float64)
    v = np.asarray(header["vox_to_ras"], np.float64).reshape(4, 4)
    if v[3, 3] == 0:
        v = np.eye(4)
    order = str(header.get("voxel_order") or "").strip("\x00 ").upper() or "LPS"
    to_index = np.eye(4)
    to_index[:3, :3] = np.diag(1.0 / sizes)
    to_index[:3, 3] = -0.5
    target = _axis_codes(v)
    reorder = np.eye(4)
    reorder[:3, :3] = 0
    for k, letter in enumerate(order):
        world, sign = _LETTERS[letter]
        j = next(i for i, code in enumerate(target) if _LETTERS[code][0] == world)
        flip = sign * _LETTERS[target[j]][1]
        reorder[k, j] = flip
        if flip < 0:
            reorder[k, 3] = dims[k] - 1
    return v @ reorder @ to_index


def _space_name(name: object) -> str:
    return str(name or "").strip().lower().replace(" ", "").replace("_", "").replace("+", "")


def resolve(meta: StoreCoordinates, where: str) -> Resolution:
    """The store's own coordinate chain (statements 2-5 of the module docstring)."""
    rank = meta.rank
    out = Resolution(np.hstack([np.eye(rank), np.zeros((rank, 1))]), meta.units)
    _ngff(meta, out)
    if rank == 3 and meta.trk is not None and _space_name(meta.trk.get("space") or "voxmm") == "voxmm":
        try:
            to_ras = trackvis_to_rasmm(meta.trk)
        except (KeyError, ValueError, StopIteration) as exc:
            out.ignored.append(f"headers/trk: unusable ({exc})")
        else:
            out.affine = (to_ras @ homogeneous(out.affine))[:rank]
            out.units, out.orientation = ("mm",) * rank, "RAS"
            out.decided.append("headers/trk: TrackVis voxel-mm -> RAS+ mm (voxel sizes, order, vox_to_ras)")
            if meta.crs is not None:
                _read_with_header(meta.crs, out)
            return _report(out, where)
    if meta.trk is not None and _space_name(meta.trk.get("space")) == "rasmm":
        out.units, out.orientation = ("mm",) * rank, "RAS"
        out.decided.append("headers/trk: space rasmm (RAS+ mm as stored)")
    if meta.crs is not None:
        _crs(meta, out)
    if meta.kind == "streamline" and not out.decided and not any(out.units):
        out.units, out.orientation = ("mm",) * rank, "RAS"
        out.decided.append("streamlines without units: RAS+ mm, as TCK and TRX define them")
        log.warning("%s: axes carry no unit; streamlines taken as RAS+ mm (TCK, TRX); --units says otherwise", where)
    return _report(out, where)


def _ngff(meta: StoreCoordinates, out: Resolution) -> None:
    """Level 0's NGFF transforms: bookkeeping, or the coordinate offset."""
    rank = meta.rank
    scale, translation = np.ones(rank), np.zeros(rank)
    for t in meta.level0:
        if t.get("type") == "scale":
            scale = np.asarray(t.get("scale"), np.float64)
        elif t.get("type") == "translation":
            translation = np.asarray(t.get("translation"), np.float64)
    if meta.offset is not None:
        offset = np.asarray(meta.offset, np.float64)
        out.affine[:, -1] += offset
        out.decided.append(f"zarr_vectors.coordinate_offset: + {offset.tolist()}")
        if np.allclose(translation, offset):
            return
    bookkeeping = [np.zeros(rank), np.asarray(meta.bin_shape) / 2, np.asarray(meta.chunk_shape) / 2]
    if not np.allclose(scale, 1) or not any(len(b) == rank and np.allclose(translation, b) for b in bookkeeping):
        out.ignored.append(
            f"multiscales level 0: scale {scale.tolist()}, translation {translation.tolist()} (zarr-vectors keeps "
            "its bin bookkeeping there; not applied to the vertices)"
        )


def _read_with_header(crs: Mapping[str, Any], out: Resolution) -> None:
    """A ``crs`` beside a TRK header: consistent (voxmm -> RAS mm, the converter's own statement,
    which the header makes exact), or contradicting it (ignored, with a warning)."""
    source, target = _space_name(crs.get("input_space")), _space_name(crs.get("output_space"))
    if source == "voxmm" and ANATOMICAL.get(target) == "RAS":
        out.decided.append("crs: voxmm -> RASmm, made exact by the TRK header")
    else:
        out.ignored.append(
            f"crs: {crs.get('input_space')} -> {crs.get('output_space')} contradicts the TRK header (voxmm)"
        )


def _crs(meta: StoreCoordinates, out: Resolution) -> None:
    crs, rank = meta.crs, meta.rank
    assert crs is not None
    source, target = _space_name(crs.get("input_space")), _space_name(crs.get("output_space"))
    units = crs.get("units")
    if target not in ANATOMICAL and target not in VOXELS:
        out.ignored.append(f"crs: output space {crs.get('output_space')!r} is not one zvfs knows")
        return
    if source == target:
        out.decided.append(f"crs: stored in {crs.get('output_space')} already")
    elif source in VOXELS:
        try:
            affine = np.asarray(crs["affine"], np.float64).reshape(rank + 1, rank + 1)
        except (KeyError, ValueError, TypeError) as exc:
            out.ignored.append(f"crs: unusable affine ({exc})")
            return
        out.affine = (affine @ homogeneous(out.affine))[:rank]
        out.decided.append(f"crs: affine from {crs.get('input_space')} to {crs.get('output_space')}")
    elif source == "voxmm":
        out.ignored.append(
            "crs: voxmm needs the TRK header's voxel sizes (its affine maps voxel indices, not voxel-mm); "
            "no usable headers/trk"
        )
        return
    else:
        out.ignored.append(f"crs: input space {crs.get('input_space')!r} is not one zvfs knows")
        return
    if units:
        out.units = (str(units),) * rank
    orientation = ANATOMICAL.get(target)
    if orientation == "LPS" and rank == 3:
        out.affine = np.diag([-1.0, -1.0, 1.0]) @ out.affine
        out.decided.append("crs: LPS output turned to RAS+")
    out.orientation = "RAS" if orientation else out.orientation


def _report(out: Resolution, where: str) -> Resolution:
    for what in out.ignored:
        log.warning("%s: coordinate metadata ignored: %s", where, what)
    return out
