"""Sharded layers (``--sharding``) of every geometry type through the real front ends, read back by
independent readers.

Each store is exported twice, unsharded and ``--sharding on``. tensorstore's
``neuroglancer_uint64_sharded`` kvstore lists and reads every chunk of every sharded index, and each
must be the unsharded file of that key (by_id and relationships by id, spatial cells by the
compressed Morton code the client computes, skeletons and mesh manifests by segment id); Neuroglancer's
``AnnotationReader`` reads every annotation of the sharded layers by id, by relationship and by cell
with geometry, properties and related segments intact; cloud-volume reads every sharded skeleton and
every LOD of every sharded mesh (fragments found before their manifest), from the files and over
HTTP from nginx in front of a sharded mount and export. A mount and ``zvfs serve`` give the export's
bytes, with byte ranges; a byte range reads only the chunks it touches.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import tensorstore as ts
from cloudvolume import CloudVolume
from neuroglancer.read_precomputed_annotations import AnnotationReader, _zorder_compressed
from support import (
    TIMEOUT,
    PointSpec,
    add_pyramid,
    build_every_type,
    build_points,
    mounted,
    point_key,
    read_files,
    read_truth,
    relative_paths,
    same_tree,
    segmentation_info,
    served,
    zvfs,
)

from zvfs import link
from zvfs.encoders.meshes import Manifest
from zvfs.encoders.sharded import ShardingSpec, fetch_chunk
from zvfs.mappers.points import PointSource
from zvfs.mappers.sharding import AUTO_FILES, Sharding
from zvfs.source import open_tree
from zvfs.tree import DirectoryTree

ANNOTATION_KINDS = ("point_cloud", "line", "streamline", "graph")
SKELETON_KINDS = ("streamline", "graph", "skeleton")


def point_attributes(n: int, objects: int) -> dict:
    """Vertex and object attributes as properties AnnotationReader 2.41.2 lays out right (it pads a
    uint32 after another 4-byte property)."""
    rng = np.random.default_rng(4)
    return {
        "attributes": {
            "intensity": rng.random(n).astype(np.float32),
            "kind": rng.integers(0, 9, n).astype(np.uint8),
            "rgb": rng.integers(0, 256, (n, 3)).astype(np.uint8),
        },
        "object_attributes": {"score": rng.random(objects).astype(np.float32)},
    }


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every geometry type; points with a pyramid (several spatial levels, pinned levels)."""
    out = build_every_type(tmp_path_factory.mktemp("sharded-stores"), points=10)
    shutil.rmtree(out["point_cloud"])
    build_points(out["point_cloud"], PointSpec(n=2000, objects=20, seed=4, extra=point_attributes(2000, 20)))
    add_pyramid(out["point_cloud"], 2)
    return out


