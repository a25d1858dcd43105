"""Inputs written the way the neuroimaging ecosystem writes them, ingested by the ecosystem's converter.

Why this exists: stores built by hand with zarr-vectors only show that zvfs agrees with itself. Real stores
come from ``zvtools convert`` (PyPI ``zarr-vectors-tools`` 0.3.0) fed by files that nibabel, TrackVis,
MRtrix, NeuroMorpho or a mesh tool wrote. Those stores keep the source's coordinate frame, not RAS+ mm:
a TRK store holds TrackVis *voxmm* positions. So the tests need (1) files made by the same writers,
(2) the real converter, and (3) an independent ground truth for where every vertex belongs, which for
tractography is nibabel's reading (RAS+ mm). Everything here is deterministic (fixed seeds).

Facts these helpers rely on (measured with zarr-vectors 0.9.2, zarr-vectors-tools 0.3.0, nibabel 5.4.2):

- TRK: level-0 positions are the file's raw voxmm floats, bit for bit. ``crs.affine`` is the header's
  ``vox_to_ras``, which maps voxel *indices* (not voxmm) to RAS mm. The exact voxmm -> RAS+ mm map
  follows from the ``headers/trk`` fields (zvfs/coordinates.py; tests compare with nibabel).
  ``--chunk-shape`` is ignored for TRK (use ``--num-chunks``); no pyramid is built without
  ``--coarsen``/``--sparsity``.
- TCK, TRX: positions are RAS+ mm as stored; no ``crs``; axes carry no unit.
- SWC: one skeleton object (id 0); a file with several roots is refused (and the failed run leaves a
  partial store behind, which :func:`convert` removes). A pyramid on an SWC store fails.
- OBJ: one mesh object (id 0) whatever the components; duplicated and degenerate faces are kept at level 0.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: ``zvtools`` from the interpreter running the tests, so the tests use the venv's converter.
ZVTOOLS: list[str] = [sys.executable, "-m", "zarr_vectors_tools"]
CONVERT_TIMEOUT = 300.0

_TRK_VOXEL_ORDER = slice(948, 952)  # char[4] in the 1000-byte TrackVis header
_TRK_VOX_TO_RAS = slice(440, 504)  # float32[4][4]


# -- the converter -----------------------------------------------------------------------------


class ConversionError(RuntimeError):
    """``zvtools convert`` exited non-zero; the message carries its output so a test failure says why."""

    def __init__(self, cmd: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.cmd, self.returncode, self.stdout, self.stderr = list(cmd), returncode, stdout, stderr
        super().__init__(f"{' '.join(cmd)} exited {returncode}\n--- stderr\n{stderr}\n--- stdout\n{stdout}")


def convert(
    src: str | Path, dst: str | Path, *args: str | float, timeout: float = CONVERT_TIMEOUT, keep_partial: bool = False
) -> Path:
    """Run ``zvtools convert SRC DST ARGS...`` and return ``DST``.

    Raises :class:`ConversionError` (with stderr) on failure. A failed ingest can leave a half-written
    store that ``zarr_vectors.open`` still opens (an SWC forest leaves one with no objects), so unless
    ``keep_partial`` it is removed, when it was not there before the call.
    """
    dst = Path(dst)
    existed = dst.exists()
    cmd = [*ZVTOOLS, "convert", str(src), str(dst), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        if not keep_partial and not existed and dst.is_dir():
            shutil.rmtree(dst)
        raise ConversionError(cmd, proc.returncode, proc.stdout, proc.stderr)
    return dst


# -- tractography ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrkSpace:
    """The header fields that place a TrackVis file in the world (what TrackVis-writing tools set)."""

    voxel_sizes: tuple[float, float, float]
    dimensions: tuple[int, int, int]
    vox_to_ras: np.ndarray  # 4x4, voxel index -> RAS mm
    voxel_order: str

    def header(self) -> dict[str, Any]:
        """Keyword arguments for :func:`write_trk`."""
        return {
            "voxel_sizes": self.voxel_sizes,
            "dimensions": self.dimensions,
            "vox_to_ras": self.vox_to_ras,
            "voxel_order": self.voxel_order,
        }


def affine(
    voxel_sizes: Sequence[float],
    *,
    rotation_deg: Sequence[float] = (0.0, 0.0, 0.0),
    translation: Sequence[float] = (0.0, 0.0, 0.0),
    flips: Sequence[int] = (1, 1, 1),
) -> np.ndarray:
    """A voxel -> RAS mm affine: ``R(x) @ R(y) @ R(z)`` rotation of the scaled, optionally flipped axes."""
    rot = np.eye(3)
    for axis, deg in enumerate(rotation_deg):
        t = np.deg2rad(deg)
        c, s = np.cos(t), np.sin(t)
        i, j = [(1, 2), (0, 2), (0, 1)][axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = rot @ r
    out = np.eye(4)
    out[:3, :3] = rot @ np.diag(np.asarray(voxel_sizes, float) * np.asarray(flips, float))
    out[:3, 3] = translation
    return out


#: Realistic TRK coordinate frames. ``lps_order_ras_affine`` is the case where nibabel flips axes about
#: the volume's far edge, so ``dimensions`` matters; ``aniso_oblique`` has a rotation in ``vox_to_ras``.
TRK_CASES: dict[str, TrkSpace] = {
    "ras_iso": TrkSpace((2.0, 2.0, 2.0), (64, 72, 40), affine((2, 2, 2), translation=(-64, -80, -30)), "RAS"),
    "lps": TrkSpace(
        (2.0, 2.0, 2.0), (64, 72, 40), affine((2, 2, 2), translation=(64, 80, -30), flips=(-1, -1, 1)), "LPS"
    ),
    "las_hcp": TrkSpace(
        (1.25, 1.25, 1.25),
        (145, 174, 145),
        affine((1.25, 1.25, 1.25), translation=(90, -126, -72), flips=(-1, 1, 1)),
        "LAS",
    ),
    "aniso_oblique": TrkSpace(
        (1.5, 2.0, 3.0),
        (100, 90, 45),
        affine((1.5, 2, 3), rotation_deg=(17, 0, -11), translation=(-70.3, -85.1, -52.9)),
        "RAS",
    ),
    "lps_order_ras_affine": TrkSpace(
        (1.5, 2.0, 3.0),
        (100, 90, 45),
        affine((1.5, 2, 3), rotation_deg=(0, 9, 0), translation=(-70.3, -85.1, -52.9)),
        "LPS",
    ),
}


def streamlines_in_volume(
    vox_to_ras: np.ndarray, dimensions: Sequence[int], n: int = 20, *, seed: int = 0, points: tuple[int, int] = (5, 40)
) -> list[np.ndarray]:
    """``n`` float32 random-walk streamlines in RAS mm, inside the volume ``vox_to_ras`` x ``dimensions``.

    Walking in voxel index space keeps every point inside the image, as real tracking does.
    """
    rng = np.random.default_rng(seed)
    dims = np.asarray(dimensions, float)
    a = np.asarray(vox_to_ras, float)
    out = []
    for _ in range(n):
        k = int(rng.integers(*points))
        walk = rng.uniform(0.2, 0.8, 3) * (dims - 1) + np.cumsum(rng.normal(0, 0.7, (k, 3)), axis=0)
        walk = np.clip(walk, 0, dims - 1)
        out.append((walk @ a[:3, :3].T + a[:3, 3]).astype(np.float32))
    return out


def per_point_scalars(streamlines: Sequence[np.ndarray], *, seed: int = 1) -> dict[str, list[np.ndarray]]:
    """A one-channel (``fa``) and a three-channel (``rgb``) float32 value per point."""
    rng = np.random.default_rng(seed)
    return {
        "fa": [rng.random(len(s)).astype(np.float32) for s in streamlines],
        "rgb": [rng.random((len(s), 3)).astype(np.float32) for s in streamlines],
    }


def per_streamline_properties(n: int, *, seed: int = 2) -> dict[str, np.ndarray]:
    """A one-channel (``weight``) and a three-channel (``dir``) float32 value per streamline."""
    rng = np.random.default_rng(seed)
    return {"weight": rng.random(n).astype(np.float32), "dir": rng.random((n, 3)).astype(np.float32)}


def write_trk(
    path: str | Path,
    streamlines_rasmm: Sequence[np.ndarray],
    *,
    voxel_sizes: Sequence[float],
    dimensions: Sequence[int],
    vox_to_ras: np.ndarray,
    voxel_order: str = "RAS",
    scalars: Mapping[str, Sequence[np.ndarray]] | None = None,
    properties: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write a TrackVis file with nibabel, from streamlines given in RAS+ mm.

    nibabel converts to voxmm on save exactly as DIPY/scilpy-written files are made (TrkFile v2 header).
    ``scalars``: name -> one ``(N_i,)`` or ``(N_i, C)`` array per streamline (TRK "scalars", ≤ 10 names);
    ``properties``: name -> ``(S,)`` or ``(S, C)`` (TRK "properties"). Stored as float32, as TRK does.
    """
    from nibabel.streamlines import Field, Tractogram, TrkFile

    streamlines = [np.asarray(s, np.float32) for s in streamlines_rasmm]
    dpp = {
        name: [np.asarray(v, np.float32).reshape(len(s), -1) for v, s in zip(values, streamlines, strict=True)]
        for name, values in (scalars or {}).items()
    }
    dps = {name: np.asarray(v, np.float32).reshape(len(streamlines), -1) for name, v in (properties or {}).items()}
    tractogram = Tractogram(streamlines, data_per_point=dpp, data_per_streamline=dps, affine_to_rasmm=np.eye(4))
    header = {
        Field.VOXEL_SIZES: np.asarray(voxel_sizes, np.float32),
        Field.DIMENSIONS: np.asarray(dimensions, np.int16),
        Field.VOXEL_TO_RASMM: np.asarray(vox_to_ras, np.float32),
        Field.VOXEL_ORDER: voxel_order.encode("latin1"),
    }
    TrkFile(tractogram, header=header).save(str(path))
    return Path(path)


