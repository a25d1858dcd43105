"""The Python API (``zvfs.open_tree``, ``info``, ``export``, ``mount``, ``serve``, ``add``) through
real front ends: what it serves, mounts and exports is read back over HTTP and from the kernel and
compared with what the command line gives for the same options; it prints nothing and raises the
command line's one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import neuroglancer
import nibabel as nib
import numpy as np
import pytest
import requests
from support import (
    TIMEOUT,
    PointSpec,
    build_points,
    build_skeletons,
    free_port,
    is_mounted,
    listening,
    mounted,
    read_files,
    same_tree,
)
from support import zvfs as cli  # the command line, run as a subprocess

import zvfs

ROOT = Path(__file__).resolve().parent.parent
# the affine (voxels of 4 x 4 x 25 um, in mm), moved away from the stored coordinates
AFFINE = np.array([[0.004, 0, 0, -50], [0, 0.004, 0, -50], [0, 0, 0.025, -50], [0, 0, 0, 1]])
T1_AFFINE = np.array([[2.0, 0, 0, -20], [0, 2, 0, -30], [0, 0, 2, -10], [0, 0, 0, 1]])
SPACE: zvfs.TreeOptions = {"transform": AFFINE, "units": "mm"}
SPACE_ARGS = ["--transform", json.dumps(AFFINE.tolist()), "--units", "mm"]
HEAVY = ("numpy", "zarr", "zarr_vectors", "tornado", "neuroglancer", "fsspec", "mfusepy")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("api-stores")
    return {
        "points": build_points(root / "points.zarrvectors", PointSpec(n=2000, objects=20, typed=True)),
        "neurons": build_skeletons(root / "neurons.zarrvectors")[0],
    }


@pytest.fixture(scope="module")
def cli_export(stores: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``zvfs export --transform AFFINE --units mm`` of the point store."""
    out = tmp_path_factory.mktemp("cli-export") / "out"
    cli("export", "--no-progress", str(stores["points"]), str(out), *SPACE_ARGS)
    return out


# -- import, errors ----------------------------------------------------------------------------------


