"""Any attribute name a store may carry works, in every layer of every geometry type.

The stores' vertex and object attributes use every name zvfs generates itself (segment
properties' ``label``, ``description`` and ``tags``, the ``segment_id`` attribute when it cannot
be the ids, relationship ids, line endpoints' ``_a``/``_b`` suffixes, the skeletons' ``direction``),
GLSL's own words, and names with spaces, accents, punctuation and leading digits. Every layer is
read through ``zvfs serve`` with independent readers (neuroglancer's ``AnnotationReader``,
cloud-volume, the segment properties as JSON), and every attribute's values must come back under a
distinct id: each stored column is found again, by its values, among the layer's columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import zarr_vectors as zv
from cloudvolume import CloudVolume
from neuroglancer import read_precomputed_annotations
from support import TIMEOUT, segmentation_info, served, small_schema, uv_sphere, walk

VERTEX = ["label", "tags", "object", "group", "direction", "float", "cell type", "größe", "a-b.c", "3d", "w"]
OBJECT = {
    "label": "int",
    "tags": "float",
    "description": "float",
    "segment_id": "float",  # not usable as segment ids: a property like any other
    "object": "int",
    "group": "int",
    "w_a": "float",  # a line's endpoint property of vertex attribute "w" has this name too
    "name": "int",
    "größe": "float",
    "3d": "float",
    "cell type": "string",
}
ANNOTATION_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
OBJECTS = 4


def vertex_values(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {name: rng.random(n).astype(np.float32) for name in VERTEX}


def object_values(rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for name, kind in OBJECT.items():
        if kind == "int":
            out[name] = rng.permutation(1000)[:OBJECTS].astype(np.int32) + 1
        elif kind == "float":
            out[name] = rng.random(OBJECTS).astype(np.float32)
        else:
            out[name] = np.array(["grey matter", "white#matter"])[np.arange(OBJECTS) % 2]
    return out


def build(root: Path, kind: str) -> tuple[Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A store of ``kind`` with every colliding name; returns it and the per-vertex (flattened over
    all vertices) and per-object values written."""
    rng = np.random.default_rng(7)
    path = root / f"{kind}.zarrvectors"
    ds = zv.create(str(path), schema=small_schema(kind))
    objects = object_values(rng)
    if kind == "point_cloud":
        pos = rng.uniform(1, 99, (60, 3)).astype(np.float32)
        vertex = vertex_values(rng, len(pos))
        ds.add_points(pos, attributes=vertex, object_ids=np.arange(len(pos)) % OBJECTS, object_attributes=objects)
    elif kind == "line":
        ends = rng.uniform(1, 99, (OBJECTS, 2, 3)).astype(np.float32)
        vertex = {k: v.reshape(OBJECTS, 2) for k, v in vertex_values(rng, 2 * OBJECTS).items()}
        ds.add_lines(ends, attributes=vertex, object_attributes=objects)
        vertex = {k: v.reshape(-1) for k, v in vertex.items()}
    elif kind == "streamline":
        lines = [walk(rng, 12) for _ in range(OBJECTS)]
        per_line = {k: [rng.random(len(p)).astype(np.float32) for p in lines] for k in VERTEX}
        ds.add_polylines(lines, streamlines=True, attributes=per_line, object_attributes=objects)
        vertex = {k: np.concatenate(v) for k, v in per_line.items()}
    elif kind in ("graph", "skeleton"):
        pos = np.concatenate([walk(rng, 15, 3.0) for _ in range(OBJECTS)])
        chain = np.arange(len(pos)).reshape(OBJECTS, 15)
        edges = np.stack([chain[:, 1:].ravel(), chain[:, :-1].ravel()], 1)
        vertex = vertex_values(rng, len(pos))
        ds.add_graph(
            pos, edges, object_ids=np.repeat(np.arange(OBJECTS), 15), tree=kind == "skeleton",
            attributes=vertex, object_attributes=objects,
        )  # fmt: skip
    else:
        meshes = [uv_sphere((25 + 15 * k, 50, 50), 6, 6) for k in range(OBJECTS)]
        pos = np.concatenate([v for v, _ in meshes])
        starts = np.cumsum([0] + [len(v) for v, _ in meshes])[:-1]
        faces = np.concatenate([f + s for (_, f), s in zip(meshes, starts, strict=True)])
        vertex = vertex_values(rng, len(pos))
        owner = np.concatenate([np.full(len(v), k) for k, (v, _) in enumerate(meshes)])
        ds.add_mesh(pos, faces, object_ids=owner, attributes=vertex, object_attributes=objects)
    return path, vertex, objects


KINDS = ("point_cloud", "line", "streamline", "graph", "skeleton", "mesh")


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, dict, dict]]]:
    """kind -> (served base URL, vertex values, object values)."""
    root = tmp_path_factory.mktemp("names")
    built = {kind: build(root, kind) for kind in KINDS}
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield {
            kind: (stack.enter_context(served(path, root / f"{kind}.log"))[1], vertex, objects)
            for kind, (path, vertex, objects) in built.items()
        }


