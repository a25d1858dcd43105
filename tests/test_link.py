"""Viewer states (``zvfs.link``, ``zvfs link``) and the ``zvfs view`` server, without a browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests
from support import TIMEOUT, ZVFS, build_every_type, unopenable_copy, viewed, zvfs

from zvfs import link
from zvfs.frontends import view
from zvfs.source import open_tree
from zvfs.tree import DirectoryTree, MultiTree, NotFound

BASE = "http://data.example:9123/"
NM = [1e-9, "m"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """geometry type -> a small store (all in a 0..100 box; skeletons in micrometres)."""
    return build_every_type(tmp_path_factory.mktemp("link-stores"), points=500)


def state_of(path: Path, name: str = "s") -> dict:
    return link.build_state([link.Source(name, open_tree(str(path)), BASE)])


def layers(state: dict) -> dict[str, dict]:
    return {layer["name"]: layer for layer in state["layers"]}


def assert_inside(state: dict, lo: float, hi: float) -> None:
    assert len(state["position"]) == 3
    assert all(lo <= p <= hi for p in state["position"]), state["position"]
    assert state["projectionScale"] > 0 and state["crossSectionScale"] > 0


# -- states of each geometry type ------------------------------------------------------------------


def test_point_cloud_state(stores):
    state = state_of(stores["point_cloud"])
    assert state["dimensions"] == {"x": NM, "y": NM, "z": NM}
    assert_inside(state, 0, 100)
    (layer,) = state["layers"]
    assert layer["name"] == "s/annotations" and layer["type"] == "annotation"
    assert layer["source"] == f"precomputed://{BASE}annotations"
    shader = layer["shader"]
    assert re.search(r'#uicontrol invlerp colour\(property="f32", range=\[-?[\d.]+, [\d.]+\]\)', shader), shader
    assert "#uicontrol float size slider" in shader and "setPointMarkerSize(size)" in shader
    assert "colormapJet(colour())" in shader


def test_line_state_colours_by_both_endpoints(stores):
    (layer,) = state_of(stores["line"])["layers"]
    assert 'property="w_a"' in layer["shader"] and 'property="w_b"' in layer["shader"]
    assert "setLineColor(colormapJet(colour()), colormapJet(colour_b()))" in layer["shader"]


@pytest.mark.parametrize(
    "kind, ids, attribute", [("streamline", [str(i) for i in range(1, 8)], "fa"), ("graph", ["1", "2", "3"], "degree")]
)
def test_polyline_and_graph_states(stores, kind, ids, attribute):
    state = state_of(stores[kind])
    assert_inside(state, 0, 100)
    found = layers(state)
    assert list(found) == ["s/annotations", "s/skeletons"]
    assert found["s/annotations"]["visible"] is False  # the same objects as the skeletons
    skeletons = found["s/skeletons"]
    assert skeletons["type"] == "segmentation" and skeletons["source"] == f"precomputed://{BASE}skeletons"
    assert skeletons["segments"] == ids
    assert f"#uicontrol float {attribute}_min slider" in skeletons["skeletonShader"]
    assert f"colormapJet(clamp(({attribute} - {attribute}_min)" in skeletons["skeletonShader"]


def test_skeleton_state_in_nanometres_coloured_by_swc_type(stores):
    state = state_of(stores["skeleton"])
    assert state["dimensions"] == {"x": NM, "y": NM, "z": NM}
    assert_inside(state, 20_000, 80_000)  # micrometre store: vertices 20..80 um apart from a few
    (layer,) = state["layers"]
    assert layer["segments"] == ["7", "1007", "2007", "3007"]
    assert "emitRGB(swcColour(swc_type))" in layer["skeletonShader"]


def test_mesh_state_prefers_multires_meshes(stores):
    state = state_of(stores["mesh"])
    assert_inside(state, 0, 100)
    (layer,) = state["layers"]
    assert layer["source"] == f"precomputed://{BASE}meshes" and layer["segments"] == ["1", "2", "3"]


def test_segments_are_bounded(stores, monkeypatch):
    monkeypatch.setattr(link, "MAX_SEGMENTS", 2)
    assert layers(state_of(stores["streamline"]))["s/skeletons"]["segments"] == ["1", "2"]


def test_directory_gives_the_same_state(stores, tmp_path):
    """An export (or a mount) is read like the store itself."""
    for kind in ("point_cloud", "skeleton", "mesh"):
        out = tmp_path / kind
        zvfs("export", "--no-progress", str(stores[kind]), str(out))
        assert isinstance(open_tree(str(out)), DirectoryTree)
        assert state_of(out) == state_of(stores[kind])


def test_legacy_meshes_when_alone(stores, tmp_path):
    out = tmp_path / "legacy"
    zvfs("export", "--no-progress", str(stores["mesh"]), str(out))
    shutil.rmtree(out / "meshes")
    state = state_of(out)
    assert_inside(state, 0, 100)
    (layer,) = state["layers"]
    assert layer["source"] == f"precomputed://{BASE}legacy_meshes" and layer["segments"] == ["1", "2", "3"]


def test_several_stores_share_one_space(stores):
    """The first annotation layer's dimensions; micrometre skeletons fitted in nanometres."""
    trees = {name: open_tree(str(stores[kind])) for name, kind in [("pts", "point_cloud"), ("neurons", "skeleton")]}
    state = link.union_state(trees, BASE)
    assert state["dimensions"] == {"x": NM, "y": NM, "z": NM}
    assert [(layer["name"], layer["source"]) for layer in state["layers"]] == [
        ("pts/annotations", f"precomputed://{BASE}pts/annotations"),
        ("neurons/skeletons", f"precomputed://{BASE}neurons/skeletons"),
    ]
    assert_inside(state, 0, 80_000)


