"""Many stores at once: a directory holding stores at any depth, mounted and served as one tree.

Each store appears under its relative path with exactly the files of its own tree; directories
without a store below them are not shown; stores are opened on first access and closed again under
memory pressure (a cache too small to keep one open store still serves every file right); a store
that cannot be opened fails only its own paths; ``zvfs link`` shows every store's layers.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import shutil
import weakref
from pathlib import Path

import pytest
import requests
from support import (
    TIMEOUT,
    PointSpec,
    build_meshes,
    build_points,
    build_polylines,
    mounted,
    read_files,
    running,
    served,
    unopenable_copy,
    zvfs,
)

from zvfs.index import IndexOptions, tasks
from zvfs.source import open_tree
from zvfs.store import ZVFStore

STORES = ("cohort1/a.zarrvectors", "cohort1/deeper/b.zarrvectors", "cohort2/c.zarrvectors")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory: three stores at two depths, and directories and files that hold none."""
    root = tmp_path_factory.mktemp("lab")
    for rel in STORES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    build_points(root / STORES[0], PointSpec(n=800, objects=8))
    build_polylines(root / STORES[1])
    build_meshes(root / STORES[2])
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no store here")
    (root / "cohort2" / "empty").mkdir()
    (root / ".hidden" / "x.zarrvectors").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def own_trees(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """Each store's own tree, exported on its own."""
    out = tmp_path_factory.mktemp("own")
    trees = {}
    for k, rel in enumerate(STORES):
        zvfs("export", "--no-progress", str(lab / rel), str(out / str(k)))
        trees[rel] = read_files(out / str(k))
    return trees


def test_mount_presents_every_store_under_its_path(lab: Path, own_trees, tmp_path: Path) -> None:
    with mounted(lab, tmp_path / "mnt", "--log-file", str(tmp_path / "log")) as mp:
        assert sorted(p.name for p in mp.iterdir()) == ["cohort1", "cohort2"]
        assert sorted(p.name for p in (mp / "cohort1").iterdir()) == ["a.zarrvectors", "deeper"]
        assert sorted(p.name for p in (mp / "cohort2").iterdir()) == ["c.zarrvectors"]
        for rel, files in own_trees.items():
            assert read_files(mp / rel) == files, rel


@pytest.mark.parametrize("cache", ["512M", "1M"])
def test_serve_opens_and_closes_stores_within_the_budget(lab: Path, own_trees, tmp_path: Path, cache: str) -> None:
    """With a budget too small to keep any store open, every store is reopened when asked for, and
    every file is still right."""
    with served(lab, tmp_path / "log", "--cache-size", cache) as (proc, base):
        assert requests.get(base, timeout=TIMEOUT).json() == ["cohort1", "cohort2"]
        for _ in range(2):
            for rel, files in own_trees.items():
                for name, data in files.items():
                    resp = requests.get(f"{base}{rel}/{name}", timeout=TIMEOUT)
                    assert resp.status_code == 200 and resp.content == data, (rel, name)
        assert requests.get(base + "notes/readme.txt", timeout=TIMEOUT).status_code == 404
        assert proc.poll() is None


def test_link_shows_every_store(lab: Path) -> None:
    out = zvfs("link", str(lab), "--base-url", "http://h/").stdout
    state = json.loads(out[: out.rindex("}") + 1])
    names = sorted(layer["name"] for layer in state["layers"])
    assert names == [
        "lab0/cohort1/a.zarrvectors/annotations",
        "lab0/cohort1/deeper/b.zarrvectors/annotations",
        "lab0/cohort1/deeper/b.zarrvectors/skeletons",
        "lab0/cohort2/c.zarrvectors/meshes",
    ]
    sources = {layer["name"]: layer["source"] for layer in state["layers"]}
    assert sources["lab0/cohort2/c.zarrvectors/meshes"] == "precomputed://http://h/cohort2/c.zarrvectors/meshes"


# -- one store that cannot be opened, beside good ones ------------------------------------------------

GOOD = ("cohort1/a.zarrvectors", "cohort2/c.zarrvectors")
BAD = "bad.zarrvectors"


@pytest.fixture(scope="module")
def mixed(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two of the lab's stores, and beside them a store whose root metadata lacks its version."""
    root = tmp_path_factory.mktemp("mixed")
    for rel in GOOD:
        shutil.copytree(lab / rel, root / rel)
    unopenable_copy(lab / GOOD[0], root / BAD)
    return root


def test_mount_fails_only_the_broken_store(mixed: Path, own_trees, tmp_path: Path) -> None:
    """The broken store's paths are EIO and the log says why in one line naming it; the directory
    still lists and every good store reads as on its own."""
    log = tmp_path / "log"
    with mounted(mixed, tmp_path / "mnt", "--log-file", str(log)) as mp:
        assert sorted(p.name for p in mp.iterdir()) == [BAD, "cohort1", "cohort2"]
        for path in (mp / BAD, mp / BAD / "annotations" / "info"):
            with pytest.raises(OSError) as info:
                path.stat()
            assert info.value.errno == errno.EIO
        for rel in GOOD:
            assert read_files(mp / rel) == own_trees[rel], rel
    lines = [line for line in log.read_text().splitlines() if BAD in line]
    assert lines and all("zv_version" in line and "ERROR" in line for line in lines), log.read_text()
    assert "Traceback" not in log.read_text()


def test_serve_fails_only_the_broken_store(mixed: Path, own_trees, tmp_path: Path) -> None:
    """The broken store's paths answer 500 with its one-line reason, not a traceback."""
    log = tmp_path / "log"
    with served(mixed, log) as (proc, base):
        assert requests.get(base, timeout=TIMEOUT).json() == [BAD, "cohort1", "cohort2"]
        for target in (f"{BAD}/", f"{BAD}/annotations/info"):
            resp = requests.get(base + target, timeout=TIMEOUT)
            error = resp.json()["error"]
            assert resp.status_code == 500 and str(mixed / BAD) in error and "zv_version" in error, resp.text
            assert "\n" not in error
        for rel in GOOD:
            for name, data in own_trees[rel].items():
                assert requests.get(f"{base}{rel}/{name}", timeout=TIMEOUT).content == data, (rel, name)
        assert proc.poll() is None
    assert "Traceback" not in log.read_text()


def test_link_shows_every_good_store_and_warns_of_the_broken_one(mixed: Path) -> None:
    """Each good store's layers, and the broken store as a layer without a type (the viewer shows
    its error), with a one-line warning naming it."""
    res = zvfs("link", str(mixed), "--base-url", "http://h/")
    state = json.loads(res.stdout[: res.stdout.rindex("}") + 1])
    sources = {layer["name"]: layer["source"] for layer in state["layers"]}
    assert sources == {
        f"{mixed.name}/{BAD}": f"precomputed://http://h/{BAD}",
        f"{mixed.name}/{GOOD[0]}/annotations": f"precomputed://http://h/{GOOD[0]}/annotations",
        f"{mixed.name}/{GOOD[1]}/meshes": f"precomputed://http://h/{GOOD[1]}/meshes",
    }
    (warning,) = [line for line in res.stderr.splitlines() if "WARNING" in line]
    assert BAD in warning and "zv_version" in warning


def test_a_store_closed_under_memory_pressure_is_let_go(lab: Path, tmp_path: Path, monkeypatch) -> None:
    """With a budget too small to keep a store open, no store object outlives its request, not
    even one its index build (run in this process) opened; nothing stays registered for the build."""
    alive: list[weakref.ref] = []
    init = ZVFStore.__init__

    def recording(self: ZVFStore, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        alive.append(weakref.ref(self))

    monkeypatch.setattr(ZVFStore, "__init__", recording)
    forest = open_tree(str(lab), 2**20, index=IndexOptions(root=tmp_path / "index"))  # a new index: built
    with running(forest) as base:
        for rel in STORES:
            assert requests.get(f"{base}{rel}/", timeout=TIMEOUT).status_code == 200, rel
    assert len(os.listdir(tmp_path / "index")) >= len(STORES)
    assert not tasks._STORES
    gc.collect()
    assert alive and [ref() for ref in alive] == [None] * len(alive)