def blank_trk_fields(path: str | Path, *, voxel_order: bool = False, vox_to_ras: bool = False) -> Path:
    """Zero header fields in place, as old TrackVis/Diffusion Toolkit files have them.

    nibabel then reads an empty ``voxel_order`` as ``LPS`` and an unrecorded (all-zero) ``vox_to_ras`` as the
    identity. zvtools stores both verbatim (``""``, sixteen zeros), and its own TRK exporter gets them wrong
    (treats "" as RAS; crashes on the zero matrix), so these are the cases a reader must special-case.
    """
    raw = bytearray(Path(path).read_bytes())
    if voxel_order:
        raw[_TRK_VOXEL_ORDER] = bytes(4)
    if vox_to_ras:
        raw[_TRK_VOX_TO_RAS] = bytes(64)
    Path(path).write_bytes(bytes(raw))
    return Path(path)


def write_tck(path: str | Path, streamlines_rasmm: Sequence[np.ndarray]) -> Path:
    """Write an MRtrix ``.tck`` with nibabel. TCK positions are RAS+ mm by definition (no affine, no scalars)."""
    from nibabel.streamlines import TckFile, Tractogram

    streamlines = [np.asarray(s, np.float32) for s in streamlines_rasmm]
    TckFile(Tractogram(streamlines, affine_to_rasmm=np.eye(4))).save(str(path))
    return Path(path)


