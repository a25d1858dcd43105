"""Reference images beside the vector layers: ``--image`` for serve, link and view. Which sources are
recognised, local images served by the same server (byte for byte), and the NIfTI layer's source
transform checked against nibabel's own affine (voxel centres where NIfTI puts them). That the client
then shows the voxels where the tracts are is tests/test_browser.py's job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import requests
from support import PointSpec, build_points, served, zvfs

from zvfs.errors import UsageError
from zvfs.images import parse_image

OBLIQUE = np.array([[1.9, 0.3, 0.0, -60.0], [-0.3, 1.9, 0.2, -80.0], [0.0, -0.2, 2.5, -30.0], [0, 0, 0, 1]])


def write_nifti(path: Path, affine: np.ndarray, shape: tuple[int, ...] = (8, 9, 10), qform: bool = False) -> Path:
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    image = nib.Nifti1Image(data, affine)
    if qform:
        image.set_qform(np.diag([3.0, 3, 3, 1]), code=1)  # a qform that disagrees: the sform wins
    image.header.set_xyzt_units("mm")
    nib.save(image, path)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return build_points(tmp_path / "cells.zarrvectors", PointSpec(n=200, unit="mm"))


def link_state(*args: str) -> dict:
    out = zvfs("link", *args).stdout
    return json.loads(out[: out.rindex("}") + 1])


def test_sources_recognised(tmp_path: Path) -> None:
    nii = write_nifti(tmp_path / "t1.nii.gz", OBLIQUE)
    ome = tmp_path / "brain.ome.zarr"
    ome.mkdir()
    (ome / "zarr.json").write_text("{}")
    assert parse_image(str(nii)).scheme == "nifti" and parse_image(str(nii)).path == str(nii)
    assert parse_image(str(ome)).scheme == "zarr"
    assert parse_image("precomputed://gs://bucket/em").url == "gs://bucket/em"
    assert parse_image("https://host/data/t1.nii.gz").scheme == "nifti"
    for bad in (str(tmp_path / "missing.nii"), str(tmp_path), "https://host/volume"):
        with pytest.raises(UsageError):
            parse_image(bad)


def expected_matrix(affine: np.ndarray) -> np.ndarray:
    """nibabel's voxel-centre affine as the client's source transform: voxel i spans [i, i+1) there."""
    out = affine[:3].copy()
    out[:, 3] -= affine[:3, :3] @ [0.5, 0.5, 0.5]
    return out


def test_link_puts_the_image_first_with_its_header_transform(tmp_path: Path, store: Path) -> None:
    nii = write_nifti(tmp_path / "t1.nii.gz", OBLIQUE, qform=True)
    state = link_state(str(store), "--image", str(nii), "--base-url", "http://example.org/tree")
    image, *vectors = state["layers"]
    assert image["type"] == "image" and image["name"] == "t1" and vectors and state["showSlices"]
    assert image["source"]["url"] == "nifti://http://example.org/tree/_images/t1.nii.gz"
    transform = image["source"]["transform"]
    loaded: Any = nib.load(nii)
    np.testing.assert_allclose(transform["matrix"], expected_matrix(loaded.affine), atol=1e-5)
    assert transform["outputDimensions"] == {axis: [0.001, "m"] for axis in "xyz"}
    lo, hi = np.percentile(np.asarray(loaded.dataobj), [0.5, 99.5])
    np.testing.assert_allclose(image["shaderControls"]["normalized"]["range"], [lo, hi])


def test_a_4d_image_is_left_to_the_client_with_a_warning(tmp_path: Path, store: Path) -> None:
    nii = write_nifti(tmp_path / "dwi.nii.gz", OBLIQUE, shape=(4, 4, 4, 3))
    result = zvfs("link", str(store), "--image", str(nii))
    state = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert state["layers"][0]["source"] == "nifti://http://127.0.0.1:9123/_images/dwi.nii.gz"
    assert "not a 3-D NIfTI image" in result.stderr and str(nii) in result.stderr


def test_serve_serves_local_images_beside_the_store(tmp_path: Path, store: Path) -> None:
    nii = write_nifti(tmp_path / "t1.nii.gz", OBLIQUE)
    with served(store, tmp_path / "serve.log", "--image", str(nii)) as (_, url):
        got = requests.get(f"{url}_images/t1.nii.gz", timeout=60)
        assert got.status_code == 200 and got.content == nii.read_bytes()
        part = requests.get(f"{url}_images/t1.nii.gz", headers={"Range": "bytes=0-99"}, timeout=60)
        assert part.status_code == 206 and part.content == nii.read_bytes()[:100]
        assert requests.get(f"{url}annotations/info", timeout=60).json()["@type"] == "neuroglancer_annotations_v1"
        # the header is read over HTTP too: a NIfTI URL gets the same transform as the local file
        remote = link_state(str(store), "--image", f"{url}_images/t1.nii.gz")
        local = link_state(str(store), "--image", str(nii))
        assert remote["layers"][0]["source"]["transform"] == local["layers"][0]["source"]["transform"]
        assert remote["layers"][0]["source"]["url"] == f"nifti://{url}_images/t1.nii.gz"
