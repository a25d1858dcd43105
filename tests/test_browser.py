"""Real-browser acceptance: ``zvfs view`` in headless Debian Chromium draws every layer type.

The Neuroglancer client is the build inside the ``neuroglancer`` package, served by ``zvfs view``
together with the stores. A layer passes only when all four checks hold, because each failure
mode shows in only some of them:

- ``fetch``: its ``info`` and at least one data file were answered 2xx/206;
- ``source``: no data source of the layer reports an error (a broken ``info``);
- ``chunks``: the viewer is ready, with visible chunks and none pending or failed (a missing
  skeleton or mesh file, a corrupt Draco fragment: nothing else reports those);
- ``pixels``: the 3-D panel drew non-background pixels (a missing annotation cell counts as empty).

Each layer is checked alone (the others hidden), in a 3-D-only layout with axis lines, scale bar and
default annotations hidden. Screenshots of each layer land in the pytest tmp dir; with
``ZVFS_DOCS_IMAGES=DIR`` the default view of each geometry type is also copied to ``DIR/<type>.png``.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from support import build_every_type, viewed, zvfs

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (bin/setup --test installs it)"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing (pip install -e '.[test]')")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 800, "height": 600}
SETTLE_MS = 180_000  # a fail-safe only: the wait ends as soon as the layer has settled
MIN_PIXELS = 50
OK = (200, 206)
TYPES = ("point_cloud", "line", "streamline", "graph", "skeleton", "mesh")

# 3-D panel only; nothing drawn but the layers
PREPARE_JS = """() => {
  const v = window.viewer;
  v.layout.restoreState('3d');
  v.showAxisLines.value = false;
  v.showScaleBar.value = false;
  v.showDefaultAnnotations.value = false;
}"""

# [name, source URL, visible] of every layer
LAYERS_JS = """() => window.viewer.layerManager.managedLayers.map(
  l => [l.name, l.layer.dataSources[0].spec.url, l.visible])"""

# show only the named layer (all of them when null)
ISOLATE_JS = """(name) => {
  for (const l of window.viewer.layerManager.managedLayers) l.setVisible(name === null || l.name === name);
}"""

# wait until the layer's sources are loaded and no chunk is in flight any more (whether all are in or some failed),
# so that what the checks see is the end state, however slowly the machine runs; not settling is an error
SETTLE_JS = """async ({name, timeout}) => {
  const v = window.viewer;
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const at = (s, state, tier) => s[(3 * state + tier) * 3];  // chunk count by ChunkState, tier
  const probe = async () => {
    const out = {visible: 0, busy: 0, failed: 0, loading: 0, errors: [], ready: v.isReady()};
    for (const s of (await v.chunkQueueManager.getStatistics()).values()) {
      for (let state = 0; state < 8; ++state) out.visible += at(s, state, 0);
      out.busy += at(s, 3, 0) + at(s, 4, 0) + at(s, 5, 0);  // downloading, queued, new
      for (let tier = 0; tier < 3; ++tier) out.failed += at(s, 6, tier);
    }
    for (const l of v.layerManager.managedLayers) {
      if (name !== null && l.name !== name) continue;
      for (const ds of l.layer.dataSources) {
        const st = ds.loadState;
        if (st === undefined) ++out.loading;
        else if (st.error !== undefined) out.errors.push(`${l.name}: ${st.error.message}`);
      }
      for (const m of l.layer.messages) if (m.severity === 2) out.errors.push(`${l.name}: ${m.message}`);
    }
    return out;
  };
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const start = performance.now();
  let settled = 0, p, last;
  while (performance.now() - start < timeout) {
    p = await probe();
    // settled: nothing loading or in flight, either everything is in or something failed, and the counts
    // unchanged for three probes in a row (a failed chunk must not end the wait before its siblings are queued)
    const done = p.errors.length > 0 || p.failed > 0 || (p.ready && p.visible > 0);
    const counts = JSON.stringify([p.visible, p.failed, p.errors.length]);
    settled = done && !p.loading && !p.busy && (settled === 0 || counts === last) ? settled + 1 : 0;
    last = counts;
    if (settled === 3) return p;
    await sleep(150);
  }
  throw new Error(`layer ${name} did not settle in ${timeout} ms: ${JSON.stringify(p)}`);
}"""

# draw, copy the WebGL canvas in the same task, count non-black pixels
PIXELS_JS = """() => {
  const v = window.viewer;
  v.display.draw();
  const gl = v.display.canvas, c = document.createElement('canvas');
  c.width = gl.width;
  c.height = gl.height;
  const ctx = c.getContext('2d');
  ctx.drawImage(gl, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] > 16 || d[i + 1] > 16 || d[i + 2] > 16) ++n;
  return [n, c.toDataURL('image/png')];
}"""


@dataclass
class Verdict:
    """What the browser saw of one layer."""

    info: bool
    data: bool
    ranged: bool  # a data file was read by a byte range (206)
    errors: list[str]
    ready: bool
    failed: int
    pixels: int
    png: bytes
    visible: bool  # in the state zvfs view sent

    def failures(self) -> set[str]:
        """The checks that did not hold."""
        failed = {
            "fetch": not (self.info and self.data),
            "source": bool(self.errors),
            "chunks": not self.ready or self.failed > 0,
            "pixels": self.pixels < MIN_PIXELS,
        }
        return {check for check, bad in failed.items() if bad}


def fetched(responses: list[tuple[int, str]], source: str) -> tuple[bool, bool, bool]:
    """(info fetched, a data file fetched, a data file answered 206) with 2xx/206 for the layer at
    ``source``."""
    root = source.removeprefix("precomputed://").rstrip("/")
    good = [(url.split("?")[0], status) for status, url in responses if status in OK]
    data = [s for u, s in good if u.startswith(root + "/") and u != root + "/info" and "/segment_properties/" not in u]
    return any(u == root + "/info" for u, _ in good), bool(data), 206 in data


def check(browser, url: str, layer: str | None = None) -> dict[str, Verdict]:
    """Load the viewer at ``url`` and check each layer alone (or only ``layer``)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(SETTLE_MS)  # a busy machine may take long to start the client
    responses: list[tuple[int, str]] = []
    context.on("response", lambda r: responses.append((r.status, r.url)))
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("window.viewer && window.viewer.layerManager.managedLayers.length > 0")
        page.evaluate(PREPARE_JS)
        verdicts = {}
        for name, source, visible in page.evaluate(LAYERS_JS):
            if layer not in (None, name):
                continue
            page.evaluate(ISOLATE_JS, name)
            p = page.evaluate(SETTLE_JS, {"name": name, "timeout": SETTLE_MS})
            pixels, png = page.evaluate(PIXELS_JS)
            verdicts[name] = Verdict(
                *fetched(responses, source),
                p["errors"],
                p["ready"],
                p["failed"],
                pixels,
                base64.b64decode(png.split(",", 1)[1]),
                visible,
            )
        return verdicts
    finally:
        context.close()


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """geometry type -> a small store of it."""
    return build_every_type(tmp_path_factory.mktemp("browser-stores"), points=2000)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def exported(store: Path, out: Path) -> Path:
    zvfs("export", "--no-progress", str(store), str(out))
    return out