def test_broken_layer_is_reported_and_the_rest_shown(stores, tmp_path, caplog):
    """One unusable layer (a broken ``info``) stays in the state without a type, so that the viewer
    shows its error, with a one-line warning naming it; the store's other layers are complete."""
    out = tmp_path / "broken"
    zvfs("export", "--no-progress", str(stores["streamline"]), str(out))
    (out / "annotations" / "info").write_text("{")
    state = state_of(out, "broken")
    layers = {layer["name"]: layer for layer in state["layers"]}
    assert layers["broken/annotations"] == {"name": "broken/annotations", "source": f"precomputed://{BASE}annotations"}
    assert layers["broken/skeletons"]["type"] == "segmentation" and layers["broken/skeletons"]["segments"]
    assert any("/annotations/info: not JSON" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_unreadable_file_is_a_warning_not_a_silent_skip(stores, tmp_path, caplog):
    out = tmp_path / "copy"
    zvfs("export", "--no-progress", str(stores["skeleton"]), str(out))
    (out / "skeletons" / "7").write_bytes(b"\x05\x00")
    state = state_of(out, "copy")
    assert [layer["name"] for layer in state["layers"]] == ["copy/skeletons"]
    assert any("/skeletons/7: left out" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_state_url_round_trip():
    state = {"layers": [{"name": "a b", "shader": '#uicontrol invlerp c(property="x")\nvoid main() {}\n'}]}
    url = link.state_url(state, "http://viewer/")
    assert url.startswith("http://viewer/#!%7B") and " " not in url and "\n" not in url
    assert json.loads(unquote(url.split("#!", 1)[1])) == state


def test_names():
    assert link.source_name("/data/cells.zarrvectors/") == "cells"
    assert link.source_name("https://host/data/cells.zarrvectors/") == "cells"
    assert link.unique_names(["a/x.zarrvectors", "b/x.zarrvectors", "x"]) == {
        "x": "a/x.zarrvectors",
        "x-2": "b/x.zarrvectors",
        "x-3": "x",
    }


# -- MultiTree ---------------------------------------------------------------------------------------


def test_multi_tree(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "d").mkdir(parents=True)
        (tmp_path / name / "d" / "f").write_bytes(name.encode() * 4)
    tree = MultiTree({"one": DirectoryTree(str(tmp_path / "a")), "two": DirectoryTree(str(tmp_path / "b"))})
    assert list(tree.listdir("")) == ["one", "two"] and tree.stat("").is_dir
    assert list(tree.listdir("two/d")) == ["f"]
    assert tree.read("one/d/f") == b"aaaa" and tree.read("/two/d/f", 1, 2) == b"bb"
    assert tree.stat("two/d/f").size == 4
    for missing in ("three", "three/d/f", "one/nope", "../a"):
        with pytest.raises(NotFound):
            tree.stat(missing)
    with pytest.raises(IsADirectoryError):
        tree.read("")
    for bad in ("", "..", "a/b"):
        with pytest.raises(ValueError):
            MultiTree({bad: DirectoryTree(str(tmp_path))})


# -- zvfs link ---------------------------------------------------------------------------------------


def test_link_command(stores):
    out = zvfs("link", str(stores["streamline"]), "--base-url", "http://h:1/data", "--viewer", "http://v/").stdout
    body, url = out.rstrip("\n").rsplit("\n", 1)
    state = json.loads(body)
    assert [layer["source"] for layer in state["layers"]] == [
        "precomputed://http://h:1/data/annotations",
        "precomputed://http://h:1/data/skeletons",
    ]
    assert layers(state)["streamline/skeletons"]["segments"] == [str(i) for i in range(1, 8)]
    assert url.startswith("http://v/#!") and json.loads(unquote(url.split("#!", 1)[1])) == state


def test_link_command_defaults(stores):
    url = zvfs("link", str(stores["mesh"])).stdout.rstrip("\n").rsplit("\n", 1)[1]
    assert url.startswith(link.DEFAULT_VIEWER + "#!")
    assert "precomputed://http://127.0.0.1:9123/meshes" in unquote(url)


# -- zvfs view ---------------------------------------------------------------------------------------


def test_view_serves_client_and_stores(stores, tmp_path):
    with viewed([stores["point_cloud"], stores["mesh"]], tmp_path / "view.log") as (_, url):
        base = url.split("/v/")[0] + "/"
        assert url == f"{base}v/zvfs/"
        index = requests.get(url, timeout=TIMEOUT)
        assert index.status_code == 200 and index.headers["Content-Type"].startswith("text/html")
        script = requests.get(url + re.search(r'src="([^"]+\.js)"', index.text).group(1), timeout=TIMEOUT)
        assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
        wasm = next(Path(view.client_dir()).glob("*.wasm")).name
        assert requests.get(url + wasm, timeout=TIMEOUT).headers["Content-Type"] == "application/wasm"

        assert requests.get(base, timeout=TIMEOUT).json() == ["point_cloud", "mesh"]
        info = requests.get(base + "point_cloud/annotations/info", timeout=TIMEOUT)
        assert info.status_code == 200 and info.headers["Access-Control-Allow-Origin"] == "*"
        assert info.json()["@type"] == "neuroglancer_annotations_v1"
        part = requests.get(base + "mesh/meshes/1", headers={"Range": "bytes=2-9"}, timeout=TIMEOUT)
        assert part.status_code == 206 and len(part.content) == 8
        assert part.headers["Content-Range"].startswith("bytes 2-9/")
        assert requests.get(base + "favicon.ico", timeout=TIMEOUT).status_code == 204

        state = first_event(base)["s"]
        assert [layer["source"] for layer in state["layers"]] == [
            f"precomputed://{base}point_cloud/annotations",
            f"precomputed://{base}mesh/meshes",
        ]
        posted = requests.post(base + "state/zvfs", data=json.dumps({"s": {}, "g": 3}), timeout=TIMEOUT)
        assert posted.status_code == 200 and "g" in posted.json()


def first_event(base: str) -> dict:
    """The first message of the client's state stream."""
    with requests.get(base + "events/zvfs?c=test&gc=&gs=", stream=True, timeout=TIMEOUT) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        line = next(str(raw) for raw in resp.iter_lines(decode_unicode=True) if raw)
    assert line.startswith("data: ")
    message = json.loads(line[len("data: ") :])
    assert message["k"] == "s"
    return message


def test_view_shows_what_opens_and_warns_of_the_rest(stores, tmp_path):
    """A store that cannot be opened is left out with a one-line warning; a directory's such store
    is a layer without a type (the viewer shows its error): every other layer is shown."""
    bad = unopenable_copy(stores["line"], tmp_path / "bad.zarrvectors")
    lab = tmp_path / "lab"
    shutil.copytree(stores["point_cloud"], lab / "ok.zarrvectors")
    unopenable_copy(stores["line"], lab / "broken.zarrvectors")
    log = tmp_path / "view.log"
    with viewed([stores["mesh"], bad, lab], log) as (_, url):
        base = url.split("/v/")[0] + "/"
        assert [layer["name"] for layer in first_event(base)["s"]["layers"]] == [
            "mesh/meshes",
            "lab/broken.zarrvectors",
            "lab/ok.zarrvectors/annotations",
        ]
        resp = requests.get(base + "lab/broken.zarrvectors/info", timeout=TIMEOUT)
        assert resp.status_code == 500 and "zv_version" in resp.json()["error"]
    warnings = [line for line in log.read_text().splitlines() if "WARNING" in line]
    assert any(f"{bad}: cannot open" in line and "not shown" in line for line in warnings), warnings
    assert any("/broken.zarrvectors: layer cannot be used" in line for line in warnings), warnings
    assert "zvfs: error" not in log.read_text()


def test_view_stops_cleanly_with_a_client_connected(stores, tmp_path):
    log = tmp_path / "view.log"
    with viewed([stores["line"]], log) as (proc, url):
        base = url.split("/v/")[0] + "/"
        with requests.get(base + "events/zvfs?c=test&gc=&gs=", stream=True, timeout=TIMEOUT):
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(TIMEOUT) == 0
    assert "ERROR" not in log.read_text()


def test_view_without_neuroglancer_says_how_to_install(stores, tmp_path):
    fake = tmp_path / "fake" / "neuroglancer"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "fake")}
    res = subprocess.run(
        [*ZVFS, "view", str(stores["line"]), "--port", "0", "--no-browser"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
    )
    assert res.returncode == 2
    assert res.stderr.strip() == "zvfs: error: " + view.INSTALL_HINT
