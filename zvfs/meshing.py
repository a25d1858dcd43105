"""Mesh simplification for coarse levels of detail: quadric edge collapse (``fast-simplification``).

Pure numpy in and out. The simplifier takes a face count; a vertex count ``V`` is turned into one
with Euler's formula ``F = 2V - B - 2χ`` (``B`` boundary edges, ``χ`` the Euler characteristic,
which edge collapses keep), the boundary shrinking with the square root of the vertex reduction as
a length does against an area. A mesh is never reduced below :data:`MIN_FACES` faces (a
tetrahedron), nor below its own face count.
"""

from __future__ import annotations

import math
import threading

import fast_simplification
import numpy as np

MIN_FACES = 4

Mesh = tuple[np.ndarray, np.ndarray]  # vertices float (N, 3), faces int (F, 3)

_LOCK = threading.Lock()  # the C++ simplifier keeps one global mesh per process


def weld(vertices: np.ndarray, faces: np.ndarray) -> Mesh:
    """Merge vertices at equal positions and drop unreferenced ones, so that a triangle soup
    becomes a connected surface the simplifier can collapse."""
    v = np.asarray(vertices, np.float64).reshape(-1, 3)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    used = np.unique(f)
    points, inverse = np.unique(v[used], axis=0, return_inverse=True)
    remap = np.zeros(len(v), np.int64)
    remap[used] = inverse.reshape(-1)
    return points, remap[f]


def face_target(n_vertices: int, faces: np.ndarray, ratio: float) -> int:
    """Faces of the mesh reduced to ``ratio`` of its ``n_vertices`` (all referenced), by Euler."""
    edges, uses = np.unique(np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), 1), axis=0, return_counts=True)
    boundary = int((uses == 1).sum())
    euler = n_vertices - len(edges) + len(faces)
    return round(2 * n_vertices * ratio - boundary * math.sqrt(ratio) - 2 * euler)


def simplify(vertices: np.ndarray, faces: np.ndarray, ratio: float) -> Mesh:
    """The welded mesh (:func:`weld`) reduced to about ``ratio`` (>= 0) of its vertices by quadric
    edge collapse; not reduced when ``ratio >= 1`` or it has too few faces."""
    v, f = weld(vertices, faces)
    if ratio >= 1 or len(f) <= MIN_FACES:
        return v, f
    target = max(face_target(len(v), f, ratio), MIN_FACES)
    if target >= len(f):
        return v, f
    with _LOCK:
        points, triangles = fast_simplification.simplify(v, f, target_count=target)
    return np.asarray(points, np.float64), np.asarray(triangles, np.int64)
