"""Mesh levels of detail from the ZVF pyramid: mesh stores with 1, 2 and 3 levels built by
zarr-vectors (coarse levels without faces) and one whose coarse level carries triangles, their
``meshes/`` fetched through a real mount, a real server and an export, decoded with cloud-volume
at every LOD and DracoPy for every fragment; and the simplifier on its own."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from itertools import pairwise
from pathlib import Path

import DracoPy
import numpy as np
import pytest
import zarr_vectors as zv
from cloudvolume import CloudVolume
from cloudvolume.exceptions import MeshDecodeError
from ecosystem import awkward_mesh, convert, write_obj
from support import (
    FRONT_ENDS,
    add_pyramid,
    build_meshes,
    fetch,
    put_level_meshes,
    segmentation_info,
    tree_urls,
    uv_sphere,
)
from test_meshes import area, triangles

from zvfs.encoders.meshes import Manifest
from zvfs.mappers.meshes import MeshSource
from zvfs.meshing import MIN_FACES, simplify
from zvfs.source import open_context
from zvfs.store import open_store

SEGMENTS = (1, 2, 3)  # object id + 1: big sphere, small sphere, one triangle
STORES = {"one": 1, "two": 2, "three": 3, "faces": 2}  # name -> ZVF levels
COARSE = [uv_sphere((50, 50, 50), 30, 8), uv_sphere((20, 70, 40), 12, 4)]  # level 1 of "faces"
BITS = 16


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list]]:
    """name -> (store, level-0 meshes as written); the level-3 store drops the big sphere at level 2."""
    out = {}
    for name, levels in STORES.items():
        path, meshes = build_meshes(tmp_path_factory.mktemp(name) / "mesh.zarrvectors")
        add_pyramid(path, levels)
        if name == "faces":
            put_level_meshes(path, 1, [*COARSE, meshes[2]])
        out[name] = (path, meshes)
    return out


@pytest.fixture(scope="module", params=FRONT_ENDS)
def fetched(request: pytest.FixtureRequest, stores, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``<store>/`` per store: a cloud-volume layout whose ``mesh`` directory holds the files of
    ``meshes/`` fetched through one front end."""
    out = tmp_path_factory.mktemp(f"lod_{request.param}")
    with ExitStack() as stack:
        urls = tree_urls(
            request.param, {n: p for n, (p, _) in stores.items()}, tmp_path_factory.mktemp(request.param), stack
        )
        for name, base in urls.items():
            mesh = out / name / "mesh"
            (mesh / "segment_properties").mkdir(parents=True)
            for file in ["info", "segment_properties/info", *(n for s in SEGMENTS for n in (f"{s}.index", str(s)))]:
                (mesh / file).write_bytes(fetch(f"{base}meshes/{file}"))
            (out / name / "info").write_text(json.dumps(segmentation_info("mesh")))
        yield out


# -- oracles ---------------------------------------------------------------------------------------


def quantum(manifest: bytes, lod: int) -> float:
    """Largest position error of one LOD: its 16-bit node grid, plus float32."""
    return float(np.linalg.norm(Manifest.decode(manifest).chunk_shape * 2**lod)) / (2**BITS - 1) + 1e-3


