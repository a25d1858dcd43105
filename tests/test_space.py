"""Coordinate spaces: store units, ``--units`` and an explicit voxel ``--transform`` give info files
whose physical coordinates of known vertices are right (to 1e-6 relative), read back through a real
server with Neuroglancer's reader and cloud-volume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr_vectors as zv
from cloudvolume import Skeleton
from neuroglancer import read_precomputed_annotations
from support import build_skeletons, fetch, served, zvfs

from zvfs.space import parse_affine

VOXEL = [[4, 0, 0, 10], [0, 4, 0, -20], [0, 0, 25, 5], [0, 0, 0, 1]]  # 4 um x 4 um x 25 um, offset


def voxel_points(path: Path) -> np.ndarray:
    pts = np.asarray([[0, 0, 0], [1, 2, 3], [99.5, 50, 0.5], [10.25, 80, 60]], np.float32)
    ds = zv.create(
        str(path),
        schema=zv.Schema(
            bounds=([0, 0, 0], [100, 100, 100]),
            kind="point_cloud",
            axes=tuple(zv.Axis(n, "") for n in "xyz"),
            layout=zv.Layout(cell_size=(25, 25, 25), subcells=4),
        ),
    )
    ds.add_points(pts)
    return pts


def physical(reader, point) -> np.ndarray:
    """Metres of an annotation point, from the info's dimensions alone."""
    scales = np.asarray([reader.metadata["dimensions"][a][0] for a in "xyz"])
    return np.asarray(point, np.float64) * scales


@pytest.mark.parametrize(
    "args,expect",
    [
        ((), None),
        (("--units", "micrometer"), np.hstack([np.eye(3) * 1e-6, np.zeros((3, 1))])),
        (("--transform", json.dumps(VOXEL), "--units", "micrometer"), np.asarray(VOXEL, float)[:3] * 1e-6),
    ],
)
def test_points_in_physical_units(args: tuple, expect, tmp_path: Path) -> None:
    pts = voxel_points(tmp_path / "v.zarrvectors")
    with served(tmp_path / "v.zarrvectors", tmp_path / "log", *args) as (_, base):
        r = read_precomputed_annotations.AnnotationReader(base + "annotations/")
        got = sorted(map(tuple, (physical(r, a.point) for a in r.get_within_spatial_bounds())))
    if expect is None:  # unit-less axes stay unit-less
        assert r.metadata["dimensions"] == {a: [1, ""] for a in "xyz"}
        return
    want = sorted(map(tuple, np.asarray(pts, np.float64) @ expect[:, :3].T + expect[:, 3]))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)
    lo, hi = np.asarray(r.metadata["lower_bound"]), np.asarray(r.metadata["upper_bound"])
    for meta in r.metadata["spatial"]:
        np.testing.assert_allclose(np.asarray(meta["grid_shape"]) * meta["chunk_size"], hi - lo, rtol=1e-9)


def test_skeleton_transform_in_nanometres(tmp_path: Path) -> None:
    """A micrometre store: cloud-volume applies info.transform; with --transform the voxel affine is
    composed in, and the vertex data is untouched."""
    store, written = build_skeletons(tmp_path / "k.zarrvectors")
    seg = int(written["segment_id"][2])
    P = written["positions"][written["objects"] == 2].astype(np.float64)
    for args, affine in (
        ((), np.hstack([np.eye(3), np.zeros((3, 1))])),
        (("--transform", json.dumps(VOXEL)), np.asarray(VOXEL, float)[:3]),
    ):
        with served(store, tmp_path / "log", *args) as (_, base):
            info = json.loads(fetch(base + "skeletons/info"))
            raw = fetch(f"{base}skeletons/{seg}")
        skel = Skeleton.from_precomputed(raw, segid=seg, vertex_attributes=info["vertex_attributes"])
        T = np.asarray(info["transform"]).reshape(3, 4)
        nm = skel.vertices.astype(np.float64) @ T[:, :3].T + T[:, 3]
        want = (P @ affine[:, :3].T + affine[:, 3]) * 1000.0  # micrometres -> nm
        np.testing.assert_allclose(np.sort(nm, 0), np.sort(want, 0), rtol=1e-6)


def test_bad_transform_and_units_are_one_line_errors(tmp_path: Path) -> None:
    voxel_points(tmp_path / "v.zarrvectors")
    for args, text in (
        (("--transform", "[1, 2, 3]"), "expected 4x4 or 3x4"),
        (("--transform", "not json"), "neither a file nor a JSON matrix"),
        (("--units", "furlong"), "cannot express"),
    ):
        res = zvfs("export", str(tmp_path / "v.zarrvectors"), str(tmp_path / "out"), *args, check=False)
        assert res.returncode == 2 and res.stderr.startswith("zvfs: error:") and text in res.stderr, res.stderr


def test_affine_from_files(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.asarray(VOXEL, float))
    np.savetxt(tmp_path / "a.txt", np.asarray(VOXEL, float)[:3])
    (tmp_path / "a.json").write_text(json.dumps(VOXEL))
    for name in ("a.npy", "a.txt", "a.json"):
        np.testing.assert_array_equal(parse_affine(str(tmp_path / name)), np.asarray(VOXEL, float)[:3])
