"""Lines, polylines/streamlines and graph edges end to end: stores built with zarr-vectors, read
back through a real mount, a real server and an export with Neuroglancer's AnnotationReader, and
compared with what zarr-vectors reads (or, where its 0.9.2 reader drops data, what was written)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr_vectors as zv
from neuroglancer import read_precomputed_annotations
from support import FRONT_ENDS, build_graph, build_lines, build_polylines, tree_urls
from support import point_key as key
from zarr_vectors import building

OBJECT_PROPERTIES = {"score": np.float32, "weight64": np.float32, "count": np.int32, "tag": np.uint16, "big": np.int32}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("connected")
    sl, _, _ = build_polylines(root / "streamline.zarrvectors", "streamline")
    pl, _, _ = build_polylines(root / "polyline.zarrvectors", "polyline", lengths=(2, 4, 9, 40), seed=1)
    gr, P, E, edge_attrs = build_graph(root / "graph.zarrvectors")
    return {
        "paths": {"streamline": sl, "polyline": pl, "line": build_lines(root / "line.zarrvectors"), "graph": gr},
        "graph": (P, E, edge_attrs),
    }


@pytest.fixture(scope="module", params=FRONT_ENDS)
def layer(request: pytest.FixtureRequest, stores: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """store name -> AnnotationReader of its annotation layer through one front end."""
    with ExitStack() as stack:
        urls = tree_urls(request.param, stores["paths"], tmp_path_factory.mktemp(request.param), stack)
        yield lambda name: read_precomputed_annotations.AnnotationReader(urls[name] + "annotations/")


def props_of(r, ann) -> dict:
    return {spec.id: value for spec, value in zip(r.properties, ann.props, strict=True)}


def all_once(r) -> dict[int, Any]:
    """id -> annotation over the whole spatial index; an item may be listed in every cell it passes
    through, but always with identical content."""
    seen: dict[int, Any] = {}
    for a in r.get_within_spatial_bounds():
        if int(a.id) in seen:
            assert np.array_equal(seen[int(a.id)].props[0], a.props[0])
        seen[int(a.id)] = a
    return seen


def object_truth(path: Path) -> tuple[zv.Level, dict[str, np.ndarray]]:
    level = zv.open(str(path)).level(0)
    attrs = {
        name: np.asarray(building.read_object_attributes(level.store, name)) for name in level.attribute_names("object")
    }
    return level, attrs


def check_object_properties(r, ann, attrs: dict[str, np.ndarray], oid: int) -> None:
    props = props_of(r, ann)
    for name, dtype in OBJECT_PROPERTIES.items():
        assert props[name] == attrs[name][oid].astype(dtype), name
    spec = {s.id: s for s in r.properties}["tissue"]
    assert dict(zip(spec.enum_values, spec.enum_labels, strict=True))[int(props["tissue"])] == attrs["tissue"][oid]


@pytest.mark.parametrize("name", ["streamline", "polyline"])
def test_one_polyline_annotation_per_whole_object(name: str, layer, stores) -> None:
    r = layer(name)
    assert r.metadata["annotation_type"] == "polyline"
    level, attrs = object_truth(stores["paths"][name])
    anns = all_once(r)
    assert sorted(anns) == [int(o) + 1 for o in level.objects.ids()]
    for aid, a in anns.items():
        whole = level.objects[aid - 1].positions
        np.testing.assert_array_equal(np.asarray(a.points, np.float32), whole)
        check_object_properties(r, a, attrs, aid - 1)
        one = r.by_id[aid]
        np.testing.assert_array_equal(np.asarray(one.points, np.float32), whole)
        assert [int(s) for s in one.segments[0]] == [aid]
        assert [int(g) for g in one.segments[1]] == [(aid - 1) % 2 + 1], "group 0: even objects, 1: odd"
    for aid in anns:
        (member,) = r.relationships["object"][aid]
        assert int(member.id) == aid
    assert list(r.relationships) == ["object", "group"]
    for group in (0, 1):
        members = {int(a.id) for a in r.relationships["group"][group + 1]}
        assert members == {aid for aid in anns if (aid - 1) % 2 == group}


def test_lines_with_endpoint_attributes(layer, stores) -> None:
    r = layer("line")
    assert r.metadata["annotation_type"] == "line"
    level, attrs = object_truth(stores["paths"]["line"])
    anns = all_once(r)
    assert sorted(anns) == [int(o) + 1 for o in level.objects.ids()]
    for aid, a in anns.items():
        obj = level.objects[aid - 1]
        assert (key(a.point_a), key(a.point_b)) == (key(obj.positions[0]), key(obj.positions[1]))
        props = props_of(r, a)
        assert (props["w_a"], props["w_b"]) == tuple(np.asarray(obj.attributes["w"], np.float32))
        assert (props["k_a"], props["k_b"]) == tuple(np.asarray(obj.attributes["k"], np.int16))
        check_object_properties(r, a, attrs, aid - 1)


def test_graph_edges_as_lines(layer, stores) -> None:
    r = layer("graph")
    P, E, edge_attrs = stores["graph"]
    level, attrs = object_truth(stores["paths"]["graph"])
    expected = {frozenset((key(P[i]), key(P[j]))): k for k, (i, j) in enumerate(E)}
    anns = all_once(r)
    assert len(anns) == len(E) == len(level.read().edges)
    seen = set()
    for aid, a in anns.items():
        k = expected[frozenset((key(a.point_a), key(a.point_b)))]
        seen.add(k)
        props = props_of(r, a)
        assert props["length"] == edge_attrs["length"][k] and props["kind"] == edge_attrs["kind"][k]
        oid = int(E[k, 0]) // 80
        check_object_properties(r, a, attrs, oid)
        assert [int(s) for s in r.by_id[aid].segments[0]] == [oid + 1]
    assert seen == set(range(len(E)))
    for oid in range(3):
        members = r.relationships["object"][oid + 1]
        assert len(members) == int((E[:, 0] // 80 == oid).sum())
