"""Mesh simplification for coarse levels of detail: quadric edge collapse (``fast-simplification``).

Pure numpy in and out. Real meshes are messy, so a mesh is first cleaned (:func:`clean`): welded,
without degenerate faces and without repeated ones, which would otherwise distort the counts the
face budget comes from. Each connected component is then simplified on its own, so that a small
part is never dropped for a large one: the simplifier takes a face count, and a vertex count ``V``
is turned into one with Euler's formula ``F = 2V - B - 2χ`` (``B`` boundary edges, ``χ`` the Euler
characteristic, which edge collapses keep), the boundary shrinking with the square root of the
vertex reduction as a length does against an area. A component is never reduced below
:data:`MIN_FACES` faces (a tetrahedron), nor below its own face count.
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


def clean(vertices: np.ndarray, faces: np.ndarray) -> Mesh:
    """The welded mesh without degenerate faces (a corner repeated, or no area) and with each face
    once (the same three corners in any order or winding: the first is kept)."""
    v, f = weld(vertices, faces)
    a, b, c = (v[f[:, i]] for i in range(3))
    solid = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])
    solid &= np.linalg.norm(np.cross(b - a, c - a), axis=1) > 0
    f = f[solid]
    _, first = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
    return weld(v, f[np.sort(first)])


def components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Connected component of each face (labels 0..k-1, in order of first appearance)."""
    label = np.arange(n_vertices)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    while True:  # min-label propagation with pointer jumping
        low = np.minimum(label[edges[:, 0]], label[edges[:, 1]])
        before = label.copy()
        np.minimum.at(label, edges[:, 0], low)
        np.minimum.at(label, edges[:, 1], low)
        label = label[label]
        if np.array_equal(label, before):
            break
    roots = label[faces[:, 0]]
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse.reshape(-1)]


def face_target(n_vertices: int, faces: np.ndarray, ratio: float) -> int:
    """Faces of the mesh reduced to ``ratio`` of its ``n_vertices`` (all referenced), by Euler."""
    edges, uses = np.unique(np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), 1), axis=0, return_counts=True)
    boundary = int((uses == 1).sum())
    euler = n_vertices - len(edges) + len(faces)
    return round(2 * n_vertices * ratio - boundary * math.sqrt(ratio) - 2 * euler)


def _reduce(v: np.ndarray, f: np.ndarray, ratio: float) -> Mesh:
    """One connected, clean component reduced to about ``ratio`` of its vertices."""
    used = np.unique(f)
    remap = np.zeros(len(v), np.int64)
    remap[used] = np.arange(len(used))
    v, f = v[used], remap[f]
    target = max(face_target(len(v), f, ratio), MIN_FACES)
    if len(f) <= MIN_FACES or target >= len(f):
        return v, f
    with _LOCK:
        points, triangles = fast_simplification.simplify(v, f, target_count=target)
    return np.asarray(points, np.float64), np.asarray(triangles, np.int64)


def simplify(vertices: np.ndarray, faces: np.ndarray, ratio: float) -> Mesh:
    """The cleaned mesh (:func:`clean`) reduced to about ``ratio`` (>= 0) of its vertices by quadric
    edge collapse, each connected component on its own; not reduced when ``ratio >= 1``."""
    v, f = clean(vertices, faces)
    if ratio >= 1 or len(f) <= MIN_FACES:
        return v, f
    label = components(f, len(v))
    parts = [_reduce(v, f[label == k], ratio) for k in range(int(label.max()) + 1)]
    offsets = np.cumsum([0] + [len(p) for p, _ in parts])
    return np.concatenate([p for p, _ in parts]), np.concatenate(
        [t + o for (_, t), o in zip(parts, offsets[:-1], strict=True)]
    )
