"""The persistent index: built once outside the store, reused, rebuilt when the store changes or the
index is damaged, safe for two mounts starting at once, the same however it is built (here, on
every core, on a Dask cluster); with it, the first requests read no store chunk, and a damaged chunk
costs only the files that need it. Through real mounts, ``zvfs serve`` and ``zvfs index``."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests
from support import (
    TIMEOUT,
    ZVFS,
    PointSpec,
    add_pyramid,
    build_graph,
    build_points,
    build_polylines,
    mounted,
    read_files,
    relative_paths,
    same_tree,
    served,
    tree_digest,
    zvfs,
)

import zvfs.index as zvfs_index
from zvfs.encoders.annotations import AnnotationSchema, decode_multiple
from zvfs.index import IndexOptions
from zvfs.index import build as index_build  # the module (the package's build step is build_index)
from zvfs.source import open_virtual_tree


def index_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.fixture(scope="module")
def pyramid_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Points with objects and a 3-level pyramid (coarse cells kept whole in the index)."""
    root = tmp_path_factory.mktemp("indexed")
    spec = PointSpec(n=6000, objects=40, typed=True, hi=(200.0, 200.0, 200.0), cell=(50.0, 50.0, 50.0), seed=5)
    return add_pyramid(build_points(root / "p.zarrvectors", spec), 3)


def export(*args: str) -> None:
    """``zvfs export`` unsharded, as a mount shows the tree (the store has more than 4,096 files, which
    export's default ``--sharding auto`` would shard)."""
    zvfs("export", "--no-progress", "--sharding", "off", *args)