@pytest.fixture(scope="module")
def exports(stores: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """``--sharding off`` and ``on`` -> geometry type -> its export."""
    root = tmp_path_factory.mktemp("sharded-exports")
    for mode in ("off", "on"):
        for kind, store in stores.items():
            zvfs("export", "--no-progress", "--sharding", mode, str(store), str(root / mode / kind))
    return {mode: {kind: root / mode / kind for kind in stores} for mode in ("off", "on")}


def layers(root: Path) -> dict[str, dict]:
    """Layer directory (relative) -> its info, for every layer under ``root``."""
    return {
        str(p.parent.relative_to(root)): json.loads(p.read_text())
        for p in root.rglob("info")
        if p.parent.name != "segment_properties"
    }


def without_sharding(info: dict) -> dict:
    """An info with every ``sharding`` member taken out."""
    out = json.loads(json.dumps(info))
    out.pop("sharding", None)
    for entry in [out.get("by_id", {}), *out.get("relationships", []), *out.get("spatial", [])]:
        entry.pop("sharding", None)
    return out


def sharded_indexes(info: dict) -> Iterator[tuple[str, dict, list[int] | None]]:
    """(index directory, its sharding spec, grid shape of a spatial level) of each index of a layer."""
    if info["@type"] == "neuroglancer_annotations_v1":
        for entry in [info["by_id"], *info["relationships"]]:
            yield entry["key"], entry["sharding"], None
        for level in info["spatial"]:
            yield level["key"], level["sharding"], level["grid_shape"]
    else:
        yield ".", info["sharding"], None


def expected_keys(plain: Path, index: str, grid_shape: list[int] | None) -> dict[int, str]:
    """Chunk id -> the unsharded file holding that chunk: a cell's is the compressed Morton code the
    client computes (neuroglancer's own function), a mesh's chunk its manifest."""
    names = [n for n in os.listdir(plain / index) if n not in ("info", "segment_properties")]
    if grid_shape is not None:
        return {_zorder_compressed([int(c) for c in n.split("_")], grid_shape): n for n in names}
    manifests = [n for n in names if n.endswith(".index")]
    return {int(n.removesuffix(".index")): n for n in manifests or names}


@pytest.mark.parametrize("kind", sorted(set(ANNOTATION_KINDS + SKELETON_KINDS + ("mesh",))))
def test_tensorstore_reads_every_chunk(kind: str, exports: dict[str, dict[str, Path]]) -> None:
    plain_root, sharded_root = exports["off"][kind], exports["on"][kind]
    plain, sharded = layers(plain_root), layers(sharded_root)
    assert sorted(plain) == sorted(sharded)
    for path, info in sharded.items():
        assert without_sharding(info) == plain[path], path
        if info["@type"] == "neuroglancer_legacy_mesh":  # no sharded form in the client: unchanged
            assert "sharding" not in info and read_files(sharded_root / path) == read_files(plain_root / path)
            continue
        for index, spec, grid_shape in sharded_indexes(info):
            assert spec["data_encoding"] == spec["minishard_index_encoding"] == "raw"
            base = (sharded_root / path / index).resolve()
            kv = ts.KvStore.open({"driver": "neuroglancer_uint64_sharded", "base": f"file://{base}/", "metadata": spec})
            store = kv.result()
            keys = {struct.unpack(">Q", k)[0] for k in store.list().result()}
            expected = expected_keys(plain_root / path, index, grid_shape)
            assert keys == set(expected), (path, index)
            for key, name in expected.items():
                value = store.read(struct.pack(">Q", key)).result().value
                assert value == (plain_root / path / index / name).read_bytes(), (path, index, name)
            assert all(n.endswith(".shard") for n in os.listdir(base) if n not in ("info", "segment_properties"))


@pytest.mark.parametrize("kind", ANNOTATION_KINDS)
def test_annotation_reader_reads_every_annotation(kind: str, exports: dict[str, dict[str, Path]], stores) -> None:
    plain_root, sharded_root = exports["off"][kind], exports["on"][kind]
    plain = AnnotationReader(f"file://{plain_root}/annotations/")
    sharded = AnnotationReader(f"file://{sharded_root}/annotations/")
    ids = sorted(int(n) for n in os.listdir(plain_root / "annotations" / "by_id"))
    got = {i: sharded.by_id[i] for i in ids}
    assert all(got[i].to_json() == plain.by_id[i].to_json() for i in ids)
    assert all(got[i].id == str(i) for i in ids)
    for rel in plain.metadata["relationships"]:
        segments = sorted(int(n) for n in os.listdir(plain_root / "annotations" / rel["key"]))
        assert segments
        for seg in segments:
            want = [a.to_json() for a in plain.relationships[rel["id"]][seg]]
            assert [a.to_json() for a in sharded.relationships[rel["id"]][seg]] == want, (rel, seg)
    for level, meta in enumerate(plain.metadata["spatial"]):
        for name in os.listdir(plain_root / "annotations" / meta["key"]):
            cell = [int(c) for c in name.split("_")]
            want = [a.to_json() for a in plain.spatial[level][cell]]
            assert [a.to_json() for a in sharded.spatial[level][cell]] == want, (meta["key"], cell)
    drawn = [a.id for a in sharded.get_within_spatial_bounds()]
    if kind == "point_cloud":  # every point, drawn at exactly one level, where zarr-vectors has it
        assert sorted(drawn) == sorted(got[i].id for i in ids) and len(ids) == 2000
        truth = {point_key(p) for p in read_truth(stores[kind]).positions}
        assert {point_key(a.point) for a in got.values()} == truth
    else:
        assert set(drawn) == {a.id for a in got.values()}


def stub_segmentation(root: Path, kind: str, layer: Path) -> Path:
    """A stub segmentation ``root`` whose ``kind`` (skeletons, mesh) is the layer directory (a link)."""
    root.mkdir(parents=True)
    os.symlink(layer, root / kind)
    (root / "info").write_text(json.dumps(segmentation_info(kind)))
    return root


def cloud_volume(root: Path, kind: str, layer: Path) -> CloudVolume:
    return CloudVolume(f"precomputed://file://{stub_segmentation(root, kind, layer)}", progress=False)


@pytest.mark.parametrize("kind", SKELETON_KINDS)
def test_cloudvolume_reads_sharded_skeletons(kind: str, exports: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    plain = cloud_volume(tmp_path / "plain", "skeletons", exports["off"][kind] / "skeletons")
    sharded = cloud_volume(tmp_path / "sharded", "skeletons", exports["on"][kind] / "skeletons")
    assert "sharding" in sharded.skeleton.meta.info
    attributes = [a["id"] for a in plain.skeleton.meta.info["vertex_attributes"]]
    segments = [int(n) for n in os.listdir(exports["off"][kind] / "skeletons") if n.isdigit()]
    assert segments
    for seg in segments:
        got, want = sharded.skeleton.get(seg), plain.skeleton.get(seg)
        np.testing.assert_array_equal(got.vertices, want.vertices)
        np.testing.assert_array_equal(got.edges, want.edges)
        for a in attributes:
            np.testing.assert_array_equal(getattr(got, a), getattr(want, a))


def test_cloudvolume_reads_sharded_meshes(exports: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    plain_dir = exports["off"]["mesh"] / "meshes"
    plain = cloud_volume(tmp_path / "plain", "mesh", plain_dir)
    sharded = cloud_volume(tmp_path / "sharded", "mesh", exports["on"]["mesh"] / "meshes")
    segments = [int(n) for n in os.listdir(plain_dir) if n.isdigit()]
    assert len(segments) == 3
    for seg in segments:
        for lod in range(Manifest.decode((plain_dir / f"{seg}.index").read_bytes()).num_lods):
            got, want = sharded.mesh.get(seg, lod=lod)[seg], plain.mesh.get(seg, lod=lod)[seg]
            assert len(want.faces)
            np.testing.assert_array_equal(got.vertices, want.vertices)
            np.testing.assert_array_equal(got.faces, want.faces)


@pytest.mark.parametrize("origin", ["mount", "export"])
def test_readers_through_nginx(origin: str, stores, exports, tmp_path: Path) -> None:
    """AnnotationReader (tensorstore's sharded kvstore over HTTP) and cloud-volume read the sharded
    layers from nginx in front of a ``--sharding on`` mount, and of the sharded export, by byte
    ranges: the unsharded export's annotations (by id and by relationship), skeletons and meshes."""
    from test_nginx import run_nginx  # skips the test where nginx or FUSE is missing

    plain = exports["off"]
    with ExitStack() as stack:
        trees = exports["on"]
        if origin == "mount":
            mp = stack.enter_context(mounted(stores["mesh"].parent, tmp_path / "mnt", "--sharding", "on"))
            trees = {kind: mp / store.name for kind, store in stores.items()}
        site = tmp_path / "site"
        site.mkdir()
        os.symlink(trees["point_cloud"] / "annotations", site / "annotations")
        stub_segmentation(site / "skeletons", "skeletons", trees["streamline"] / "skeletons")
        stub_segmentation(site / "mesh", "mesh", trees["mesh"] / "meshes")
        (tmp_path / "nginx").mkdir()
        base = stack.enter_context(run_nginx(site, tmp_path / "nginx"))

        sharded = AnnotationReader(f"{base}annotations/")
        want = AnnotationReader(f"file://{plain['point_cloud']}/annotations/")
        assert "sharding" in sharded.metadata["by_id"]
        ids = sorted(int(n) for n in os.listdir(plain["point_cloud"] / "annotations" / "by_id"))
        assert [sharded.by_id[i].to_json() for i in ids] == [want.by_id[i].to_json() for i in ids]
        for rel in want.metadata["relationships"]:
            for seg in sorted(int(n) for n in os.listdir(plain["point_cloud"] / "annotations" / rel["key"])):
                got = [a.to_json() for a in sharded.relationships[rel["id"]][seg]]
                assert got == [a.to_json() for a in want.relationships[rel["id"]][seg]], (rel["id"], seg)

        skeletons = CloudVolume(f"precomputed://{base}skeletons", progress=False)
        local = cloud_volume(tmp_path / "plain-skeletons", "skeletons", plain["streamline"] / "skeletons")
        segments = [int(n) for n in os.listdir(plain["streamline"] / "skeletons") if n.isdigit()]
        assert segments and "sharding" in skeletons.skeleton.meta.info
        for seg in segments:
            got, expected = skeletons.skeleton.get(seg), local.skeleton.get(seg)
            np.testing.assert_array_equal(got.vertices, expected.vertices)
            np.testing.assert_array_equal(got.edges, expected.edges)

        meshes = CloudVolume(f"precomputed://{base}mesh", progress=False)
        local = cloud_volume(tmp_path / "plain-mesh", "mesh", plain["mesh"] / "meshes")
        for seg in (int(n) for n in os.listdir(plain["mesh"] / "meshes") if n.isdigit()):
            for lod in range(Manifest.decode((plain["mesh"] / "meshes" / f"{seg}.index").read_bytes()).num_lods):
                got, expected = meshes.mesh.get(seg, lod=lod)[seg], local.mesh.get(seg, lod=lod)[seg]
                assert len(expected.faces)
                np.testing.assert_array_equal(got.vertices, expected.vertices)
                np.testing.assert_array_equal(got.faces, expected.faces)


@pytest.mark.parametrize("kind", sorted(set(ANNOTATION_KINDS + SKELETON_KINDS + ("mesh",))))
def test_link_reads_sharded_layers(kind: str, exports, caplog: pytest.LogCaptureFixture) -> None:
    """zvfs link of a sharded export gives the unsharded export's state (fit, segments, property
    ranges of the shaders: the coarsest level has fewer cells than link samples), its samples read
    from the shards by byte ranges, without a warning."""
    states = {
        mode: link.build_state([link.Source(kind, DirectoryTree(str(exports[mode][kind])), "http://host/")])
        for mode in ("off", "on")
    }
    assert states["on"] == states["off"]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# -- mount and serve give the export's bytes -------------------------------------------------------


def test_mount_gives_the_exports_bytes(stores, exports: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    """A mount of the directory holding every store, with --sharding on: the sharded exports."""
    with mounted(stores["mesh"].parent, tmp_path / "mnt", "--sharding", "on") as mp:
        for kind, store in stores.items():
            assert relative_paths(mp / store.name) == relative_paths(exports["on"][kind])
            assert read_files(mp / store.name) == read_files(exports["on"][kind]), kind


def test_serve_answers_ranges_of_shards(stores, exports: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    with served(stores["mesh"].parent, tmp_path / "log", "--sharding", "on") as (_, base), requests.Session() as http:
        for kind, store in stores.items():
            for rel in relative_paths(exports["on"][kind])[1]:
                data = (exports["on"][kind] / rel).read_bytes()
                url = f"{base}{store.name}/{rel}"
                assert http.get(url, timeout=TIMEOUT).content == data, rel
                if rel.endswith(".shard"):
                    for first, last in ((0, 15), (len(data) // 3, len(data) // 2), (len(data) - 7, len(data) - 1)):
                        resp = http.get(url, headers={"Range": f"bytes={first}-{last}"}, timeout=TIMEOUT)
                        assert resp.status_code == 206 and resp.content == data[first : last + 1], (rel, first)


def test_a_range_encodes_only_the_chunks_it_touches(stores, exports, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[int]] = []
    batch = PointSource.annotation_batch

    def counted(self: PointSource, ids: np.ndarray) -> Any:
        asked.append(ids.tolist())
        return batch(self, ids)

    monkeypatch.setattr(PointSource, "annotation_batch", counted)
    tree = open_tree(str(stores["point_cloud"]), sharding=Sharding("on"))
    spec = ShardingSpec.from_json(json.loads(tree.read("annotations/info"))["by_id"]["sharding"])
    encoded_before: list[int] = []  # annotations encoded before each ranged read

    def read(offset: int, size: int) -> bytes:
        encoded_before.append(len(asked))
        return tree.read("annotations/by_id/0.shard", offset, size)

    data = fetch_chunk(spec, read, 1234)  # as the client reads it: shard index, minishard index, chunk
    assert len(encoded_before) == 3 and encoded_before[:2] == [0, 0], "the indexes need no annotation"
    assert asked == [[1234]]
    assert data == (exports["off"]["point_cloud"] / "annotations" / "by_id" / "1234").read_bytes()


# -- export -------------------------------------------------------------------------------------------


def test_sharded_export_is_stable_resumable_and_parallel(stores, exports, tmp_path: Path) -> None:
    store, reference = stores["point_cloud"], exports["on"]["point_cloud"]
    out = tmp_path / "again"
    zvfs("export", "--no-progress", "--sharding", "on", str(store), str(out))
    assert same_tree(out, reference), "byte-identical between runs"
    shards = sorted(out.rglob("*.shard"))
    shards[0].unlink()
    shards[-1].write_bytes(shards[-1].read_bytes()[:-1])
    res = zvfs("export", "--no-progress", "--resume", "--sharding", "on", str(store), str(out))
    assert "(2 written" in res.stdout and same_tree(out, reference)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        zvfs(
            "export",
            "--no-progress",
            "--sharding",
            "on",
            "--dask",
            cluster.scheduler_address,
            str(store),
            str(tmp_path / "d"),
        )
    assert same_tree(tmp_path / "d", reference)


def test_auto_shards_only_large_layers(stores, exports, tmp_path: Path) -> None:
    """auto (export's default) leaves a layer of at most AUTO_FILES files as it was, and shards a larger one."""
    zvfs("export", "--no-progress", str(stores["point_cloud"]), str(tmp_path / "small"))
    assert same_tree(tmp_path / "small", exports["off"]["point_cloud"])
    big = build_points(tmp_path / "big.zarrvectors", PointSpec(n=AUTO_FILES + 1, objects=10))
    zvfs("export", "--no-progress", str(big), str(tmp_path / "big"))
    assert relative_paths(tmp_path / "big")[1] == [
        "annotations/by_id/0.shard",
        "annotations/info",
        "annotations/rel_object/0.shard",
        "annotations/spatial0/0.shard",
    ]


def test_gzip_shards(stores, exports, tmp_path: Path) -> None:
    """--shard-encoding gzip: tensorstore reads the same chunks from gzip-encoded shards."""
    out = tmp_path / "gz"
    zvfs("export", "--no-progress", "--sharding", "on", "--shard-encoding", "gzip", str(stores["line"]), str(out))
    info = json.loads((out / "annotations" / "info").read_text())
    spec = info["by_id"]["sharding"]
    assert spec["data_encoding"] == spec["minishard_index_encoding"] == "gzip"
    base = f"file://{out / 'annotations' / 'by_id'}/"
    store = ts.KvStore.open({"driver": "neuroglancer_uint64_sharded", "base": base, "metadata": spec}).result()
    plain = exports["off"]["line"] / "annotations" / "by_id"
    for name in os.listdir(plain):
        assert store.read(struct.pack(">Q", int(name))).result().value == (plain / name).read_bytes()
    shutil.rmtree(out)


# -- the Python API ---------------------------------------------------------------------------------------


def test_api_shards_as_the_command_line(stores, exports, tmp_path: Path) -> None:
    """``sharding=`` of zvfs.export and zvfs.mount gives the command line's sharded bytes (export
    defaults to auto, as ``zvfs export``); a wrong value is a UsageError."""
    import zvfs

    store, reference = stores["point_cloud"], exports["on"]["point_cloud"]
    zvfs.export(store, tmp_path / "on", progress=False, sharding="on")
    assert same_tree(tmp_path / "on", reference)
    zvfs.export(store, tmp_path / "auto", progress=False)  # a small store: auto leaves it unsharded
    assert same_tree(tmp_path / "auto", exports["off"]["point_cloud"])
    (tmp_path / "mnt").mkdir()
    with zvfs.mount(store, tmp_path / "mnt", sharding="on") as mountpoint:
        assert read_files(mountpoint) == read_files(reference)
    with pytest.raises(zvfs.UsageError, match="sharding must be one of"):
        zvfs.open_tree(store, sharding="sideways")