def surface_distance(points: np.ndarray, v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Distance of each point to the nearest triangle (brute force: small meshes)."""
    v, points = np.asarray(v, np.float64), np.asarray(points, np.float64)
    a, b, c = (v[f[:, i]] for i in range(3))
    n = np.cross(b - a, c - a)
    norm = np.linalg.norm(n, axis=1)
    n = n / np.where(norm > 1e-12, norm, np.inf)[:, None]  # degenerate: edges only

    def segment(p: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
        d = e - s
        t = np.clip(((p - s) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-300), 0, 1)
        return np.linalg.norm(p - s - t[..., None] * d, axis=-1)

    out = []
    for p in (points[i : i + 64, None] for i in range(0, len(points), 64)):
        height = ((p - a) * n).sum(-1)
        q = p - height[..., None] * n
        inside = np.broadcast_to(norm > 1e-12, height.shape).copy()
        for s, e in ((a, b), (b, c), (c, a)):
            inside &= (np.cross(e - s, q - s) * n).sum(-1) >= 0
        edges = np.minimum.reduce([segment(p, a, b), segment(p, b, c), segment(p, c, a)])
        out.append(np.where(inside, np.abs(height), edges).min(1))
    return np.concatenate(out) if out else np.zeros(0)


def welded(vertices: np.ndarray) -> int:
    """Distinct decoded positions (pieces of one surface repeat the vertices they share)."""
    return len(np.unique(np.round(np.asarray(vertices, np.float64), 3), axis=0))


def target_counts(path: Path) -> list[list[int]]:
    """Per object, the vertex count each LOD aims at: the object's count at that ZVF level over its
    level-0 count; where the level drops it, the ratio of the objects the level keeps; never rising;
    never below a tetrahedron, and objects of at most MIN_FACES faces kept whole."""
    ctx = open_context(str(path))
    tables = [ctx.objects(k) for k in range(len(ctx.store.levels))]
    oids = [s - 1 for s in SEGMENTS]
    sizes = np.asarray([[t.size(o) for o in oids] for t in tables], np.float64)
    faces = [len(tables[0].connectivity(o)[1]) for o in oids]
    out = []
    for j, n0 in enumerate(sizes[0]):
        ratio, counts = 1.0, []
        for row in sizes:
            kept = row > 0
            ratio = min(ratio, row[j] / n0 if row[j] else row[kept].sum() / sizes[0][kept].sum())
            counts.append(int(n0) if faces[j] <= MIN_FACES else max(round(n0 * ratio), 4))
        out.append(counts)
    return out


def decoded(fetched: Path, name: str, seg: int, lod: int):
    return CloudVolume(f"precomputed://file://{fetched / name}").mesh.get(seg, lod=lod)[seg]


# -- through the front ends --------------------------------------------------------------------------


@pytest.mark.parametrize("name", STORES)
def test_one_lod_per_zvf_level(fetched, name) -> None:
    for seg in SEGMENTS:
        manifest = Manifest.decode((fetched / name / "mesh" / f"{seg}.index").read_bytes())
        chunk, lods, scales = manifest.chunk_shape, manifest.num_lods, manifest.lod_scales
        assert lods == STORES[name]
        assert (scales > 0).all() and (np.diff(scales) >= 0).all(), "lod_scales positive, non-decreasing"
        assert (chunk >= 25).all(), "LOD-0 nodes no smaller than a ZVF chunk"
        with pytest.raises(MeshDecodeError):
            decoded(fetched, name, seg, lods)


@pytest.mark.parametrize("name", STORES)
def test_lod0_is_the_written_mesh(fetched, stores, name) -> None:
    for seg, (v, f) in zip(SEGMENTS, stores[name][1], strict=True):
        manifest = (fetched / name / "mesh" / f"{seg}.index").read_bytes()
        mesh = decoded(fetched, name, seg, 0)
        assert surface_distance(v, mesh.vertices, mesh.faces).max() <= quantum(manifest, 0)
        assert surface_distance(mesh.vertices, v, f).max() <= quantum(manifest, 0)
        assert area(mesh.vertices, mesh.faces) == pytest.approx(area(v, f), rel=1e-3)


@pytest.mark.parametrize("name", STORES)
def test_lods_are_the_target_reduction(fetched, stores, name) -> None:
    """Each LOD is the mesh zvfs builds for it (within the quantization step), and that mesh has the
    target vertex count within max(2, 10%); the faces store's LOD 1 is its level-1 triangles."""
    path, meshes = stores[name]
    src = MeshSource(open_context(str(path)))
    for seg, targets in zip(SEGMENTS, target_counts(path), strict=True):
        manifest = (fetched / name / "mesh" / f"{seg}.index").read_bytes()
        for k, ((v, f), target) in enumerate(zip(src.lods(seg - 1), targets, strict=True)):
            assert abs(len(np.unique(f)) - target) <= max(2, 0.1 * target), (seg, k)
            mesh = decoded(fetched, name, seg, k)
            assert surface_distance(mesh.vertices, v, f).max() <= quantum(manifest, k)
            assert surface_distance(v, mesh.vertices, mesh.faces).max() <= quantum(manifest, k)
    if name == "faces":
        for seg, (v, f) in zip(SEGMENTS, [*COARSE, meshes[2]], strict=True):
            tol = quantum((fetched / name / "mesh" / f"{seg}.index").read_bytes(), 1)
            mesh = decoded(fetched, name, seg, 1)
            assert surface_distance(v, mesh.vertices, mesh.faces).max() <= tol
            assert surface_distance(mesh.vertices, v, f).max() <= tol
            assert area(mesh.vertices, mesh.faces) == pytest.approx(area(v, f), rel=1e-3)


@pytest.mark.parametrize("name", STORES)
def test_coarser_lods_have_fewer_vertices(fetched, name) -> None:
    for seg in SEGMENTS:
        counts = [welded(decoded(fetched, name, seg, k).vertices) for k in range(STORES[name])]
        if seg == 3:  # one triangle: nothing to take away
            assert len(set(counts)) == 1
        else:
            assert all(a > b for a, b in pairwise(counts)), counts


@pytest.mark.parametrize("name", STORES)
def test_coarse_lods_stay_on_the_surface(fetched, stores, name) -> None:
    """Both ways (decoded vertices to the level-0 surface, level-0 vertices to the decoded surface)
    within half the level's ZVF bin edge, the spacing of its own metavertices."""
    path, meshes = stores[name]
    bins = [level.bin_shape.max() for level in open_store(str(path)).levels]
    for seg, (v, f) in zip(SEGMENTS, meshes, strict=True):
        for k in range(1, STORES[name]):
            mesh = decoded(fetched, name, seg, k)
            assert surface_distance(mesh.vertices, v, f).max() <= bins[k] / 2, (seg, k)
            assert surface_distance(v, mesh.vertices, mesh.faces).max() <= bins[k] / 2, (seg, k)


@pytest.mark.parametrize("name", STORES)
def test_every_draco_fragment_decodes(fetched, name) -> None:
    for seg in SEGMENTS:
        fragments = Manifest.decode((fetched / name / "mesh" / f"{seg}.index").read_bytes()).fragments()
        data = (fetched / name / "mesh" / str(seg)).read_bytes()
        assert sum(size for *_, size in fragments) == len(data)
        for _, _, start, size in fragments:
            if size:
                mesh = DracoPy.decode(data[start : start + size])
                assert len(mesh.faces) and len(mesh.points) and np.asarray(mesh.points).max() < 2**BITS


# -- the simplifier ----------------------------------------------------------------------------------


def wavy_sheet(n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """An open surface: a corrugated n x n grid."""
    x, y = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    v = np.stack([x.ravel(), y.ravel(), 3 * np.sin(x.ravel() / 5)], 1).astype(np.float64)
    i = (np.arange(n - 1)[:, None] * n + np.arange(n - 1)).ravel()
    f = np.concatenate([np.stack([i, i + n, i + n + 1], 1), np.stack([i, i + n + 1, i + 1], 1)])
    return v, f


@pytest.mark.parametrize(("ratio", "off"), [(0.5, 0.002), (0.2, 0.01), (0.05, 0.03), (0.01, 0.15)])
def test_simplify_closed_surface_to_target(ratio: float, off: float) -> None:
    """Vertex count within max(2, 5%) of the target; vertices within ``off`` x radius of the sphere
    (2258 vertices; quadric placement puts coarse vertices outside it)."""
    v, f = uv_sphere((10, 20, 30), 50, 48)
    sv, sf = simplify(v, f, ratio)
    target = round(len(v) * ratio)
    assert abs(len(sv) - target) <= max(2, 0.05 * target) and len(np.unique(sf)) == len(sv)
    assert np.abs(np.linalg.norm(sv - (10, 20, 30), axis=1) - 50).max() <= off * 50


@pytest.mark.parametrize("ratio", [0.5, 0.2, 0.05])
def test_simplify_open_surface_to_target(ratio: float) -> None:
    """Vertex count within 10% of the target on a surface with a boundary."""
    v, f = wavy_sheet()
    sv, _ = simplify(v, f, ratio)
    assert abs(len(sv) - len(v) * ratio) <= 0.1 * len(v) * ratio


def test_simplify_keeps_what_it_cannot_reduce() -> None:
    v, f = uv_sphere((0, 0, 0), 5, 8)
    assert [len(x) for x in simplify(v, f, 1.0)] == [len(v), len(f)]
    assert len(simplify(v, f, 0.0)[1]) == MIN_FACES, "a tetrahedron at least"
    tri = np.asarray([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float64), np.asarray([[0, 1, 2]])
    assert triangles(*simplify(*tri, 0.1)) == triangles(*tri)
    assert [len(x) for x in simplify(np.zeros((0, 3)), np.zeros((0, 3), int), 0.5)] == [0, 0]


def test_simplify_welds_triangle_soups() -> None:
    v, f = uv_sphere((0, 0, 0), 5, 16)
    soup = v[f].reshape(-1, 3), np.arange(3 * len(f)).reshape(-1, 3)
    assert len(simplify(*soup, 0.2)[0]) == len(simplify(v, f, 0.2)[0]) == round(len(v) * 0.2)


def test_simplify_is_thread_safe() -> None:
    """The C++ simplifier holds one mesh per process; concurrent calls must not mix meshes."""
    meshes = [uv_sphere((k, 0, 0), 5 + k, 12 + 4 * k) for k in range(8)]
    serial = [simplify(v, f, 0.3) for v, f in meshes]
    results: list = [None] * len(meshes)

    def run(k: int) -> None:
        for _ in range(5):
            results[k] = simplify(*meshes[k], 0.3)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(meshes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (a, b), (c, d) in zip(serial, results, strict=True):
        assert np.array_equal(a, c) and np.array_equal(b, d)


# -- messy meshes, as real files hold them ---------------------------------------------------------------

SPHERES = (((30.0, 30.0, 30.0), 12.0), ((70.0, 60.0, 40.0), 9.0))  # the two components of awkward_mesh()


def messy_mesh() -> tuple[np.ndarray, np.ndarray]:
    """``awkward_mesh()`` (two spheres, repeated faces, a corner repeated, a zero-area face) plus
    faces repeated with inverted winding and a non-manifold fin on the first sphere."""
    m = awkward_mesh()
    v, f = np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int64)
    fin = len(v)
    v = np.vstack([v, [[30.0, 30.0, 50.0]]])  # above the first sphere's pole, on its first face's edge
    return v, np.vstack([f, f[10:14][:, ::-1], [[f[0, 0], f[0, 1], fin]]])


def assert_shape_kept(v: np.ndarray, where: str) -> None:
    """Both spheres are present, each with most of its extent."""
    for centre, radius in SPHERES:
        near = v[np.linalg.norm(v - centre, axis=1) <= 1.6 * radius]
        assert len(near) >= 4, f"{where}: the sphere at {centre} vanished"
        assert np.ptp(near, axis=0).min() >= radius, f"{where}: the sphere at {centre} collapsed"


@pytest.mark.parametrize("ratio", [0.5, 0.2, 0.05, 0.0])
def test_simplify_messy_mesh_keeps_every_component(ratio: float) -> None:
    v, f = messy_mesh()
    sv, sf = simplify(v, f, ratio)
    assert len(sf) and np.unique(sf).size == len(sv)
    assert_shape_kept(sv[np.unique(sf)], f"ratio {ratio}")
    assert len(np.unique(np.sort(sf, axis=1), axis=0)) == len(sf), "no face twice"


def test_obj_mesh_lods_keep_shape_through_every_front_end(tmp_path: Path) -> None:
    """An OBJ as mesh tools write it (repeated and degenerate faces, two components in one object),
    ingested by zvtools, with a zarr-vectors pyramid (vertices only, so coarse LODs are simplified):
    every LOD read back by cloud-volume keeps both components."""
    v, f = messy_mesh()
    store = convert(write_obj(tmp_path / "m.obj", v, f), tmp_path / "m.zarrvectors", "--chunk-shape", "25,25,25")
    zv.open(str(store), mode="r+").build_pyramid(factors=[(2, 1), (2, 2)], chunk_scale_factors=[1, 2], sparsity_seed=0)
    with ExitStack() as stack:
        for front_end in FRONT_ENDS:
            (tmp_path / front_end).mkdir()
            base = tree_urls(front_end, {"m": store}, tmp_path / front_end, stack)["m"]
            out = tmp_path / f"cv-{front_end}"
            (out / "mesh" / "segment_properties").mkdir(parents=True)
            for file in ["info", "segment_properties/info", "1.index", "1"]:
                (out / "mesh" / file).write_bytes(fetch(f"{base}meshes/{file}"))
            (out / "info").write_text(json.dumps(segmentation_info("mesh")))
            for lod in range(3):
                mesh = CloudVolume(f"precomputed://file://{out}").mesh.get(1, lod=lod)[1]
                assert_shape_kept(np.asarray(mesh.vertices, np.float64), f"{front_end} LOD {lod}")