def save_shots(kind: str, verdicts: dict[str, Verdict], shots: Path) -> None:
    """Every layer's screenshot as an artefact; the first default-visible one also to the docs."""
    for name, v in verdicts.items():
        (shots / f"{kind}-{name.split('/')[-1]}.png").write_bytes(v.png)
    docs = os.environ.get("ZVFS_DOCS_IMAGES")
    if docs:
        first = next(v for v in verdicts.values() if v.visible)
        Path(docs, f"{kind}.png").write_bytes(first.png)


# -- every geometry type renders -----------------------------------------------------------------

EXPECTED_LAYERS = {
    "point_cloud": ["annotations"],
    "line": ["annotations"],
    "streamline": ["annotations", "skeletons"],
    "graph": ["annotations", "skeletons"],
    "skeleton": ["skeletons"],
    "mesh": ["meshes"],
}


@pytest.mark.parametrize("kind", TYPES)
def test_every_layer_renders(kind: str, browser, stores, shots, tmp_path):
    with viewed([stores[kind]], tmp_path / "view.log") as (_, url):
        verdicts = check(browser, url)
    assert sorted(verdicts) == [f"{kind}/{d}" for d in EXPECTED_LAYERS[kind]]
    save_shots(kind, verdicts, shots)
    for name, v in verdicts.items():
        assert not v.failures(), (name, v.failures(), v)


