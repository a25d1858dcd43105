"""Fault suite: damaged stores, a store replaced under a mount, and many concurrent readers. A
damaged part fails only the files that need it (HTTP 500 with a JSON error naming the store, EIO
through FUSE), everything else keeps working, the server or daemon survives, and the store is
never written."""

from __future__ import annotations

import errno
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from support import PointSpec, build_points, mounted, served, tree_digest, zvfs

READERS = 64


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from zarr_vectors import building

    root = tmp_path_factory.mktemp("pristine")
    path = build_points(root / "p.zarrvectors", PointSpec(n=3000, objects=30, typed=True, seed=5))
    building.build_fragment_owner_index(str(path))  # chunk -> object without the manifests
    return path


@pytest.fixture
def store(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "p.zarrvectors"))


def first_file(root: Path) -> Path:
    return next(p for p in sorted(root.rglob("*")) if p.is_file() and p.name != "zarr.json")


def damage_vertex_chunk(store: Path) -> None:
    first_file(store / "0" / "vertices" / "c").write_bytes(b"\x00garbage, not zstd")


def damage_attribute_metadata(store: Path) -> None:
    (store / "0" / "vertex_attributes" / "f32" / "zarr.json").write_text("{ not json")


def remove_manifest_array(store: Path) -> None:
    shutil.rmtree(store / "0" / "object_index" / "manifests")


def truncate_manifests(store: Path) -> None:
    chunk = first_file(store / "0" / "object_index" / "manifests")
    chunk.write_bytes(chunk.read_bytes()[:7])


DAMAGE = {
    "corrupt vertex chunk": damage_vertex_chunk,
    "missing manifest array": remove_manifest_array,
    "truncated manifest": truncate_manifests,
}


def every_url(base: str, pristine_tree: Path) -> list[str]:
    """A URL for every file the undamaged store has (listed from an export of it), but only the
    first 100 ``by_id`` files."""
    rels = [str(p.relative_to(pristine_tree)) for p in sorted(pristine_tree.rglob("*")) if p.is_file()]
    by_id = [r for r in rels if "/by_id/" in r]
    return [base + r for r in rels if r not in set(by_id[100:])]


@pytest.fixture(scope="module")
def pristine_export(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "tree"
    zvfs("export", "--no-progress", str(pristine), str(out))
    return out


@pytest.mark.parametrize("damage", DAMAGE)
def test_damage_fails_only_affected_files(damage: str, store: Path, pristine_export: Path, tmp_path: Path) -> None:
    DAMAGE[damage](store)
    before = tree_digest(store)
    with served(store, tmp_path / "log") as (proc, base):
        urls = every_url(base, pristine_export)
        session = requests.Session()
        status = {}
        for url in urls:
            resp = session.get(url, timeout=30)
            status[url] = resp.status_code
            if resp.status_code == 500:
                error = resp.json()["error"]
                assert str(store) in error, error
            elif resp.status_code == 200:
                rel = url[len(base) :]
                assert resp.content == (pristine_export / rel).read_bytes(), f"{rel} served with damaged content"
        failed = [u for u, s in status.items() if s == 500]
        assert failed, "the damage must show"
        assert set(status.values()) <= {200, 500}
        assert proc.poll() is None, "the server survives"
        assert session.get(base + "no/such/file", timeout=30).status_code == 404
        assert status[base + "annotations/info"] == 200
        if damage == "corrupt vertex chunk":
            assert len(failed) < len(urls) / 2, "damage to one chunk fails only the files that need it"
        else:
            assert all("/rel_object/" in u for u in failed), "only the per-object files need the manifests"
    assert tree_digest(store) == before, "nothing is written to the store"


@pytest.mark.parametrize("damage", ["root", "attribute"])
def test_malformed_metadata_is_a_one_line_error(damage: str, store: Path, tmp_path: Path) -> None:
    """Unreadable metadata of the store, or of one attribute (which zarr-vectors would silently
    drop with every other attribute), stops the store from opening with a one-line error."""
    if damage == "root":
        (store / "zarr.json").write_text("{ truncated")
    else:
        damage_attribute_metadata(store)
    res = zvfs("export", str(store), str(tmp_path / "out"), check=False)
    assert res.returncode == 2 and res.stderr.startswith("zvfs: error:") and len(res.stderr.strip().splitlines()) == 1
    assert str(store) in res.stderr


def test_store_replaced_while_mounted(store: Path, tmp_path: Path) -> None:
    """Files not yet read fail with EIO and a clear log line once the store changes: never old
    sizes with new bytes."""
    log = tmp_path / "daemon.log"
    with mounted(store, tmp_path / "mnt", "--log-file", str(log)) as mp:
        info = (mp / "annotations" / "info").read_bytes()
        shutil.rmtree(store)
        build_points(store, PointSpec(n=500, seed=99))
        untouched = sorted((mp / "annotations" / "by_id").iterdir())[:5]
        for path in untouched:
            with pytest.raises(OSError) as exc:
                path.read_bytes()
            assert exc.value.errno == errno.EIO
        assert json.loads(info)["@type"] == "neuroglancer_annotations_v1"
    assert "the store changed after it was opened" in log.read_text()


def test_many_concurrent_readers(pristine: Path, pristine_export: Path, tmp_path: Path) -> None:
    """64 threads over a mount and 64 HTTP clients against ``zvfs serve``: no errors, and the bytes of
    a sequential read of the export."""
    rels = [str(p.relative_to(pristine_export)) for p in sorted(pristine_export.rglob("*")) if p.is_file()]
    expected = {rel: (pristine_export / rel).read_bytes() for rel in rels}
    with mounted(pristine, tmp_path / "mnt") as mp, ThreadPoolExecutor(READERS) as pool:
        got = dict(zip(rels, pool.map(lambda rel: (mp / rel).read_bytes(), rels), strict=True))
    assert got == expected
    with served(pristine, tmp_path / "log") as (_, base), ThreadPoolExecutor(READERS) as pool:

        def fetch(rel: str) -> bytes:
            resp = requests.get(base + rel, timeout=60)
            assert resp.status_code == 200, (rel, resp.status_code)
            return resp.content

        got = dict(zip(rels, pool.map(fetch, rels), strict=True))
    assert got == expected