def get_json(url: str) -> dict:
    resp = requests.get(url, timeout=TIMEOUT)
    assert resp.status_code == 200, (url, resp.status_code, resp.text)
    return resp.json()


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and np.allclose(np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64)))


def assert_each_found(stored: dict[str, np.ndarray], columns: dict[str, np.ndarray], where: str) -> None:
    """Every stored numeric column is one of ``columns`` (by its values), each under its own id."""
    found: dict[str, str] = {}
    for name, values in stored.items():
        if values.dtype.kind not in "iuf":
            continue
        match = [pid for pid, col in columns.items() if same_values(col, values)]
        assert len(match) == 1, f"{where}: attribute {name!r} found as {match} among {sorted(columns)}"
        found[name] = match[0]
    assert len(set(found.values())) == len(found)


@pytest.mark.parametrize("kind", KINDS)
def test_every_layer_info_is_served(trees, kind: str) -> None:
    base = trees[kind][0]
    listing = requests.get(base, timeout=TIMEOUT).json()
    for layer in (name for name in listing if name != "levels"):
        info = get_json(f"{base}{layer}/info")
        if "segment_properties" in info:
            props = get_json(f"{base}{layer}/{info['segment_properties']}/info")["inline"]["properties"]
            assert len({p["id"] for p in props}) == len(props)


def annotation_columns(base: str) -> dict[str, np.ndarray]:
    """Property id -> its values over every annotation of the layer (read by id)."""
    reader = read_precomputed_annotations.AnnotationReader(f"{base}annotations/")
    anns = [reader.by_id[int(aid)] for aid in get_json(f"{base}annotations/by_id/")]
    return {spec.id: np.asarray([a.props[k] for a in anns], np.float64) for k, spec in enumerate(reader.properties)}


@pytest.mark.parametrize("kind", ["point_cloud", "line", "streamline", "graph"])
def test_annotation_properties_keep_every_attribute(trees, kind: str) -> None:
    base, vertex, objects = trees[kind]
    ids = [p["id"] for p in get_json(f"{base}annotations/info")["properties"]]
    assert len(set(ids)) == len(ids) and all(ANNOTATION_ID.match(i) for i in ids), ids
    columns = annotation_columns(base)
    per_object = {name: np.unique(v) for name, v in objects.items()}
    assert_each_found(per_object, {pid: np.unique(v) for pid, v in columns.items()}, f"{kind} object properties")
    if kind == "point_cloud":
        assert_each_found(vertex, columns, "point properties")
    if kind == "line":
        ends = {f"{name}[{e}]": v.reshape(OBJECTS, 2)[:, k] for name, v in vertex.items() for k, e in enumerate("ab")}
        assert_each_found(ends, columns, "line endpoint properties")


@pytest.mark.parametrize("kind", ["streamline", "graph", "skeleton"])
def test_skeleton_attributes_keep_every_name(trees, kind: str, tmp_path: Path) -> None:
    base, vertex, _ = trees[kind]
    info = get_json(f"{base}skeletons/info")
    generated = info.get("zvfs", {}).get("direction")  # streamlines' own direction colours, beside the store's
    assert (generated is not None) == (kind == "streamline")
    every = [a["id"] for a in info["vertex_attributes"]]
    ids = [i for i in every if i != generated]
    assert len(set(every)) == len(every) and len(ids) == len(VERTEX)
    assert not {"float", "in", "out", "int"} & set(ids) and all(i.isidentifier() and "__" not in i for i in ids)
    root = tmp_path / "seg"
    (root / "skeletons").mkdir(parents=True)
    (root / "info").write_text(json.dumps(segmentation_info("skeletons")))
    (root / "skeletons" / "info").write_text(json.dumps(info))
    segments = [int(s) for s in get_json(f"{base}skeletons/segment_properties/info")["inline"]["ids"]]
    for seg in segments:
        (root / "skeletons" / str(seg)).write_bytes(requests.get(f"{base}skeletons/{seg}", timeout=TIMEOUT).content)
    cv = CloudVolume(f"precomputed://file://{root}")
    skeletons = [cv.skeleton.get(seg) for seg in segments]
    columns = {i: np.concatenate([np.asarray(getattr(s, i)).reshape(-1) for s in skeletons]) for i in ids}
    assert_each_found(vertex, columns, f"{kind} skeletons")


@pytest.mark.parametrize("kind", ["streamline", "graph", "skeleton", "mesh"])
def test_segment_properties_keep_every_name(trees, kind: str) -> None:
    base, _, objects = trees[kind]
    layer = "meshes" if kind == "mesh" else "skeletons"
    inline = get_json(f"{base}{layer}/segment_properties/info")["inline"]
    props = {p["id"]: p for p in inline["properties"]}
    assert len(props) == len(inline["properties"])
    assert [p["type"] for p in props.values()].count("label") == 1
    numbers = {pid: np.asarray(p["values"], np.float64) for pid, p in props.items() if p["type"] == "number"}
    assert_each_found(objects, numbers, f"{kind} segment properties")
    tags = next(p for p in props.values() if p["type"] == "tags")["tags"]
    assert sorted(tags) == ["cell_type=grey_matter", "cell_type=white_matter"]