def test_legacy_meshes_render_without_multires(browser, stores, tmp_path):
    """A tree with only ``legacy_meshes/`` gets that layer, and it renders."""
    copy = exported(stores["mesh"], tmp_path / "legacy")
    shutil.rmtree(copy / "meshes")
    with viewed([copy], tmp_path / "view.log") as (_, url):
        verdicts = check(browser, url)
    assert list(verdicts) == ["legacy/legacy_meshes"]
    assert not verdicts["legacy/legacy_meshes"].failures()


def test_several_stores_one_view(browser, stores, tmp_path):
    """Every store of every type at once (all in nanometres): all layers in one view, all drawn."""
    with viewed([stores[k] for k in TYPES], tmp_path / "view.log", "--units", "nanometer") as (_, url):
        verdicts = check(browser, url)
    assert sorted(verdicts) == sorted(f"{k}/{d}" for k in TYPES for d in EXPECTED_LAYERS[k])
    for name, v in verdicts.items():
        assert not v.failures(), (name, v.failures(), v)


@pytest.mark.parametrize("kind", ["graph", "skeleton"])
def test_every_pinned_skeleton_level_draws(kind: str, browser, tmp_path):
    """zarr-vectors keeps no edges on coarse graph and skeleton levels; zvfs derives them, so that
    ``levels/N/skeletons`` draws at every level (viewed from an export of a 3-level store)."""
    from support import add_pyramid, build_graph, build_skeletons

    store = (
        build_graph(tmp_path / "g.zarrvectors")[0]
        if kind == "graph"
        else build_skeletons(tmp_path / "s.zarrvectors")[0]
    )
    copy = exported(add_pyramid(store, 3), tmp_path / "copy")
    with viewed([copy / "levels"], tmp_path / "view.log") as (_, url):
        verdicts = {name: v for name, v in check(browser, url).items() if name.endswith("/skeletons")}
    assert sorted(verdicts) == [f"levels/{k}/skeletons" for k in range(3)]
    for name, v in verdicts.items():
        assert not v.failures(), (name, v.failures(), v)


# -- the checks can fail ---------------------------------------------------------------------------


def test_broken_info_fails(browser, stores, tmp_path):
    copy = exported(stores["point_cloud"], tmp_path / "copy")
    with viewed([copy], tmp_path / "view.log") as (_, url):
        (copy / "annotations" / "info").write_text('{"@type": "neuroglancer_annotations_v1", "dimensions": ')
        v = check(browser, url)["copy/annotations"]
    assert "source" in v.failures(), v.errors


def test_missing_skeleton_file_fails_only_the_chunk_check(browser, stores, tmp_path):
    copy = exported(stores["skeleton"], tmp_path / "copy")
    (copy / "skeletons" / "1007").unlink()
    with viewed([copy], tmp_path / "view.log") as (_, url):
        v = check(browser, url)["copy/skeletons"]
    assert v.failures() == {"chunks"} and v.failed > 0


def test_corrupt_draco_fragment_fails_only_the_chunk_check(browser, stores, tmp_path):
    copy = exported(stores["mesh"], tmp_path / "copy")
    fragment = copy / "meshes" / "2"
    fragment.write_bytes(np.random.default_rng(0).integers(0, 256, fragment.stat().st_size, np.uint8).tobytes())
    with viewed([copy], tmp_path / "view.log") as (_, url):
        v = check(browser, url)["copy/meshes"]
    assert v.failures() == {"chunks"} and v.failed > 0


def test_missing_annotation_cells_show_only_as_no_pixels(browser, stores, tmp_path):
    copy = exported(stores["point_cloud"], tmp_path / "copy")
    for level in (copy / "annotations").glob("spatial*"):
        shutil.rmtree(level)
    with viewed([copy], tmp_path / "view.log") as (_, url):
        v = check(browser, url)["copy/annotations"]
    assert v.failures() == {"fetch", "pixels"}


# -- tracts over their anatomy ---------------------------------------------------------------------