def test_import_is_cheap_and_silent() -> None:
    """``import zvfs`` prints nothing and loads no heavy module; every public name resolves."""
    code = (
        "import sys, zvfs\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
        "for name in zvfs.__all__: getattr(zvfs, name)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    assert (res.stdout, res.stderr) == ("[]\n", "")
    assert zvfs.StoreError is zvfs.errors.StoreError and zvfs.ReadFailed.__module__ == "zvfs.tree"
    assert (ROOT / "zvfs" / "py.typed").is_file()


def test_without_neuroglancer_add_says_how_to_install_it(stores: dict[str, Path]) -> None:
    """The rest of the API does not need the package."""
    code = (
        "import sys; sys.modules['neuroglancer'] = None\n"  # as if not installed
        "import zvfs\n"
        f"print(list(zvfs.open_tree({str(stores['points'])!r}).listdir('')))\n"
        "zvfs.add\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert res.stdout == "['annotations']\n"
    assert res.stderr.strip().endswith("ImportError: zvfs.add needs the neuroglancer package: pip install 'zvfs[view]'")


@pytest.mark.parametrize(
    "call, args",
    [
        (lambda store, tmp: zvfs.open_tree(tmp / "missing.zarrvectors"), ["info", "{tmp}/missing.zarrvectors"]),
        (lambda store, tmp: zvfs.info(tmp / "missing.zarrvectors"), ["info", "{tmp}/missing.zarrvectors"]),
        (lambda store, tmp: zvfs.open_tree(store, transform=[[1, 2]]), ["info", "{store}", "--transform", "[[1,2]]"]),
        (lambda store, tmp: zvfs.info(store, units="parsec"), ["info", "{store}", "--units", "parsec"]),
    ],
)
def test_errors_are_the_command_lines(call, args, stores, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """The same one-line message, raised as the same exception, and nothing printed."""
    res = cli(*(a.format(store=stores["points"], tmp=tmp_path) for a in args), check=False)
    assert res.returncode == 2
    with pytest.raises((zvfs.StoreError, zvfs.UsageError)) as caught:
        call(stores["points"], tmp_path)
    assert f"zvfs: error: {caught.value}\n" == res.stderr
    assert capfd.readouterr() == ("", "")


def test_a_busy_port_is_a_usage_error() -> None:
    with zvfs.serve() as server, pytest.raises(zvfs.UsageError, match="already in use"):
        zvfs.serve(port=int(server.url.rsplit(":", 1)[1].strip("/")))


# -- open_tree, info -----------------------------------------------------------------------------------


def test_transform_as_array_lists_or_text_is_the_same(stores: dict[str, Path], cli_export: Path) -> None:
    """A NumPy array, nested lists, a 3x4 and JSON text give the tree the command line gives."""
    files = [
        "annotations/info",
        *sorted(f"annotations/spatial0/{n}" for n in os.listdir(cli_export / "annotations/spatial0"))[:3],
    ]
    for transform in (AFFINE, AFFINE.tolist(), AFFINE[:3], json.dumps(AFFINE.tolist())):
        tree = zvfs.open_tree(stores["points"], transform=transform, units="mm")
        assert {f: tree.read(f) for f in files} == {f: (cli_export / f).read_bytes() for f in files}


def test_info_is_what_zvfs_info_json_prints(stores: dict[str, Path]) -> None:
    printed = json.loads(cli("info", "--json", str(stores["points"]), *SPACE_ARGS).stdout)
    assert zvfs.info(stores["points"], transform=AFFINE, units="mm") == printed
    assert printed["coordinates"]["units"] == ["mm"] * 3


# -- export, mount ----------------------------------------------------------------------------------------


def test_export_gives_the_command_lines_bytes(stores: dict[str, Path], cli_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = zvfs.export(stores["points"], out, progress=False, **SPACE)
    assert same_tree(out, cli_export)
    assert done.files == done.written == len(read_files(out))
    victim = next((out / "annotations" / "by_id").iterdir())
    victim.unlink()
    with pytest.raises(zvfs.UsageError, match="not empty"):
        zvfs.export(stores["points"], out, progress=False, **SPACE)
    again = zvfs.export(stores["points"], out, progress=False, resume=True, **SPACE)
    assert (again.files, again.written) == (done.files, 1) and same_tree(out, cli_export)


def test_export_on_a_dask_client(stores: dict[str, Path], cli_export: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, dashboard_address=None) as client:
        done = zvfs.export(stores["points"], tmp_path / "out", progress=False, dask=client, **SPACE)
        assert client.status == "running"  # a client given is left open
    assert done.dask_workers == 1 and same_tree(tmp_path / "out", cli_export)


def test_mount_gives_the_command_lines_bytes(stores: dict[str, Path], tmp_path: Path) -> None:
    """A real mount for the block, read by the kernel, byte for byte the CLI's mount; unmounted
    at the end of the block, its daemon gone."""
    with mounted(stores["points"], tmp_path / "cli", *SPACE_ARGS) as cli:
        expected = read_files(cli)
    (tmp_path / "api").mkdir()
    with zvfs.mount(stores["points"], tmp_path / "api", **SPACE) as mountpoint:
        assert mountpoint == tmp_path / "api" and is_mounted(mountpoint)
        assert read_files(mountpoint) == expected
        daemons = [pid for pid in os.listdir("/proc") if pid.isdigit() and _runs(pid, str(mountpoint))]
        assert len(daemons) == 1
    assert not is_mounted(tmp_path / "api") and not _runs(daemons[0], str(mountpoint))


def _runs(pid: str, argument: str) -> bool:
    """Whether process ``pid`` is alive (not a zombie) with ``argument`` on its command line."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return os.fsencode(argument) in args and state != "Z"


def test_mount_refuses_a_busy_mountpoint(stores: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    (tmp_path / "mnt" / "mine").write_text("keep")
    with pytest.raises(zvfs.UsageError, match="not empty"), zvfs.mount(stores["points"], tmp_path / "mnt"):
        pass


# -- serve -------------------------------------------------------------------------------------------------


def test_one_server_serves_several_stores_and_takes_more(stores: dict[str, Path], cli_export: Path) -> None:
    """Each store under its name, with CORS and ranges; a store added while it runs (the same
    store twice: two names) is served at once."""
    with zvfs.serve(stores["neurons"], stores["points"], **SPACE) as server:
        assert server.stores == {name: f"{server.url}{name}/" for name in ("neurons", "points")}
        assert requests.get(server.url, timeout=TIMEOUT).json() == ["neurons", "points"]
        for path, data in read_files(cli_export).items():
            resp = requests.get(f"{server.url}points/{path}", timeout=TIMEOUT)
            assert resp.status_code == 200 and resp.content == data, path
        assert requests.get(server.url + "neurons/skeletons/info", timeout=TIMEOUT).json()["@type"] == (
            "neuroglancer_skeletons"
        )
        added = server.add(stores["points"], **SPACE)
        assert (added.name, added.url) == ("points-2", f"{server.url}points-2/")
        info = requests.get(added.url + "annotations/info", headers={"Range": "bytes=0-9"}, timeout=TIMEOUT)
        assert info.status_code == 206 and info.content == (cli_export / "annotations" / "info").read_bytes()[:10]
        assert info.headers["Access-Control-Allow-Origin"] == "*"
        assert requests.get(server.url, timeout=TIMEOUT).json() == ["neurons", "points", "points-2"]


def test_close_frees_the_port_and_threads(stores: dict[str, Path]) -> None:
    """close() returns once the port is free (a new server can take it at once), the open connections
    are closed (a keep-alive client does not hold it up) and no thread of the server is left."""
    port = free_port()
    before = set(threading.enumerate())
    server = zvfs.serve(stores["points"], port=port)
    with requests.Session() as client:  # keeps its connection open
        for _ in range(3):
            assert client.get(server.url + "points/annotations/info", timeout=TIMEOUT).status_code == 200
        ours = [t for t in set(threading.enumerate()) - before if t.name.startswith("zvfs-http")]
        assert len(ours) >= 2, ours  # the server's thread and a worker
        server.close()
        assert not listening(port)
        assert not [t for t in ours if t.is_alive()]
        with pytest.raises(requests.ConnectionError):
            client.get(server.url + "points/annotations/info", timeout=TIMEOUT)
    with zvfs.serve(port=port):  # a new server takes the port at once (a notebook cell run again)
        assert listening(port)
    server.close()  # again: nothing


# -- add: a store's layers in a neuroglancer.Viewer ------------------------------------------------------


def test_add_gives_the_layers_and_view_of_zvfs_link(stores: dict[str, Path]) -> None:
    """The layers (defaults, shaders, segments), dimensions and view fit ``zvfs link`` prints for
    the same store, options and server."""
    viewer = neuroglancer.Viewer()
    with zvfs.serve() as server:
        names = zvfs.add(viewer, stores["points"], server=server, **SPACE)
        url = server.stores["points"]
        printed = json.loads(
            cli("link", str(stores["points"]), "--base-url", url, *SPACE_ARGS).stdout.rsplit("\n", 2)[0]
        )
    state = viewer.state.to_json()
    assert names == ["points/annotations"] and state["layers"] == printed["layers"]
    assert state["dimensions"] == printed["dimensions"] == {name: [0.001, "m"] for name in "xyz"}
    for key in ("position", "projectionScale", "crossSectionScale", "projectionOrientation"):
        assert np.allclose(state[key], printed[key], rtol=1e-6), key
    assert (state["layout"], state["showSlices"]) == (printed["layout"], printed["showSlices"])
    centre = AFFINE[:3, :3] @ np.full(3, 50.0) + AFFINE[:3, 3]  # the store's box is 0..100
    assert np.allclose(state["position"], centre, atol=0.01)


def test_add_again_replaces_the_layers_from_a_new_url(stores: dict[str, Path]) -> None:
    """A notebook cell run again: the same layers, read from a path of their own (no stale data
    cached by the client under the old one); another store's layers are added beside them."""
    viewer = zvfs.Viewer()
    first = viewer.add(stores["neurons"])
    position = viewer.state.position.tolist()
    again = viewer.add(stores["neurons"], transform=np.diag([2.0, 2, 2, 1]), fit=False)
    assert first == again == ["neurons/skeletons"]
    (layer,) = viewer.state.to_json()["layers"]
    assert layer["source"].endswith("/neurons-2/skeletons") and viewer.state.position.tolist() == position
    assert zvfs.add(viewer, stores["points"], name="pts") == ["pts/annotations"]
    sources = [lay["source"].removeprefix("precomputed://") for lay in viewer.state.to_json()["layers"]]
    assert len({urlsplit(s).netloc for s in sources}) == 1  # one server
    assert viewer.state.dimensions.to_json() == {name: [1e-9, "m"] for name in "xyz"}  # the first add's


def test_add_with_a_base_url_serves_nothing(stores: dict[str, Path]) -> None:
    viewer = neuroglancer.Viewer()
    before = set(threading.enumerate())
    zvfs.add(viewer, stores["points"], base_url="http://data.example/p")
    (layer,) = viewer.state.to_json()["layers"]
    assert layer["source"] == "precomputed://http://data.example/p/annotations"
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("zvfs")]


# -- add: reference images ------------------------------------------------------------------------------


def write_t1(path: Path) -> Path:
    """A small NIfTI "T1" in mm (2 mm voxels, shifted)."""
    image = nib.Nifti1Image(np.arange(10 * 12 * 14, dtype=np.float32).reshape(10, 12, 14), T1_AFFINE)
    image.header.set_xyzt_units("mm")
    nib.save(image, path)
    return path


def test_images_are_told_from_stores(stores: dict[str, Path], tmp_path: Path) -> None:
    from zvfs.viewer import image_of

    ome = tmp_path / "brain.ome.zarr"
    ome.mkdir()
    (ome / "zarr.json").write_text("{}")
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "points.zarrvectors").symlink_to(stores["points"])
    expected = {
        str(write_t1(tmp_path / "t1.nii.gz")): "nifti",
        str(ome): "zarr",
        "zarr://https://host/brain.ome.zarr": "zarr",
        "https://host/t1.nii": "nifti",
        str(stores["points"]): None,  # a zarr.json too
        str(lab): None,  # stores below
        "https://host/scan.zarrvectors": None,
    }
    found = {source: getattr(image_of(source), "scheme", None) for source in expected}
    assert found == expected


def test_add_an_image_as_zvfs_link_image_shows_it(stores: dict[str, Path], tmp_path: Path) -> None:
    """The image layer of ``zvfs link --image`` (header transform, contrast window), served as
    ``zvfs serve --image`` serves it, beneath the store's layers, slices shown."""
    nii = write_t1(tmp_path / "t1.nii.gz")
    viewer = neuroglancer.Viewer()
    with zvfs.serve() as server:
        zvfs.add(viewer, stores["points"], server=server)
        assert zvfs.add(viewer, nii, server=server) == ["t1"]
        served = requests.get(f"{server.url}_images/t1.nii.gz", timeout=TIMEOUT)
        assert served.status_code == 200 and served.content == nii.read_bytes()
        assert list(server.stores) == ["points"]
        out = cli("link", str(stores["points"]), "--image", str(nii), "--base-url", server.url).stdout
    printed = json.loads(out[: out.rindex("}") + 1])
    state = viewer.state.to_json()
    assert [layer["name"] for layer in state["layers"]] == ["t1", "points/annotations"]
    assert state["layers"][0] == printed["layers"][0] and state["showSlices"] is True
    with pytest.raises(zvfs.UsageError, match="placed by its own header"):
        zvfs.add(viewer, nii, transform=AFFINE)


# -- the README's Python quick start -------------------------------------------------------------------------


def readme_snippet() -> str:
    """The Python block of the README's quick start."""
    text = (ROOT / "README.md").read_text()
    return text.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_snippet_works_as_written(tmp_path: Path) -> None:
    """Run as typed into ``python`` after the README's set-up: it prints the viewer's URL, and the
    viewer's state (as its client receives it) has the store's layer, served."""
    cli("sample", str(tmp_path / "scan.zarrvectors"))
    proc = subprocess.Popen(
        [sys.executable, "-i", "-c", readme_snippet()],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "/v/" in url, url + proc.communicate(timeout=TIMEOUT)[1]
        state = first_state(url)
        (layer,) = state["layers"]
        assert layer["name"] == "scan/annotations" and layer["type"] == "annotation"
        info = requests.get(layer["source"].removeprefix("precomputed://") + "/info", timeout=TIMEOUT)
        assert info.status_code == 200 and info.json()["@type"] == "neuroglancer_annotations_v1"
        assert np.allclose(state["position"], [2, 2, 12.5])  # the sample's 0..1000 box, scaled
    finally:
        _, err = proc.communicate("", timeout=TIMEOUT)  # end of input: the session ends
    assert proc.returncode == 0, err


def first_state(viewer_url: str) -> dict:
    """The state a client of the neuroglancer package's server receives first (its stream also
    carries the viewer's configuration)."""
    base, token = viewer_url.rstrip("/").rsplit("/v/", 1)
    with requests.get(f"{base}/events/{token}?c=test&gc=&gs=", stream=True, timeout=TIMEOUT) as resp:
        for line in map(str, resp.iter_lines(decode_unicode=True)):
            if line.startswith("data: "):
                message = json.loads(line[len("data: ") :])
                if message.get("k") == "s":
                    return message["s"]
    raise AssertionError("no state")