@pytest.fixture(scope="module")
def exported(pyramid_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store's tree as an export, indexed in an index directory of its own."""
    out = tmp_path_factory.mktemp("reference") / "tree"
    export("--index-dir", str(out.with_name("index")), str(pyramid_store), str(out))
    return out


def test_index_lives_outside_the_store_and_is_reused(pyramid_store: Path, exported: Path, tmp_path: Path) -> None:
    before = tree_digest(pyramid_store)
    index = tmp_path / "idx"
    res = zvfs("index", "--index-dir", str(index), str(pyramid_store))
    assert "built" in res.stdout, res.stdout
    (built,) = index_dirs(index)
    stamp = (built / "index.json").stat().st_mtime_ns
    assert "already" in zvfs("index", "--index-dir", str(index), str(pyramid_store)).stdout
    export("--index-dir", str(index), str(pyramid_store), str(tmp_path / "out"))
    assert index_dirs(index) == [built] and (built / "index.json").stat().st_mtime_ns == stamp, "not rebuilt"
    assert same_tree(tmp_path / "out", exported)
    assert tree_digest(pyramid_store) == before, "the store is never written"


def test_changed_store_gets_a_new_index(pyramid_store: Path, tmp_path: Path) -> None:
    store = Path(shutil.copytree(pyramid_store, tmp_path / "s.zarrvectors"))
    zvfs("index", "--index-dir", str(tmp_path / "idx"), str(store))
    shutil.rmtree(store)
    build_points(store, PointSpec(n=500, seed=9))  # the same path, other content
    with served(store, tmp_path / "log", "--index-dir", str(tmp_path / "idx")) as (_, base):
        assert len(requests.get(base + "annotations/by_id/", timeout=TIMEOUT).json()) == 500
    assert len(index_dirs(tmp_path / "idx")) == 1, "the old version's index is gone"


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest"])
def test_damaged_index_is_rebuilt_not_trusted(pyramid_store: Path, exported: Path, tmp_path: Path, damage: str) -> None:
    index = tmp_path / "idx"
    zvfs("index", "--index-dir", str(index), str(pyramid_store))
    (built,) = index_dirs(index)
    arrays = [p for p in built.rglob("*") if p.is_file() and p.name != "index.json"]
    victim = max(arrays, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    if damage == "truncate":
        victim.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "flip":
        data[len(data) // 3] ^= 0xFF
        victim.write_bytes(bytes(data))
    else:
        (built / "index.json").write_text("{")
    out = tmp_path / "out"
    export("--index-dir", str(index), str(pyramid_store), str(out))
    assert same_tree(out, exported)
    assert "already" in zvfs("index", "--index-dir", str(index), str(pyramid_store)).stdout


def test_two_mounts_starting_at_once_share_one_index(pyramid_store: Path, exported: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    procs = []
    for k in range(2):
        (tmp_path / f"m{k}").mkdir()
        log = str(tmp_path / f"{k}.log")
        cmd = [
            *ZVFS,
            "mount",
            "--index-dir",
            str(index),
            "--log-file",
            log,
            str(pyramid_store),
            str(tmp_path / f"m{k}"),
        ]
        procs.append(subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True))
    try:
        for proc in procs:
            assert proc.wait(TIMEOUT) == 0, proc.stderr.read() if proc.stderr else ""
        for k in range(2):
            assert read_files(tmp_path / f"m{k}") == read_files(exported)
        assert len(index_dirs(index)) == 1
    finally:
        for k in range(2):
            zvfs("umount", str(tmp_path / f"m{k}"), check=False)


@pytest.mark.parametrize("how", ["processes", "dask"])
def test_index_is_the_same_however_it_is_built(pyramid_store: Path, tmp_path: Path, how: str) -> None:
    """Built here (one process) and on every core, or as tasks on a 2-worker Dask cluster: the same
    arrays, byte for byte."""
    zvfs("index", "--workers", "1", "--index-dir", str(tmp_path / "one"), str(pyramid_store))
    with ExitStack() as stack:
        if how == "dask":
            distributed = pytest.importorskip("distributed")
            cluster = stack.enter_context(distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True))
            args = ["--dask", cluster.scheduler_address]
        else:
            args = ["--workers", "2"]
        zvfs("index", *args, "--index-dir", str(tmp_path / "many"), str(pyramid_store))
    (one,), (many,) = index_dirs(tmp_path / "one"), index_dirs(tmp_path / "many")

    def arrays(root: Path) -> dict[str, bytes]:
        return {rel: data for rel, data in read_files(root).items() if rel != "verified.json"}  # local stamps

    assert arrays(one) == arrays(many) and len(arrays(one)) > 20


def test_first_requests_read_no_store_chunk(pyramid_store: Path, exported: Path, tmp_path: Path) -> None:
    """Once indexed, the ``info``, every listing and every coarse cell need no store chunk at all:
    with every level-0 chunk of the store deleted they still read as before."""
    store = Path(shutil.copytree(pyramid_store, tmp_path / "s.zarrvectors"))
    index = tmp_path / "idx"
    zvfs("index", "--index-dir", str(index), str(store))
    for array in ("vertices", "vertex_fragments", "vertex_attributes"):
        for chunk in (store / "0" / array).rglob("c/**/*"):
            if chunk.is_file():
                chunk.unlink()
    info = json.loads((exported / "annotations" / "info").read_bytes())
    coarse = [level["key"] for level in info["spatial"][:-1]]
    with mounted(store, tmp_path / "mnt", "--index-dir", str(index), "--log-file", str(tmp_path / "log")) as mp:
        assert (mp / "annotations" / "info").read_bytes() == (exported / "annotations" / "info").read_bytes()
        assert relative_paths(mp / "annotations")[1] == relative_paths(exported / "annotations")[1]
        for key in coarse:
            for cell in (exported / "annotations" / key).iterdir():
                assert (mp / "annotations" / key / cell.name).read_bytes() == cell.read_bytes()


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_damaged_chunk_costs_only_what_needs_it(
    pyramid_store: Path, exported: Path, tmp_path: Path, damage: str
) -> None:
    """A level-0 chunk missing or damaged before the store is indexed: ``info`` and every listing
    read, the files that need the chunk fail with EIO (the log names it), everything else reads."""
    store = Path(shutil.copytree(pyramid_store, tmp_path / "s.zarrvectors"))
    chunks = sorted(p for p in (store / "0" / "vertices" / "c").rglob("*") if p.is_file())
    victim = chunks[len(chunks) // 2]
    if damage == "missing":
        victim.unlink()
    else:
        victim.write_bytes(b"\x00not zstd\xff" * 9)
    log = tmp_path / "log"
    with mounted(store, tmp_path / "mnt", "--index-dir", str(tmp_path / "idx"), "--log-file", str(log)) as mp:
        info = json.loads((mp / "annotations" / "info").read_bytes())
        assert [s["key"] for s in info["spatial"]] == ["spatial0", "spatial1", "spatial2"]
        finest = info["spatial"][-1]["key"]
        failed, read = [], 0
        for rel in relative_paths(mp / "annotations")[1]:
            try:
                (mp / "annotations" / rel).read_bytes()
            except OSError as exc:
                assert exc.errno == errno.EIO, (rel, exc)
                failed.append(rel)
                continue
            read += 1
        assert failed and read > 10 * len(failed), (len(failed), read)
        assert any(rel.startswith(finest + "/") for rel in failed), "the chunk's own cell fails"
        assert all(rel.startswith((finest + "/", "by_id/", "rel_object/")) for rel in failed), failed
    assert "level 0: cell" in log.read_text()


def test_streamlines_coarse_cells_are_bounded(tmp_path: Path) -> None:
    """More items in a coarse cell than it should hold: a fixed share by id goes on to finer levels,
    each item is still drawn at exactly one level, and no cell of a coarse level holds many more
    than the cap."""
    store = add_pyramid(build_polylines(tmp_path / "s.zarrvectors", lengths=(5,) * 600)[0], 3)
    cap = 40
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(index_build, "MAX_ITEMS_PER_CELL", cap)
        tree = open_virtual_tree(str(store), index=IndexOptions(root=tmp_path / "idx"))
    info = json.loads(tree.read("annotations/info"))
    schema = AnnotationSchema.from_info(info)
    seen: dict[int, int] = {}
    for level in info["spatial"]:
        for cell in tree.listdir(f"annotations/{level['key']}"):
            data = tree.read(f"annotations/{level['key']}/{cell}")
            ids = decode_multiple(schema, data).ids
            n = len(ids)
            for i in set(ids.tolist()):
                assert seen.setdefault(i, level["key"]) == level["key"], "one level per item"
            if level is not info["spatial"][-1]:
                assert n <= 3 * cap, (level["key"], cell, n)
    assert len(seen) == 600


@pytest.mark.parametrize("kind", ["streamline", "graph", "points"])
def test_large_index_arrays_read_by_rows_give_the_same_tree(kind: str, tmp_path: Path) -> None:
    """Above ``LOAD_BYTES`` an index array is never loaded whole for a request: its rows are read
    from disk. With every array treated as large and a budget too small to keep anything, the tree
    read in process is byte for byte ``zvfs export``'s (which loads them)."""
    if kind == "streamline":
        store = add_pyramid(build_polylines(tmp_path / "s.zarrvectors", lengths=(2, 5, 9, 30) * 40)[0], 3)
    elif kind == "graph":
        store = build_graph(tmp_path / "g.zarrvectors")[0]
    else:
        store = add_pyramid(build_points(tmp_path / "p.zarrvectors", PointSpec(n=3000, objects=20, seed=3)), 3)
    reference = tmp_path / "tree"
    export("--index-dir", str(tmp_path / "idx"), str(store), str(reference))
    expected = read_files(reference)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zvfs_index, "LOAD_BYTES", 0)
        tree = open_virtual_tree(str(store), cache_bytes=4096, index=IndexOptions(root=tmp_path / "idx"))
        files: list[str] = []
        pending = [""]
        while pending:
            path = pending.pop()
            for name in tree.listdir(path):
                child = f"{path}/{name}".lstrip("/")
                (pending if tree.stat(child).is_dir else files).append(child)
        assert sorted(files) == sorted(expected)
        for rel in files:
            assert tree.read(rel, 0, tree.stat(rel).size) == expected[rel], rel