BRIGHT = 1000.0
# (physical metres of each model point) through a layer's loaded source transform, as the client renders it:
# the linear part scaled by input scale / output scale, then in the output dimensions' units
MODEL_TO_PHYSICAL_JS = """({name, points}) => {
  const t = window.viewer.layerManager.getLayerByName(name).layer.dataSources[0].loadState.transform.value;
  const r = t.rank, m = t.transform, inS = t.inputSpace.scales, outS = t.outputSpace.scales;
  return {names: t.outputSpace.names, points: points.map(p => outS.map((s, o) => {
    let v = m[r * (r + 1) + o];
    for (let i = 0; i < r; ++i) v += m[i * (r + 1) + o] * p[i] * inS[i] / s;
    return v * s;
  }))};
}"""
# the image layer's voxel value at physical positions (metres, by dimension name), as its side panel shows it
VALUES_JS = """({name, names, positions}) => {
  const v = window.viewer, space = v.coordinateSpace.value;
  const layer = v.layerManager.getLayerByName(name).layer;
  return positions.map(p => {
    const g = new Float32Array(space.rank);
    names.forEach((n, i) => { g[space.names.indexOf(n)] = p[i] / space.scales[space.names.indexOf(n)]; });
    const value = layer.getValueAt(g, {pickedRenderLayer: null});
    return value == null ? null : Number(value);
  });
}"""


def phantom(dims: np.ndarray) -> np.ndarray:
    """A brain-like "T1": grey matter shell, white matter, ventricles, in an ellipsoid (float32)."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, d) for d in dims), indexing="ij")
    r = np.sqrt(x**2 + y**2 + z**2)
    data = np.where(r < 0.95, np.where(r > 0.75, 170.0, 120.0 + 15 * np.cos(4 * x) * np.cos(3 * y)), 0.0)
    data[(np.abs(x) < 0.12) & (np.abs(y) < 0.35) & (np.abs(z) < 0.25)] = 40.0
    return data.astype(np.float32)


def bundles(dims: np.ndarray, seed: int = 3) -> list[np.ndarray]:
    """Streamlines in voxel indices the way tractography draws them: left-right arcs over the ventricles,
    superior-inferior and anterior-posterior bundles in each hemisphere (float64, 40 points each)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, 40)
    out = []
    for _ in range(30):  # arcs from hemisphere to hemisphere
        y, h = rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.25)
        out.append(np.stack([0.2 + 0.6 * t, np.full_like(t, y), 0.45 - h * np.sin(np.pi * t)], 1))
    for side in (0.3, 0.7):
        for _ in range(15):  # superior-inferior, bending outwards
            x0, y0 = side + rng.normal(0, 0.02), 0.5 + rng.normal(0, 0.05)
            out.append(np.stack([x0 + (side - 0.5) * 0.3 * t**2, y0 + 0 * t, 0.1 + 0.75 * t], 1))
            out.append(np.stack([x0 + 0 * t, 0.15 + 0.7 * t, 0.45 + 0.1 * np.sin(np.pi * t) + rng.normal(0, 0.01)], 1))
    return [np.clip(line + rng.normal(0, 0.004, line.shape), 0, 1) * (dims - 1) for line in out]


