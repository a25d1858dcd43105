"""Skeletons end to end: skeleton, graph and streamline stores built with zarr-vectors, their
``skeletons/`` trees fetched through a real mount, a real server and an export, decoded with
cloud-volume (an independent reader) and compared with what was written / what zarr-vectors reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack

import numpy as np
import pytest
import zarr_vectors as zv
from cloudvolume import Skeleton
from support import FRONT_ENDS, build_graph, build_polylines, build_skeletons, fetch, tree_urls
from support import point_key as key


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("skeleton_stores")
    sk, written = build_skeletons(root / "skeleton.zarrvectors")
    gr, P, E, _ = build_graph(root / "graph.zarrvectors")
    sl, lines, vertex = build_polylines(root / "streamline.zarrvectors")
    return {
        "paths": {"skeleton": sk, "graph": gr, "streamline": sl},
        "skeleton": written,
        "graph": (P, E),
        "streamline": (lines, vertex),
    }


@pytest.fixture(scope="module", params=FRONT_ENDS)
def skeletons(request: pytest.FixtureRequest, stores: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """store name -> (info, segment properties, segment id -> cloud-volume Skeleton) via one front end."""
    with ExitStack() as stack:
        urls = tree_urls(request.param, stores["paths"], tmp_path_factory.mktemp(request.param), stack)

        def open_layer(name: str):
            base = urls[name] + "skeletons/"
            info = json.loads(fetch(base + "info"))
            props = json.loads(fetch(base + info["segment_properties"] + "/info"))

            def get(segment: int) -> Skeleton:
                return Skeleton.from_precomputed(
                    fetch(f"{base}{segment}"), segid=segment, vertex_attributes=info["vertex_attributes"]
                )

            return info, props, get

        yield open_layer


def edge_set(vertices: np.ndarray, edges: np.ndarray, directed: bool) -> set:
    pairs = [(key(vertices[a]), key(vertices[b])) for a, b in edges]
    return set(pairs) if directed else {frozenset(p) for p in pairs}


def test_skeleton_trees_with_vertex_attributes(skeletons, stores) -> None:
    info, props, get = skeletons("skeleton")
    w = stores["skeleton"]
    assert info["transform"] == [1000.0, 0, 0, 0, 0, 1000.0, 0, 0, 0, 0, 1000.0, 0], "micrometre store -> nm"
    assert [a["id"] for a in info["vertex_attributes"]] == ["radius", "swc_type"]
    assert all(a["data_type"] == "float32" for a in info["vertex_attributes"]), "the client renders float32 only"
    ids = [int(i) for i in props["inline"]["ids"]]
    assert ids == w["segment_id"].tolist(), "segment ids come from the store's segment_id attribute"
    labels = props["inline"]["properties"][0]
    assert labels["type"] == "label" and labels["values"] == [f"neuron {k}" for k in range(len(ids))]
    for o, seg in enumerate(ids):
        mine = w["objects"] == o
        P = w["positions"][mine]
        s = get(seg)
        assert sorted(map(key, s.vertices)) == sorted(map(key, P)), "every vertex once, none lost at seams"
        first = np.flatnonzero(mine)[0]
        E = w["edges"][np.isin(w["edges"][:, 0], np.flatnonzero(mine))] - first
        assert edge_set(s.vertices, s.edges, True) == edge_set(P, E, True), "[child, parent] edges kept"
        row = {key(p): i for i, p in enumerate(P)}
        order = [row[key(v)] for v in s.vertices]
        np.testing.assert_array_equal(s.radius, w["radius"][mine][order])
        np.testing.assert_array_equal(s.swc_type, w["swc_type"][mine][order].astype(np.float32))


def test_graph_skeleton_per_connected_object(skeletons, stores) -> None:
    info, _, get = skeletons("graph")
    P, E = stores["graph"]
    assert [a["id"] for a in info["vertex_attributes"]] == ["degree"]
    for o in range(3):
        s = get(o + 1)
        rows = np.arange(o * 80, (o + 1) * 80)
        assert sorted(map(key, s.vertices)) == sorted(map(key, P[rows]))
        mine = E[np.isin(E[:, 0], rows)] - o * 80
        assert edge_set(s.vertices, s.edges, False) == edge_set(P[rows], mine, False)
        degree = np.bincount(E.ravel(), minlength=len(P))[rows]
        row = {key(p): i for i, p in enumerate(P[rows])}
        np.testing.assert_array_equal(s.degree, degree[[row[key(v)] for v in s.vertices]].astype(np.float32))


def test_streamlines_as_unbranched_skeletons(skeletons, stores) -> None:
    info, _, get = skeletons("streamline")
    level = zv.open(str(stores["paths"]["streamline"])).level(0)
    _, vertex = stores["streamline"]
    assert [a["id"] for a in info["vertex_attributes"]] == ["fa", "label", "direction"]
    for oid in level.objects.ids():
        whole = level.objects[int(oid)]
        s = get(int(oid) + 1)
        np.testing.assert_array_equal(s.vertices, whole.positions)
        n = len(whole.positions)
        np.testing.assert_array_equal(s.edges, np.stack([np.arange(n - 1), np.arange(1, n)], 1))
        np.testing.assert_array_equal(s.fa, whole.attributes["fa"])
        np.testing.assert_array_equal(s.label, vertex["label"][int(oid)].astype(np.float32))


def test_object_attributes_as_segment_properties(skeletons, stores) -> None:
    """Numbers for numeric attributes, tags for strings; checked against zarr-vectors' own read."""
    from zarr_vectors import building

    _, props, _ = skeletons("streamline")
    level = zv.open(str(stores["paths"]["streamline"])).level(0)
    truth = {n: np.asarray(building.read_object_attributes(level.store, n)) for n in level.attribute_names("object")}
    inline = props["inline"]
    assert inline["ids"] == [str(o + 1) for o in level.objects.ids()]
    by_id = {p["id"]: p for p in inline["properties"]}
    np.testing.assert_array_equal(np.float32(by_id["score"]["values"]), truth["score"])
    assert by_id["score"]["data_type"] == "float32"
    assert by_id["count"]["values"] == truth["count"].tolist() and by_id["count"]["data_type"] == "int32"
    assert by_id["big"]["values"] == truth["big"].tolist() and by_id["big"]["data_type"] == "int32"
    tags = by_id["tags"]
    for k, value in enumerate(truth["tissue"]):
        assert [tags["tags"][t] for t in tags["values"][k]] == [f"tissue={value.replace(' ', '_')}"]