def rasmm_truth(path: str | Path) -> list[np.ndarray]:
    """Streamlines of a TRK/TCK/... file as nibabel reads them: RAS+ mm, float64 copies. The ground truth.

    nibabel's header warnings (legacy TRK fields, see :func:`blank_trk_fields`) are silenced: its
    interpretation is the one being tested against.
    """
    import nibabel as nib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [np.array(s, dtype=np.float64) for s in nib.streamlines.load(str(path)).streamlines]


def apply_affine(a: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (N,3) through the 4x4 ``a``, in float64."""
    p = np.asarray(points, float)
    return p @ np.asarray(a, float)[:3, :3].T + np.asarray(a, float)[:3, 3]


# -- neuron morphology (SWC) -------------------------------------------------------------------


def swc_tree(
    n: int, origin: Sequence[float], *, first_id: int = 1, seed: int = 0, branch_every: int = 7, step: float = 3.0
) -> np.ndarray:
    """One rooted tree as SWC rows ``(id, type, x, y, z, radius, parent)``: a soma root (type 1, parent -1)
    and ``n - 1`` neurite nodes (types 2/3), branching every ``branch_every`` nodes. Ids start at ``first_id``."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, 7))
    for k in range(n):
        node = first_id + k
        if k == 0:
            parent, xyz, kind, radius = -1, np.asarray(origin, float), 1, 5.0
        else:
            parent = first_id + (k - 1 if k % branch_every else max(0, k - 4))
            xyz = rows[parent - first_id, 2:5] + rng.normal(0, step, 3)
            kind, radius = (3 if k % 2 else 2), float(rng.uniform(0.2, 2.0))
        rows[k] = (node, kind, *np.round(xyz, 4), round(radius, 4), parent)
    return rows


def write_swc(
    path: str | Path,
    trees: Sequence[np.ndarray],
    *,
    comments: Sequence[str] = ("ORIGINAL_SOURCE zvfs test suite", "SCALE 1.0 1.0 1.0"),
) -> Path:
    """Write SWC as NeuroMorpho/Vaa3D do: ``#`` header lines, then ``id type x y z radius parent`` per node.

    ``trees``: one ``(N, 7)`` row array per tree (see :func:`swc_tree`); several trees make a forest,
    which zvtools refuses. Ids and parents must be unique across trees.
    """
    lines = [f"# {c}" for c in comments] + ["# id type x y z radius parent"]
    for tree in trees:
        for node, kind, x, y, z, radius, parent in np.asarray(tree, float):
            lines.append(f"{int(node)} {int(kind)} {x:.4f} {y:.4f} {z:.4f} {radius:.4f} {int(parent)}")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


# -- meshes (OBJ) ------------------------------------------------------------------------------


def uv_sphere(center: Sequence[float], radius: float, nu: int = 12, nv: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A closed, consistently wound UV sphere: ``(vertices (V,3) float64, faces (F,3) int64)``."""
    c = np.asarray(center, float)
    verts = [c + np.array([0.0, 0.0, radius])]
    for i in range(1, nv):
        th = np.pi * i / nv
        for j in range(nu):
            ph = 2 * np.pi * j / nu
            verts.append(c + radius * np.array([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)]))
    verts.append(c - (0, 0, radius))
    faces = [(0, 1 + j, 1 + (j + 1) % nu) for j in range(nu)]
    for i in range(nv - 2):
        for j in range(nu):
            a, b = 1 + i * nu + j, 1 + i * nu + (j + 1) % nu
            faces += [(a, a + nu, b), (b, a + nu, b + nu)]
    last, base = len(verts) - 1, 1 + (nv - 2) * nu
    faces += [(base + j, last, base + (j + 1) % nu) for j in range(nu)]
    return np.array(verts), np.array(faces, dtype=np.int64)


@dataclass(frozen=True)
class AwkwardMesh:
    """Two sphere components plus the defects real meshes carry, with counts to check against."""

    vertices: np.ndarray
    faces: np.ndarray
    clean_faces: int  # the two spheres' faces
    duplicate_faces: int  # exact copies plus copies with rotated winding
    repeated_index_faces: int  # a vertex index used twice or three times
    zero_area_faces: int  # distinct indices, collinear vertices


def awkward_mesh() -> AwkwardMesh:
    """Two disjoint UV spheres in one mesh, 5 exact duplicate faces, 3 duplicates with rotated winding,
    3 faces repeating a vertex index and 1 zero-area face over 3 extra collinear vertices."""
    v1, f1 = uv_sphere((30, 30, 30), 12)
    v2, f2 = uv_sphere((70, 60, 40), 9)
    vertices = np.vstack([v1, v2, [[10, 10, 10], [11, 11, 11], [12, 12, 12]]])
    clean = np.vstack([f1, f2 + len(v1)])
    line = len(v1) + len(v2)
    faces = np.vstack(
        [clean, clean[:5], clean[5:8][:, [1, 2, 0]], [[0, 0, 1], [3, 4, 3], [7, 7, 7]], [[line, line + 1, line + 2]]]
    )
    return AwkwardMesh(vertices, faces, len(clean), 8, 3, 1)


def write_obj(
    path: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    normals: np.ndarray | None = None,
    comment: str = "zvfs test suite",
) -> Path:
    """Write a Wavefront OBJ as mesh tools do: ``v x y z`` lines, then 1-based ``f a b c`` (``f a//a ...`` with
    per-vertex ``normals``, which zvtools keeps as a ``normal`` vertex attribute). ``faces`` are 0-based."""
    out = [f"# {comment}", f"# {len(vertices)} vertices, {len(faces)} faces"]
    out += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices, float)]
    if normals is not None:
        out += [f"vn {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(normals, float)]
    for face in np.asarray(faces, np.int64) + 1:
        out.append("f " + " ".join(f"{i}//{i}" if normals is not None else str(i) for i in face))
    Path(path).write_text("\n".join(out) + "\n")
    return Path(path)