def anatomy(root: Path, frame_name: str, qform: bool) -> tuple[Path, Path, np.ndarray, list[np.ndarray]]:
    """A NIfTI "T1" with bright voxels and a TRK tractogram tracked on it whose first streamlines pass
    exactly through the bright voxels' centres, converted by zvtools. Returns (store, image, vox_to_ras,
    bright voxel centres in RAS+ mm)."""
    import nibabel as nib
    from ecosystem import TRK_CASES, convert, write_trk

    frame = TRK_CASES[frame_name]
    a = np.asarray(frame.vox_to_ras, float)
    dims = np.asarray(frame.dimensions)
    data = phantom(dims)
    voxels = [dims // 2 + [3, 5, 2], dims // 3, (dims * 2) // 3]
    for v in voxels:
        data[tuple(v)] = BRIGHT
    image = nib.Nifti1Image(data, a)
    if qform:
        image.set_qform(a, code=1)
    image.header.set_xyzt_units("mm")
    nib.save(image, root / f"{frame_name}_t1.nii.gz")
    centres = [a[:3, :3] @ v + a[:3, 3] for v in voxels]
    through = [c + np.outer(np.arange(-3, 4), [0.7, -0.4, 0.5]) for c in centres]  # vertex 3 at the centre
    tracts = [line @ a[:3, :3].T + a[:3, 3] for line in bundles(dims)]
    src = write_trk(
        root / f"{frame_name}.trk",
        [*through, *tracts],
        voxel_sizes=frame.voxel_sizes,
        dimensions=frame.dimensions,
        vox_to_ras=a,
        voxel_order=frame.voxel_order,
    )
    return convert(src, root / f"{frame_name}.zarrvectors"), root / f"{frame_name}_t1.nii.gz", a, centres


@pytest.mark.parametrize(("frame", "qform"), [("lps", True), ("aniso_oblique", False)])
def test_streamlines_meet_the_voxels_they_were_tracked_through(browser, tmp_path, frame, qform):
    """``zvfs view TRACTS --image T1``: each streamline vertex placed at a bright voxel's centre (by
    nibabel) is where the client shows that voxel, within a third of a voxel each way; the image is
    placed by its sform (qform left unset in the oblique case) with voxel centres where NIfTI puts them."""
    from neuroglancer import read_precomputed_annotations

    store, t1, a, centres = anatomy(tmp_path, frame, qform)
    with viewed([store], tmp_path / "view.log", "--image", str(t1)) as (_, url):
        base = url.split("/v/")[0]
        reader = read_precomputed_annotations.AnnotationReader(f"{base}/{store.stem}/annotations/")
        model = [np.asarray(reader.by_id[k + 1].points)[3].tolist() for k in range(len(centres))]
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(SETTLE_MS)
        try:
            page = context.new_page()
            page.goto(url)
            page.wait_for_function("window.viewer && window.viewer.layerManager.managedLayers.length > 1")
            names = [name for name, _, _ in page.evaluate(LAYERS_JS)]
            assert names[0] == f"{frame}_t1"  # the image first, beneath the vector layers
            page.evaluate("() => window.viewer.layout.restoreState('xy')")
            page.evaluate(ISOLATE_JS, names[0])
            settled = page.evaluate(SETTLE_JS, {"name": names[0], "timeout": SETTLE_MS})
            assert not settled["errors"] and not settled["failed"], settled
            page.evaluate(SETTLE_JS, {"name": f"{store.stem}/annotations", "timeout": SETTLE_MS})
            placed = page.evaluate(MODEL_TO_PHYSICAL_JS, {"name": f"{store.stem}/annotations", "points": model})
            vertices = np.asarray(placed["points"])
            np.testing.assert_allclose(vertices * 1e3, centres, rtol=0, atol=1e-3)  # metres -> mm, 1 µm
            # around each vertex, a third of a voxel along each voxel axis: still the bright voxel; 1.5 voxels off: not
            steps = [np.zeros(3), *(s * a[:3, k] / 3 for k in range(3) for s in (-1, 1))]
            probes = [(v + step * 1e-3).tolist() for v in vertices for step in steps]
            outside = [(v + 1.5 * a[:3, 0] * 1e-3).tolist() for v in vertices]
            values = page.evaluate(VALUES_JS, {"name": names[0], "names": placed["names"], "positions": probes})
            assert values == [BRIGHT] * len(probes), values
            values = page.evaluate(VALUES_JS, {"name": names[0], "names": placed["names"], "positions": outside})
            assert BRIGHT not in values and None not in values, values
            if frame == "lps":
                save_anatomy_shot(page, names)
        finally:
            context.close()


def save_anatomy_shot(page, names: list[str]) -> None:
    """The default view (image slices beneath direction-coloured tracts) for the README, with
    ``ZVFS_DOCS_IMAGES=DIR``."""
    docs = os.environ.get("ZVFS_DOCS_IMAGES")
    if not docs:
        return
    page.evaluate("() => { window.viewer.layout.restoreState('xy-3d'); window.viewer.projectionScale.value /= 1.7; }")
    page.evaluate("(names) => { for (const l of window.viewer.layerManager.managedLayers) "
                  "l.setVisible(!l.name.endsWith('/annotations')); }", names)  # fmt: skip
    page.evaluate(SETTLE_JS, {"name": None, "timeout": SETTLE_MS})
    _, png = page.evaluate(PIXELS_JS)
    Path(docs, "anatomy.png").write_bytes(base64.b64decode(png.split(",", 1)[1]))
