"""Mesh encoders checked with independent readers: DracoPy decodes every multi-resolution fragment
(the manifest header is read here with numpy as the spec lays it out), and cloud-volume reads whole
mesh directories in both formats. Nothing here decodes with code of ours."""

from __future__ import annotations

import json
from pathlib import Path

import DracoPy
import numpy as np
import pytest
from cloudvolume import CloudVolume
from support import segmentation_info

from zvfs.encoders import meshes as M

# ---------------------------------------------------------------- test meshes


def sphere(n_lat: int, n_lon: int, radius: float = 10.0, center=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """UV sphere, outward-facing triangles: (2 + (n_lat-1)*n_lon) vertices, 2*n_lon*(n_lat-1) faces."""
    theta = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    v = np.concatenate([[[0, 0, 1]], ring, [[0, 0, -1]]]) * radius + np.asarray(center)

    def idx(i: int, j: int) -> int:
        return 1 + i * n_lon + j % n_lon

    south = len(v) - 1
    f = [[0, idx(0, j), idx(0, j + 1)] for j in range(n_lon)]
    for i in range(n_lat - 2):
        for j in range(n_lon):
            f += [[idx(i, j), idx(i + 1, j), idx(i + 1, j + 1)], [idx(i, j), idx(i + 1, j + 1), idx(i, j + 1)]]
    f += [[idx(n_lat - 2, j), south, idx(n_lat - 2, j + 1)] for j in range(n_lon)]
    return v, np.array(f)


# ---------------------------------------------------------------- independent reading


def fragments(enc: M.EncodedMesh, bits: int) -> list[dict]:
    """Every non-empty fragment, DracoPy-decoded, with its raw q values and model coordinates."""
    man = M.Manifest.decode(enc.manifest)
    assert sum(int(s.sum()) for s in man.sizes) == len(enc.data)
    out, start = [], 0
    for lod in range(man.num_lods):
        node = man.chunk_shape * 2.0**lod
        for pos, size in zip(man.positions[lod], man.sizes[lod], strict=True):
            blob, start = enc.data[start : start + size], start + size
            if not size:
                continue
            mesh = DracoPy.decode(blob)
            q = np.asarray(mesh.points, np.float64)
            model = man.grid_origin + man.vertex_offsets[lod] + node * (pos + q / (2**bits - 1))
            out.append({"lod": lod, "pos": pos, "q": q, "faces": np.asarray(mesh.faces, np.int64), "vertices": model})
    return out


def lod_mesh(frags: list[dict], lod: int) -> tuple[np.ndarray, np.ndarray]:
    """All fragments of one LOD concatenated (vertices duplicated across fragments)."""
    vs, fs, n = [], [], 0
    for fr in (f for f in frags if f["lod"] == lod):
        vs.append(fr["vertices"])
        fs.append(fr["faces"] + n)
        n += len(fr["vertices"])
    return np.concatenate(vs), np.concatenate(fs)


def tolerance(cell: np.ndarray, bits: int, slack: float = 0.0) -> float:
    """Largest distance between an input vertex and its decoded copy: half a quantization step per
    axis (rounding to the nearest q), plus the reader's rounding ``slack``."""
    return 0.5 * float(np.linalg.norm(cell / (2**bits - 1))) + slack


# ---------------------------------------------------------------- geometry for the comparisons


def point_triangle_distance(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Distance from each point (P, 3) to the nearest triangle of (T, 3, 3)."""
    a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
    n = np.cross(b - a, c - a)
    nn = np.linalg.norm(n, axis=1)
    unit = n / np.where(nn > 0, nn, 1)[:, None]
    best = np.empty(len(points))
    for s in range(0, len(points), 256):
        p = points[s : s + 256, None, :]  # (p, 1, 3) against (T, 3)
        d_plane = ((p - a) * unit).sum(-1)
        proj = p - d_plane[..., None] * unit
        inside = nn > 0
        for e0, e1 in ((a, b), (b, c), (c, a)):
            inside = inside & ((np.cross(e1 - e0, proj - e0) * n).sum(-1) >= 0)
        d = np.where(inside, np.abs(d_plane), np.inf)
        for e0, e1 in ((a, b), (b, c), (c, a)):
            ed = e1 - e0
            t = np.clip(((p - e0) * ed).sum(-1) / np.maximum((ed * ed).sum(-1), 1e-300), 0, 1)
            d = np.minimum(d, np.linalg.norm(p - (e0 + t[..., None] * ed), axis=-1))
        best[s : s + 256] = d.min(1)
    return best


def areas(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    t = v[f]
    return 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)


def crosses_grid(v: np.ndarray, f: np.ndarray, origin: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Input triangles that cross (not merely touch) a plane of the grid with this spacing."""
    u = (v[f] - origin) / spacing
    lo, hi = u.min(1), u.max(1)
    return ((np.floor(lo + 1e-6) + 1) < hi - 1e-6).any(1)


def assert_same_surface(
    dec_v: np.ndarray,
    dec_f: np.ndarray,
    in_v: np.ndarray,
    in_f: np.ndarray,
    tol: float,
    unsplit: np.ndarray | None = None,
) -> None:
    """The decoded mesh reproduces the input surface within ``tol``.

    * every referenced input vertex has a decoded vertex within ``tol``, and every decoded vertex
      lies within ``tol`` of the input surface (pieces of clipped triangles add vertices on it);
    * coverage: the centroid and three inner points of every input triangle lie within ``tol`` of
      the decoded surface, and the total area matches;
    * triangles that were not split (``unsplit``) come back whole: snapping decoded vertices to the
      nearest input vertex gives the same vertex triple, with the same winding.
    """
    used = np.unique(in_f)
    d2 = ((in_v[used, None, :] - dec_v[None, :, :]) ** 2).sum(-1)
    assert np.sqrt(d2.min(1)).max() <= tol, "an input vertex has no decoded counterpart"
    assert point_triangle_distance(dec_v, in_v[in_f]).max() <= tol, "a decoded vertex is off the input surface"
    bary = np.array([[1 / 3] * 3, [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    samples = np.einsum("sk,tkd->tsd", bary, in_v[in_f]).reshape(-1, 3)
    assert point_triangle_distance(samples, dec_v[dec_f]).max() <= tol, "part of an input triangle is missing"
    total = areas(in_v, in_f).sum()
    assert abs(areas(dec_v, dec_f).sum() - total) <= 1e-3 * total
    if unsplit is None:
        return
    near = np.sqrt(((dec_v[:, None, :] - in_v[None, used, :]) ** 2).sum(-1))
    snapped = np.where(near.min(1) <= tol, used[near.argmin(1)], -1)

    def canon(t: np.ndarray) -> tuple:
        return min(tuple(np.roll(t, r)) for r in range(3))  # rotation keeps winding

    decoded = {canon(t) for t in snapped[dec_f] if (t >= 0).all()}
    missing = [tuple(t) for t in in_f[unsplit] if canon(t) not in decoded]
    assert not missing, f"{len(missing)} whole input triangles missing or flipped, e.g. {missing[:3]}"


def assert_client_rules(enc: M.EncodedMesh, bits: int) -> None:
    """What the Neuroglancer client needs beyond decodability: Z-ordered positions per LOD, every
    parent present, integer q in range, and at LOD > 0 no triangle across the 2x2x2 sub-grid."""
    man = M.Manifest.decode(enc.manifest)
    assert len(enc.manifest) == M.manifest_size(man.counts.tolist())
    assert (man.vertex_offsets == 0).all()

    def zless(a: np.ndarray, b: np.ndarray) -> bool:  # compare at the most significant differing bit, z > y > x
        x = [int(a[i]) ^ int(b[i]) for i in range(3)]
        axis = max(range(3), key=lambda i: (x[i].bit_length(), i))
        return int(a[axis]) < int(b[axis])

    for k, pos in enumerate(man.positions):
        assert all(zless(pos[i], pos[i + 1]) for i in range(len(pos) - 1)), f"LOD {k} not in Z-order"
        if k + 1 < man.num_lods:
            parents = {tuple(p) for p in man.positions[k + 1]}
            assert {tuple(p >> 1) for p in pos} <= parents, f"LOD {k} node without parent"
    half = 2 ** (bits - 1)
    for fr in fragments(enc, bits):
        q = fr["q"]
        assert (q == np.rint(q)).all() and q.min() >= 0 and q.max() <= 2**bits - 1
        corners = q[fr["faces"]]
        assert not (corners == np.roll(corners, 1, axis=1)).all(2).any(), "degenerate triangle stored"
        if fr["lod"]:
            t = q[fr["faces"]]  # (F, 3 corners, 3 axes)
            assert not ((t < half).any(1) & (t > half).any(1)).any(), "triangle crosses the sub-grid"


def check_encoding(lods: list[tuple[np.ndarray, np.ndarray]], bits: int = 16, **kw) -> tuple[M.EncodedMesh, list[dict]]:
    """Encode, then check every LOD against its input with DracoPy and the client rules."""
    enc = M.encode_multilod(lods, vertex_quantization_bits=bits, **kw)
    assert_client_rules(enc, bits)
    man = M.Manifest.decode(enc.manifest)
    assert man.num_lods == len(lods)
    frags = fragments(enc, bits)
    for k, (v, f) in enumerate(lods):
        cell = man.chunk_shape * 2.0**k
        spacing = cell / 2 if k else cell
        tol = tolerance(cell, bits, 1e-11 * float(np.abs(v).max()))  # we read in float64
        unsplit = ~crosses_grid(v, f, man.grid_origin, spacing)
        assert_same_surface(*lod_mesh(frags, k), v, f, tol, unsplit)
    return enc, frags


# ---------------------------------------------------------------- multi-resolution, DracoPy


def test_info() -> None:
    i = M.info(segment_properties="props")
    assert i == {
        "@type": "neuroglancer_multilod_draco",
        "vertex_quantization_bits": 16,
        "transform": [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        "lod_scale_multiplier": 1.0,
        "segment_properties": "props",
    }
    assert "segment_properties" not in M.info(vertex_quantization_bits=10)
    with pytest.raises(ValueError):
        M.info(vertex_quantization_bits=12)
    with pytest.raises(ValueError):
        M.info(transform=[1, 0, 0])


@pytest.mark.parametrize("bits", [10, 16])
def test_sphere_one_lod(bits: int) -> None:
    """Default grid, one LOD: the whole sphere in one node; every triangle comes back whole."""
    v, f = sphere(20, 24, center=(3.0, -7.0, 50.0))
    assert 400 < len(v) < 600
    enc, frags = check_encoding([(v, f)], bits)
    man = M.Manifest.decode(enc.manifest)
    assert man.counts.tolist() == [1] and len(frags) == 1
    assert np.allclose(man.grid_origin, v.min(0), atol=1e-5) and np.allclose(man.chunk_shape, np.ptp(v, 0).max())
    assert len(frags[0]["faces"]) == len(f)


def test_two_lods() -> None:
    """Same sphere at two resolutions: default grid gives LOD 1 a single node and LOD 0 its 8
    children; LOD 1 is cut along its sub-grid; lod_scales are the median edge lengths."""
    fine, coarse = sphere(24, 32), sphere(8, 10)
    enc, frags = check_encoding([fine, coarse])
    man = M.Manifest.decode(enc.manifest)
    assert man.counts.tolist() == [8, 1]
    assert man.positions[1].tolist() == [[0, 0, 0]]
    assert sorted(map(tuple, man.positions[0].tolist())) == [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    assert len(next(f for f in frags if f["lod"] == 1)["faces"]) > len(coarse[1])  # split at the sub-grid
    assert 0 < man.lod_scales[0] < man.lod_scales[1]


def test_many_cells_three_lods() -> None:
    """Explicit anisotropic grid far from 0 (origin not exact in float32, so quantizing against
    the float64 value would be off by ~1e-3): dozens of nodes per LOD, triangles split."""
    center = (100000.3, -20.0, 7.5)
    lods = [sphere(20, 24, center=center), sphere(12, 14, center=center), sphere(6, 8, center=center)]
    origin = np.array(center) - 10.5
    enc, _ = check_encoding(lods, grid_origin=origin, chunk_shape=(3.0, 4.0, 5.0), lod_scales=(1, 2, 4))
    man = M.Manifest.decode(enc.manifest)
    assert man.counts[0] > 30 and man.counts[2] >= 2
    assert man.lod_scales.tolist() == [1, 2, 4]
    assert np.array_equal(man.grid_origin, origin.astype(np.float32)) and man.grid_origin[0] != origin[0]
    assert crosses_grid(*lods[0], man.grid_origin, man.chunk_shape).sum() > 100  # the split path is exercised


def test_single_triangle() -> None:
    v, f = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), np.array([[0, 1, 2]])
    _, frags = check_encoding([(v, f)])
    assert len(frags) == 1 and len(frags[0]["faces"]) == 1
    # the same triangle over a 4x4 grid of nodes: pieces in several fragments, area preserved
    _, frags = check_encoding([(v, f)], chunk_shape=(0.25, 0.25, 0.25))
    assert len(frags) == 10  # the nodes on or below the diagonal of a 4x4 grid
    assert np.isclose(sum(areas(fr["vertices"], fr["faces"]).sum() for fr in frags), 0.5, rtol=1e-4)


def test_unreferenced_vertex() -> None:
    """A far unreferenced vertex neither reaches the output nor stretches the default grid."""
    v, f = sphere(12, 16)
    v2 = np.concatenate([v, [[500.0, 500.0, 500.0]]])
    enc, frags = check_encoding([(v2, f)])
    assert enc == M.encode_multilod([(v, f)])
    assert max(np.abs(fr["vertices"]).max() for fr in frags) < 10.001


def test_deterministic() -> None:
    lods = [sphere(20, 24), sphere(8, 10)]
    a = M.encode_multilod(lods, chunk_shape=(4, 4, 4))
    b = M.encode_multilod([(v.copy(), f.copy()) for v, f in lods], chunk_shape=(4, 4, 4))
    assert a.manifest == b.manifest and a.data == b.data


def test_empty_coarse_lod_keeps_parents() -> None:
    """An empty coarser LOD still holds the (size 0) parents that the LOD-0 nodes need."""
    v, f = sphere(10, 12)
    enc = M.encode_multilod([(v, f), (v, f[:0])], chunk_shape=(5, 5, 5))
    man = M.Manifest.decode(enc.manifest)
    assert man.counts[0] > 1 and man.counts[1] >= 1
    assert (man.sizes[1] == 0).all()
    assert_client_rules(enc, 16)


def test_grid_origin_and_argument_checks() -> None:
    """An origin at the lowest vertex works though rounding it to nearest float32 would put it
    above (by ~4e-3, 100x the quantization step); one above raises."""
    v, f = sphere(6, 8, center=(100000.1, 0.2, 0.3))
    low = v[f].reshape(-1, 3).min(0)
    assert low.astype(np.float32)[0] - low[0] > 1e-3
    check_encoding([(v, f)], grid_origin=low, chunk_shape=(4, 4, 4))
    with pytest.raises(ValueError):
        M.encode_multilod([(v, f)], grid_origin=low + 0.01, chunk_shape=(4, 4, 4))
    with pytest.raises(ValueError):
        M.encode_multilod([(v, f)], vertex_quantization_bits=8)
    with pytest.raises(ValueError):
        M.encode_multilod([(v, f), (v, f)], lod_scales=(2, 1))


def test_manifest_size() -> None:
    assert M.manifest_size([]) == 28
    for lods, chunk in (([sphere(10, 12)], None), ([sphere(20, 24), sphere(8, 10)], (3, 3, 3))):
        enc = M.encode_multilod(lods, chunk_shape=chunk)
        assert len(enc.manifest) == M.manifest_size(M.Manifest.decode(enc.manifest).counts.tolist())


# ---------------------------------------------------------------- cloud-volume, both formats


def write_volume(root: Path, mesh_info: dict, files: dict[str, bytes]) -> str:
    (root / "mesh").mkdir(parents=True)
    (root / "info").write_text(json.dumps(segmentation_info("mesh")))
    (root / "mesh" / "info").write_text(json.dumps(mesh_info))
    for name, data in files.items():
        (root / "mesh" / name).write_bytes(data)
    return f"precomputed://file://{root}"


def test_cloudvolume_multilod(tmp_path: Path) -> None:
    """cloud-volume reads each LOD (it dequantizes with 2^bits - 1 and applies ``transform``)."""
    fine, coarse = sphere(20, 24, center=(30.0, 40.0, 50.0)), sphere(8, 10, center=(30.0, 40.0, 50.0))
    transform = [2.0, 0, 0, 5.0, 0, 3.0, 0, 0, 0, 0, 4.0, -1.0]
    enc = M.encode_multilod([fine, coarse], chunk_shape=(6, 6, 6))
    man = M.Manifest.decode(enc.manifest)
    cv = CloudVolume(write_volume(tmp_path, M.info(transform=transform), {"9.index": enc.manifest, "9": enc.data}))
    affine = np.array(transform).reshape(3, 4)
    for lod, (v, f) in enumerate((fine, coarse)):
        mesh = cv.mesh.get(9, lod=lod)[9]
        cell = man.chunk_shape * 2.0**lod
        tol = tolerance(cell, 16, 4e-7 * 60.0) * np.linalg.norm(affine[:, :3], 2)  # cloud-volume: float32
        unsplit = ~crosses_grid(v, f, man.grid_origin, cell / 2 if lod else cell)
        assert_same_surface(
            np.asarray(mesh.vertices, np.float64),
            mesh.faces.astype(np.int64),
            v @ affine[:, :3].T + affine[:, 3],
            f,
            tol,
            unsplit,
        )


def test_cloudvolume_multilod_10_bits(tmp_path: Path) -> None:
    v, f = sphere(20, 24)
    enc = M.encode_multilod([(v, f)], vertex_quantization_bits=10)
    cv = CloudVolume(
        write_volume(tmp_path, M.info(vertex_quantization_bits=10), {"3.index": enc.manifest, "3": enc.data})
    )
    mesh = cv.mesh.get(3)[3]
    tol = tolerance(M.Manifest.decode(enc.manifest).chunk_shape, 10, 4e-6)
    assert_same_surface(
        np.asarray(mesh.vertices, np.float64), mesh.faces.astype(np.int64), v, f, tol, np.ones(len(f), bool)
    )


def test_legacy_info_and_manifest() -> None:
    assert M.legacy_info() == {"@type": "neuroglancer_legacy_mesh"}
    assert M.legacy_info("props")["segment_properties"] == "props"
    assert json.loads(M.legacy_manifest(["5:0:a", "5:0:b"])) == {"fragments": ["5:0:a", "5:0:b"]}


def test_legacy_fragment_layout() -> None:
    v, f = sphere(10, 12)
    v = np.concatenate([v, [[99.0, 99.0, 99.0]]])  # unreferenced, kept
    buf = M.legacy_fragment(v, f)
    assert len(buf) == M.legacy_fragment_size(len(v), len(f))
    assert np.frombuffer(buf, "<u4", 1)[0] == len(v)
    assert np.array_equal(np.frombuffer(buf, "<f4", 3 * len(v), 4).reshape(-1, 3), v.astype(np.float32))
    assert np.array_equal(np.frombuffer(buf, "<u4", offset=4 + 12 * len(v)).reshape(-1, 3), f)
    with pytest.raises(ValueError):
        M.legacy_fragment(v, f + len(v))


def test_cloudvolume_legacy(tmp_path: Path) -> None:
    """Two fragments of one segment, one with an unreferenced vertex: exact float32 round trip."""
    a, b = sphere(12, 16, center=(100.0, 0.0, 0.0)), sphere(6, 8, center=(-100.0, 5.0, 0.0))
    b = (np.concatenate([b[0], [[7.0, 7.0, 7.0]]]), b[1])
    files = {
        "4:0": M.legacy_manifest(["4:0:a", "4:0:b"]),
        "4:0:a": M.legacy_fragment(*a),
        "4:0:b": M.legacy_fragment(*b),
    }
    cv = CloudVolume(write_volume(tmp_path, M.legacy_info(), files))
    raw = cv.mesh.get(4, remove_duplicate_vertices=False)  # fragments concatenated in file-name order
    assert np.array_equal(raw.vertices, np.concatenate([a[0], b[0]]).astype(np.float32))
    assert np.array_equal(raw.faces, np.concatenate([a[1], b[1] + len(a[0])]))
    merged = cv.mesh.get(4)  # cloud-volume's default merges equal vertices and sorts them
    assert np.array_equal(merged.vertices, np.unique(raw.vertices, axis=0))
    assert {frozenset(map(tuple, t)) for t in merged.vertices[merged.faces]} == {
        frozenset(map(tuple, t)) for t in raw.vertices[raw.faces]
    }
