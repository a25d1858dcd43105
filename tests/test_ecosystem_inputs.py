"""Smoke test of tests/ecosystem.py: each kind of real input goes through ``zvtools convert`` and opens
with zarr-vectors, and nibabel's RAS+ mm reading (the ground truth) has what was written. The TRK cases
also check zvfs's resolution of a zvtools TRK store's metadata (voxmm -> RAS+ mm, legacy headers included)
against nibabel's reading of the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr_vectors as zv
from ecosystem import (
    TRK_CASES,
    ConversionError,
    apply_affine,
    awkward_mesh,
    blank_trk_fields,
    convert,
    per_point_scalars,
    per_streamline_properties,
    rasmm_truth,
    streamlines_in_volume,
    swc_tree,
    write_obj,
    write_swc,
    write_tck,
    write_trk,
)

from zvfs.source import open_space
from zvfs.store import open_store

TOLERANCE_MM = 1e-4


def zvfs_affine(store: Path) -> np.ndarray:
    """The stored -> physical affine zvfs resolves from the store's metadata (4x4)."""
    space = open_space(open_store(str(store)))
    assert space.orientation == "RAS" and all(a.unit == "mm" for a in space.axes)
    return np.vstack([space.affine, [0, 0, 0, 1]])


def level0_polylines(store: Path) -> list[np.ndarray]:
    """Every object of level 0, by object id (zvtools numbers streamlines 0.. in file order)."""
    level = zv.open(str(store)).level(0)
    return [np.asarray(level.objects[i].positions, float) for i in range(level.objects.count)]


@pytest.mark.parametrize("case", sorted(TRK_CASES))
def test_trk(tmp_path: Path, case: str) -> None:
    space = TRK_CASES[case]
    lines = streamlines_in_volume(space.vox_to_ras, space.dimensions, n=12, seed=len(case))
    src = write_trk(
        tmp_path / "t.trk",
        lines,
        **space.header(),
        scalars=per_point_scalars(lines),
        properties=per_streamline_properties(len(lines)),
    )
    store = convert(src, tmp_path / "t.zarrvectors", "--num-chunks", 27)
    truth = rasmm_truth(src)
    assert len(truth) == len(lines)
    level = zv.open(str(store)).level(0)
    assert level.objects.count == len(lines)
    assert set(level.attribute_names("vertex")) == {"fa", "rgb"}
    assert set(level.attribute_names("object")) == {"weight", "dir"}
    to_rasmm = zvfs_affine(store)
    stored = level0_polylines(store)
    assert (
        max(float(np.abs(apply_affine(to_rasmm, s) - t).max()) for s, t in zip(stored, truth, strict=True))
        < TOLERANCE_MM
    )


@pytest.mark.parametrize("blank", ["voxel_order", "vox_to_ras"])
def test_trk_legacy_header(tmp_path: Path, blank: str) -> None:
    """Old TrackVis files: nibabel reads an empty voxel_order as LPS and a zero vox_to_ras as the identity."""
    space = TRK_CASES["aniso_oblique"]  # voxel order RAS, so reading "" as LPS moves every point
    lines = streamlines_in_volume(space.vox_to_ras, space.dimensions, n=8, seed=3)
    src = blank_trk_fields(write_trk(tmp_path / "t.trk", lines, **space.header()), **{blank: True})
    store = convert(src, tmp_path / "t.zarrvectors")
    truth = rasmm_truth(src)
    stored = level0_polylines(store)
    assert len(stored) == len(truth) == 8
    assert (
        max(float(np.abs(apply_affine(zvfs_affine(store), s) - t).max()) for s, t in zip(stored, truth, strict=True))
        < TOLERANCE_MM
    )


def test_tck(tmp_path: Path) -> None:
    space = TRK_CASES["las_hcp"]
    lines = streamlines_in_volume(space.vox_to_ras, space.dimensions, n=15, seed=5)
    src = write_tck(tmp_path / "t.tck", lines)
    store = convert(src, tmp_path / "t.zarrvectors", "--chunk-shape", "40,40,40")
    truth = rasmm_truth(src)
    assert len(truth) == 15
    stored = level0_polylines(store)
    assert max(float(np.abs(s - t).max()) for s, t in zip(stored, truth, strict=True)) == 0.0  # stored as RAS+ mm


def test_swc_tree(tmp_path: Path) -> None:
    tree = swc_tree(40, (100, 120, 80))
    store = convert(write_swc(tmp_path / "n.swc", [tree]), tmp_path / "n.zarrvectors", "--chunk-shape", "50,50,50")
    level = zv.open(str(store)).level(0)
    assert level.objects.count == 1
    assert set(level.attribute_names("vertex")) == {"radius", "compartment"}
    assert level.read().edges.shape == (39, 2)


def test_swc_forest_is_refused(tmp_path: Path) -> None:
    trees = [swc_tree(20, (100, 120, 80)), swc_tree(10, (150, 60, 90), first_id=101, seed=1)]
    src = write_swc(tmp_path / "f.swc", trees)
    with pytest.raises(ConversionError, match="forest"):
        convert(src, tmp_path / "f.zarrvectors", "--chunk-shape", "50,50,50")
    assert not (tmp_path / "f.zarrvectors").exists()


def test_obj(tmp_path: Path) -> None:
    mesh = awkward_mesh()
    store = convert(
        write_obj(tmp_path / "m.obj", mesh.vertices, mesh.faces),
        tmp_path / "m.zarrvectors",
        "--chunk-shape",
        "25,25,25",
    )
    level = zv.open(str(store)).level(0)
    assert level.objects.count == 1  # both components and the stray vertices are object 0
    result = level.read()
    assert len(result.positions) == len(mesh.vertices)
    assert len(result.faces) == len(mesh.faces)  # duplicates and degenerates kept
