"""``zvfs.add`` as a notebook uses it: stores added to an in-process ``neuroglancer.Viewer`` (served
by the ``neuroglancer`` package's own server, the stores by zvfs's server beside it), drawn by the
real client in headless Chromium (as in test_browser.py, whose checks these are)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import nibabel as nib
import numpy as np
import pytest
import test_browser
from support import PointSpec, build_meshes, build_points, build_polylines
from test_browser import BRIGHT, LAYERS_JS, MIN_PIXELS, PIXELS_JS, SETTLE_JS, SETTLE_MS, VALUES_JS, VIEWPORT, check

import zvfs

pytestmark = test_browser.pytestmark
browser = test_browser.browser  # its module-scoped Chromium, for this module too

# the voxel sizes (4 x 4 x 25 um, in mm), and a shift that puts the data far from where
# the stored coordinates alone would put it
AFFINE = np.array([[0.004, 0, 0, -50], [0, 0.004, 0, -50], [0, 0, 0.025, -50], [0, 0, 0, 1]])

# the client shows the state Python set: the position (within float32) and the layout
SHOWS_JS = """(target) => {
  const s = window.viewer && window.viewer.state.toJSON();
  return !!s && s.layout === '3d' && Array.isArray(s.position) &&
    s.position.every((v, i) => Math.abs(v - target[i]) <= 1e-5 * Math.max(1, Math.abs(target[i])));
}"""


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small stores in one 0..100 nm box."""
    root = tmp_path_factory.mktemp("notebook-stores")
    return {
        "points": build_points(root / "points.zarrvectors", PointSpec(n=2000, objects=20)),
        "tracts": build_polylines(root / "tracts.zarrvectors")[0],
        "cells": build_meshes(root / "cells.zarrvectors")[0],
    }


def look_at(viewer: zvfs.Viewer, position: np.ndarray) -> None:
    """A 3-D view of ``position`` down the z axis, nothing drawn but the layers (set in Python, as
    a notebook would: the client follows)."""
    with viewer.txn() as s:
        s.layout = "3d"
        s.position = position
        s.projection_orientation = [0, 0, 0, 1]
        s.show_axis_lines = False
        s.show_scale_bar = False
        s.show_default_annotations = False


def test_a_store_added_with_an_affine_is_drawn_where_the_affine_puts_it(browser, stores) -> None:
    """The view zvfs fitted is the affine's image of the store's box, and the client draws the
    points there, and nothing at the same zoom where the stored coordinates alone would be."""
    viewer = zvfs.Viewer()
    assert viewer.add(stores["points"], transform=AFFINE, units="mm") == ["points/annotations"]
    fitted = np.asarray(viewer.state.position, np.float64)
    assert np.allclose(fitted, AFFINE[:3, :3] @ np.full(3, 50.0) + AFFINE[:3, 3], atol=1e-4)  # box 0..100
    assert viewer.state.dimensions.to_json() == {name: [0.001, "m"] for name in "xyz"}

    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(SETTLE_MS)  # a busy machine may take long to start the client
    try:
        page = context.new_page()
        look_at(viewer, fitted)
        page.goto(viewer.get_viewer_url())
        page.wait_for_function(SHOWS_JS, arg=fitted.tolist())
        settled = page.evaluate(SETTLE_JS, {"name": "points/annotations", "timeout": SETTLE_MS})
        assert not settled["errors"] and not settled["failed"] and settled["ready"], settled
        there = page.evaluate(PIXELS_JS)[0]

        stored = np.full(3, 50.0)  # the box's centre in stored coordinates, read as mm
        look_at(viewer, stored)
        page.wait_for_function(SHOWS_JS, arg=stored.tolist())
        elsewhere = page.evaluate(PIXELS_JS)[0]
    finally:
        context.close()
    assert there >= MIN_PIXELS and elsewhere == 0, (there, elsewhere)


def test_several_stores_in_one_server_all_drawn(browser, stores) -> None:
    """Three stores added one after another: their layers read from one zvfs server, and every
    layer passes all four checks of test_browser.py."""
    viewer = zvfs.Viewer()
    names = [name for store in stores.values() for name in viewer.add(store)]
    assert names == ["points/annotations", "tracts/annotations", "tracts/skeletons", "cells/meshes"]
    servers = {
        urlsplit(layer["source"].removeprefix("precomputed://")).netloc for layer in viewer.state.layers.to_json()
    }
    assert len(servers) == 1, servers
    verdicts = check(browser, viewer.get_viewer_url())
    assert sorted(verdicts) == sorted(names)
    for name, verdict in verdicts.items():
        assert not verdict.failures(), (name, verdict.failures(), verdict)


def test_an_image_added_from_python_is_placed_by_its_header(browser, stores, tmp_path) -> None:
    """``viewer.add("t1.nii.gz")`` after a store (the tracts, moved into the image): the image layer
    goes beneath the store's, and the client shows a bright voxel's value at the voxel's centre as
    NIfTI places it (sform, 2.5 mm voxels) and not a voxel and a half away; the same image added
    again (served under another name) reads the same."""
    affine = np.array([[2.5, 0, 0, -20], [0, 2.5, 0, -30], [0, 0, 2.5, -10], [0, 0, 0, 1]])
    data = np.full((10, 12, 14), 50.0, np.float32)
    voxel = np.array([4, 5, 6])
    data[tuple(voxel)] = BRIGHT
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    nib.save(image, tmp_path / "t1.nii.gz")
    centre = (affine[:3, :3] @ voxel + affine[:3, 3]) * 1e-3  # metres
    probes = [centre.tolist(), (centre + np.array([0.00375, 0, 0])).tolist()]  # and 1.5 voxels along x

    viewer = zvfs.Viewer()
    inside = np.array([[0.2, 0, 0, -20], [0, 0.2, 0, -30], [0, 0, 0.2, -10], [0, 0, 0, 1]])  # the tracts in the image
    viewer.add(stores["tracts"], transform=inside, units="mm")
    assert viewer.add(tmp_path / "t1.nii.gz") == ["t1"] and viewer.add(tmp_path / "t1.nii.gz", name="t1 again")
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(SETTLE_MS)
    try:
        page = context.new_page()
        page.goto(viewer.get_viewer_url())
        page.wait_for_function("window.viewer && window.viewer.layerManager.managedLayers.length === 4")
        assert [name for name, _, _ in page.evaluate(LAYERS_JS)][:2] == ["t1", "t1 again"]
        values = {}
        for name in ("t1", "t1 again"):
            settled = page.evaluate(SETTLE_JS, {"name": name, "timeout": SETTLE_MS})
            assert not settled["errors"] and not settled["failed"], settled
            values[name] = page.evaluate(VALUES_JS, {"name": name, "names": list("xyz"), "positions": probes})
    finally:
        context.close()
    assert values == {"t1": [BRIGHT, 50], "t1 again": [BRIGHT, 50]}
