"""Edge cases of stores: empty stores of every type, unknown geometry types, and canaries for the
zarr-vectors 0.9.2 behaviour zvfs works around (each fails once upstream changes, so the
workaround in ``zvfs/store.py`` / ``zvfs/objects.py`` can be revisited)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr_vectors as zv
from support import build_meshes, build_polylines, small_schema, tree_digest, zvfs
from zarr_vectors.exceptions import ZVError

from zvfs.errors import StoreError
from zvfs.frontends.export import walk
from zvfs.source import open_virtual_tree

KINDS = ("point_cloud", "line", "polyline", "streamline", "graph", "skeleton", "mesh")


@pytest.mark.parametrize("kind", KINDS)
def test_empty_store_gives_a_complete_empty_tree(kind: str, tmp_path: Path) -> None:
    store = tmp_path / f"{kind}.zarrvectors"
    zv.create(str(store), schema=small_schema(kind))
    tree = open_virtual_tree(str(store))
    files = {path: tree.read(path) for path, is_dir in walk(tree) if not is_dir}
    infos = [json.loads(data) for path, data in files.items() if path.endswith("/info")]
    assert infos, "every layer still has its info"
    assert all(len(data) == tree.stat(path).size for path, data in files.items())
    for layer in (p.split("/")[0] for p in files):
        assert set(tree.listdir(layer)) >= {"info"}


def test_unknown_geometry_type_is_a_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "future.zarrvectors"
    build_polylines(store)
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["zarr_vectors"]["geometry_types"] = ["tetrahedra"]
    (store / "zarr.json").write_text(json.dumps(meta))
    before = tree_digest(store)
    with pytest.raises(StoreError, match="tetrahedra"):
        open_virtual_tree(str(store))
    res = zvfs("export", str(store), str(tmp_path / "out"), check=False)
    assert res.returncode == 2
    assert res.stderr.startswith("zvfs: error:") and str(store) in res.stderr and "tetrahedra" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert tree_digest(store) == before


def test_canary_mesh_objects_cannot_be_read_per_object(tmp_path: Path) -> None:
    """zarr-vectors 0.9.2: ``Level.objects[id]`` raises on mesh stores, so zvfs assembles objects
    itself (zvfs/objects.py). When this starts passing without raising, the public API may do."""
    store, _ = build_meshes(tmp_path / "mesh.zarrvectors")
    with pytest.raises(ZVError):
        zv.open(str(store)).level(0).objects[0]


def test_canary_multichannel_vertex_attributes_dropped(tmp_path: Path) -> None:
    """zarr-vectors 0.9.2 stores a polyline's (n, 3) attribute flat and its reader drops it; zvfs
    recovers the channels from the row count (zvfs/store.py)."""
    store = tmp_path / "rgb.zarrvectors"
    lines = [np.linspace([10, 10, 10], [90, 80, 70], 12).astype(np.float32)]
    rgb = [np.arange(36, dtype=np.uint8).reshape(12, 3)]
    ds = zv.create(str(store), schema=small_schema("polyline"))
    ds.add_polylines(lines, attributes={"rgb": rgb})
    assert "rgb" not in zv.open(str(store)).level(0).read().attributes
    tree = open_virtual_tree(str(store))
    from cloudvolume import Skeleton

    info = json.loads(tree.read("skeletons/info"))
    assert info["vertex_attributes"][0] == {"id": "rgb", "data_type": "float32", "num_components": 3}
    skel = Skeleton.from_precomputed(tree.read("skeletons/1"), segid=1, vertex_attributes=info["vertex_attributes"])
    np.testing.assert_array_equal(skel.rgb, rgb[0].astype(np.float32))


def test_store_is_never_written(tmp_path: Path) -> None:
    """Opening, walking and reading every file of every layer leaves the store byte-identical."""
    store, _ = build_meshes(tmp_path / "mesh.zarrvectors")
    copy = tmp_path / "copy.zarrvectors"
    shutil.copytree(store, copy)
    before = tree_digest(copy)
    tree = open_virtual_tree(str(copy))
    for path, is_dir in walk(tree):
        if not is_dir:
            tree.read(path)
    assert tree_digest(copy) == before


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from support import PointSpec, build_graph, build_lines, build_points, build_skeletons

    root = tmp_path_factory.mktemp("every_kind")
    return {
        "point_cloud": build_points(root / "p.zarrvectors", PointSpec(n=500, objects=5, typed=True)),
        "line": build_lines(root / "l.zarrvectors", n=50),
        "polyline": build_polylines(root / "pl.zarrvectors", "polyline")[0],
        "streamline": build_polylines(root / "s.zarrvectors")[0],
        "graph": build_graph(root / "g.zarrvectors")[0],
        "skeleton": build_skeletons(root / "k.zarrvectors")[0],
        "mesh": build_meshes(root / "m.zarrvectors")[0],
    }


@pytest.mark.parametrize("kind", KINDS)
def test_mounted_sizes_are_exact_for_every_type(kind: str, every_kind: dict[str, Path], tmp_path: Path) -> None:
    """Through a real mount: every file's st_size equals the bytes read, and ``du -b`` adds up."""
    import os
    import subprocess

    from support import mounted

    with mounted(every_kind[kind], tmp_path / "mnt") as mp:
        total = 0
        for dirpath, _, names in os.walk(mp):
            for name in names:
                path = os.path.join(dirpath, name)
                with open(path, "rb") as f:
                    data = f.read()
                assert os.stat(path).st_size == len(data), path
                total += len(data)
        assert total > 0
        du = subprocess.run(["du", "-sb", "--apparent-size", str(mp)], capture_output=True, text=True, check=True)
        dirs = sum(1 for _ in os.walk(mp))
        assert int(du.stdout.split()[0]) == total + 0 * dirs  # directories report size 0
