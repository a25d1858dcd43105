"""Point clouds end to end: every store is mounted for real (FUSE) and served for real (Tornado),
then read back with Neuroglancer's own Python reader (``read_precomputed_annotations`` over
tensorstore) and compared with what zarr-vectors reads from the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from neuroglancer import read_precomputed_annotations
from support import mounted, read_truth, served
from support import point_key as key

from zvfs.source import open_virtual_tree

STORES = ("tiny", "typed", "typed_anonymous", "large")
FRONT_ENDS = ("fuse", "http")

# stored vertex attribute -> (property id, how the stored value becomes the property value)
VERTEX_PROPERTIES: dict[str, list[tuple[str, Callable[[np.ndarray], np.ndarray]]]] = {
    "f32": [("f32", lambda v: v)],
    "f64": [("f64", lambda v: v.astype(np.float32))],
    "i8": [("i8", lambda v: v)],
    "u8": [("u8", lambda v: v)],
    "i16": [("i16", lambda v: v)],
    "u16": [("u16", lambda v: v)],
    "i32": [("i32", lambda v: v)],
    "u32": [("u32", lambda v: v)],
    "i64": [("i64", lambda v: v.astype(np.int32))],
    "rgb": [("rgb", lambda v: v)],
    "rgba": [("rgba", lambda v: v)],
    "vec": [("vec_ch0", lambda v: v[:, 0]), ("vec_ch1", lambda v: v[:, 1])],
}
ENUMS = {"cell type": "cell_type", "flag": "flag"}  # stored attribute -> enum property


@pytest.fixture(scope="module", params=FRONT_ENDS)
def layer_url(
    request: pytest.FixtureRequest, point_stores: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], str]]:
    """store name -> URL of its annotation layer, through a real mount or a real HTTP server."""
    tmp = tmp_path_factory.mktemp(request.param)
    with ExitStack() as stack:
        urls = {}
        for name in STORES:
            if request.param == "fuse":
                mp = stack.enter_context(mounted(point_stores[name], tmp / name))
                urls[name] = f"file://{mp}/annotations/"
            else:
                _, base = stack.enter_context(served(point_stores[name], tmp / f"{name}.log"))
                urls[name] = f"{base}annotations/"
        yield urls.__getitem__


def reader(url: str) -> read_precomputed_annotations.AnnotationReader:
    return read_precomputed_annotations.AnnotationReader(url)


def read_all(r: read_precomputed_annotations.AnnotationReader) -> list:
    return list(r.get_within_spatial_bounds())


def props_of(r: read_precomputed_annotations.AnnotationReader, ann) -> dict:
    return {spec.id: value for spec, value in zip(r.properties, ann.props, strict=True)}


@pytest.mark.parametrize("name", STORES)
def test_every_point_once_with_its_attributes(name: str, layer_url, point_stores) -> None:
    r = reader(layer_url(name))
    truth = read_truth(point_stores[name])
    anns = read_all(r)
    ids = [int(a.id) for a in anns]
    assert len(anns) == len(truth.positions), "each point exactly once in the spatial index"
    assert len(set(ids)) == len(ids) and 0 not in ids
    row_of = {key(p): i for i, p in enumerate(truth.positions)}
    assert len(row_of) == len(truth.positions)
    rows = np.asarray([row_of[key(a.point)] for a in anns])
    assert sorted(rows.tolist()) == list(range(len(truth.positions)))
    got = {spec.id: np.asarray([props_of(r, a)[spec.id] for a in anns]) for spec in r.properties}
    for attr, targets in VERTEX_PROPERTIES.items():
        if attr in truth.attributes:
            for pid, convert in targets:
                np.testing.assert_array_equal(got[pid], convert(np.asarray(truth.attributes[attr]))[rows], pid)
    specs = {s.id: s for s in r.properties}
    for attr, pid in ENUMS.items():
        if attr in truth.attributes:
            labels = np.asarray(specs[pid].enum_labels)[np.searchsorted(specs[pid].enum_values, got[pid])]
            expected = np.asarray(truth.attributes[attr])[rows]
            assert (labels == (np.where(expected, "true", "false") if expected.dtype == bool else expected)).all()


@pytest.mark.parametrize("name", STORES)
def test_info_dimensions_bounds_and_honest_limit(name: str, layer_url, point_stores) -> None:
    r = reader(layer_url(name))
    info = r.metadata
    truth = read_truth(point_stores[name])
    unit = {"typed": 1e-6}.get(name, 1e-9)
    assert info["dimensions"] == {axis: [unit, "m"] for axis in "xyz"}
    assert info["annotation_type"] == "point"
    lo, hi = np.asarray(info["lower_bound"]), np.asarray(info["upper_bound"])
    assert (truth.positions >= lo).all() and (truth.positions < hi).all()
    (level,) = info["spatial"]
    assert np.allclose(np.asarray(level["grid_shape"]) * level["chunk_size"], hi - lo)
    cells = [r.spatial[0].get(c).result() for c in np.ndindex(*level["grid_shape"])]
    counts = [len(c) for c in cells if c is not None]
    assert sum(counts) == len(truth.positions)
    assert max(counts) == level["limit"], "limit is the largest cell, so the client never drops points"


@pytest.mark.parametrize("name", ["typed", "large"])
def test_by_id_and_object_relationship(name: str, layer_url, point_stores) -> None:
    r = reader(layer_url(name))
    truth = read_truth(point_stores[name])
    assert truth.object_of is not None
    assert list(r.relationships) == ["object"]
    anns = read_all(r)
    rng = np.random.default_rng(0)
    for a in rng.choice(anns, 40, replace=False):
        one = r.by_id[int(a.id)]
        assert key(one.point) == key(a.point)
        for pid, value in props_of(r, a).items():
            np.testing.assert_array_equal(props_of(r, one)[pid], value)
        (segments,) = one.segments
        assert [int(s) for s in segments] == [truth.object_of[key(a.point)] + 1], "segment id = object id + 1"
    by_object: dict[int, set] = {}
    for p, oid in truth.object_of.items():
        by_object.setdefault(oid, set()).add(p)
    for oid in rng.choice(sorted(by_object), 8, replace=False):
        members = r.relationships["object"][int(oid) + 1]
        assert {key(a.point) for a in members} == by_object[int(oid)]
    assert r.relationships["object"].get(10**9).result() is None


def test_object_attributes_are_properties(layer_url, point_stores) -> None:
    import zarr_vectors as zv
    from zarr_vectors import building

    r = reader(layer_url("typed"))
    truth = read_truth(point_stores["typed"])
    assert truth.object_of is not None
    level = zv.open(str(point_stores["typed"])).level(0)
    score = np.asarray(building.read_object_attributes(level.store, "score"))
    tissue = np.asarray(building.read_object_attributes(level.store, "tissue"))
    spec = {s.id: s for s in r.properties}["tissue"]
    label_of = dict(zip(spec.enum_values, spec.enum_labels, strict=True))
    anns = read_all(r)
    for a in anns:
        oid = truth.object_of[key(a.point)]
        props = props_of(r, a)
        assert props["score"] == score[oid]
        assert label_of[int(props["tissue"])] == tissue[oid]


def test_no_relationship_without_objects(layer_url) -> None:
    r = reader(layer_url("typed_anonymous"))
    assert not r.relationships and "relationships" in r.metadata and r.metadata["relationships"] == []


def test_same_store_same_bytes_whatever_the_read_order(point_stores) -> None:
    """Ids (and every byte) come from the store alone: two trees read in opposite orders agree."""

    def files(tree, reverse: bool) -> dict[str, bytes]:
        paths = [f"annotations/{d}/{n}" for d in ("spatial0", "rel_object") for n in tree.listdir(f"annotations/{d}")]
        paths += [f"annotations/by_id/{i}" for i in range(1, 3001, 97)]
        return {p: tree.read(p) for p in (reversed(paths) if reverse else paths)}

    store = str(point_stores["typed"])
    assert files(open_virtual_tree(store), False) == files(open_virtual_tree(store), True)
