"""Skeleton and segment-property encoders checked with independent readers.

Skeletons: the files are written as a precomputed segmentation with a ``skeletons`` directory and
read back with cloud-volume (``cv.skeleton.get``), which decodes positions, edges and every declared
vertex attribute by the ``info`` and applies ``transform`` (stored -> nm) to the vertices.

Segment properties: neither cloud-volume nor the ``neuroglancer`` Python package (2.41.2) reads
them, so the ``info`` is written where a layer would load it, read back as JSON, checked against
the rules the 2.41.2 client enforces (``frontend.ts`` ``parseInlinePropertyMap``; notes section 6)
and, when a google/neuroglancer checkout is available, validated with the upstream JSON schema.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cloudvolume import CloudVolume
from support import segmentation_info

from zvfs.encoders import numeric
from zvfs.encoders import segment_properties as sp
from zvfs.encoders import skeletons as sk
from zvfs.encoders.skeletons import VertexAttribute as VA

# stored -> nm: anisotropic scale and a translation
SCALING = (4.0, 0.0, 0.0, 10.0, 0.0, 5.0, 0.0, -3.0, 0.0, 0.0, 40.0, 0.5)
TYPED_SPEC = (
    VA("radius", "float32"),
    VA("swc_type", "uint8"),
    VA("normal", "float32", 3),
    VA("depth", "int16"),
    VA("label", "uint32"),
    VA("sign", "int8"),
)


# -- helpers -----------------------------------------------------------------------------------


def write_dataset(
    root: Path, skeleton_info: dict, skeletons: Mapping[int, bytes], properties: dict | None = None
) -> Path:
    """A segmentation dataset: top info, ``skeletons/info`` + one file per id, optional properties."""
    top = segmentation_info("skeletons")
    if properties is not None:
        top["segment_properties"] = "segment_properties"
        (root / "segment_properties").mkdir(parents=True)
        (root / "segment_properties" / "info").write_text(json.dumps(properties, allow_nan=False))
    (root / "skeletons").mkdir(parents=True)
    (root / "info").write_text(json.dumps(top))
    (root / "skeletons" / "info").write_text(json.dumps(skeleton_info, allow_nan=False))
    for segid, data in skeletons.items():
        (root / "skeletons" / str(segid)).write_bytes(data)
    return root


def cloud_volume(root: Path) -> CloudVolume:
    return CloudVolume(f"precomputed://file://{root}", progress=False)


def tree_edges(rng: np.random.Generator, n: int) -> np.ndarray:
    """Edges of a random tree on ``n`` vertices (each vertex to an earlier parent)."""
    child = np.arange(1, n)
    return np.stack([rng.integers(0, child), child], 1)


def typed_attributes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Values for TYPED_SPEC spanning each integer type's full range."""
    return {
        "radius": rng.uniform(0.5, 20, n),  # float64: cast to float32 by the encoder
        "swc_type": rng.integers(0, 256, n),  # int64 within uint8
        "normal": rng.normal(size=(n, 3)).astype(np.float32),
        "depth": rng.integers(-(2**15), 2**15, n).astype(np.int16),
        "label": rng.integers(0, 2**32, n, dtype=np.uint64),
        "sign": np.resize(np.array([-128, 0, 127], np.int8), n),
    }


def expected_vertices(vertices: np.ndarray, transform: Sequence[float] | None) -> np.ndarray:
    """What cloud-volume returns: stored float32 positions mapped by the 3x4 transform (identity if None)."""
    v = vertices.astype(np.float32).astype(np.float64)
    if transform is None:
        return v
    t = np.asarray(transform, np.float64).reshape(3, 4)
    return v @ t[:, :3].T + t[:, 3]


def check_skeleton(
    skel: Any,
    vertices: np.ndarray,
    edges: np.ndarray,
    attributes: Mapping[str, Any],
    spec: Sequence[VA],
    transform: Any,
) -> None:
    """cloud-volume's skeleton equals the encoded one: positions, edges, each attribute and its dtype."""
    np.testing.assert_allclose(skel.vertices, expected_vertices(vertices, transform), rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(skel.edges, np.asarray(edges).reshape(-1, 2))
    if spec:
        assert [a["id"] for a in skel.extra_attributes] == [a.id for a in spec]
    for a in spec:
        got = getattr(skel, a.id)
        want = np.asarray(attributes[a.id]).astype(a.dtype)
        assert got.dtype == a.dtype
        np.testing.assert_array_equal(
            got.reshape(len(vertices), a.num_components), want.reshape(len(vertices), a.num_components)
        )


# -- skeletons through cloud-volume -------------------------------------------------------------


@pytest.mark.parametrize("transform", [None, SCALING], ids=["identity", "scaling"])
def test_typed_attributes_round_trip(tmp_path: Path, transform: tuple[float, ...] | None) -> None:
    """Several segments with attributes of every integer width, float32 scalar and 3-vector.

    Without a transform the identity is written and cloud-volume returns the stored positions; with
    one it returns ``R @ v + t`` (nm), attributes (radius included) untouched.
    """
    rng = np.random.default_rng(0)
    cases = {}
    for segid, n in [(1, 2), (42, 37), (2**40 + 3, 500)]:
        vertices = rng.uniform(-1000, 1000, (n, 3))
        cases[segid] = (vertices, tree_edges(rng, n), typed_attributes(rng, n))
    files = {s: sk.encode(v, e, a, TYPED_SPEC) for s, (v, e, a) in cases.items()}
    for s, (v, e, _) in cases.items():
        assert len(files[s]) == sk.size(len(v), len(e), TYPED_SPEC)
    info = sk.info(TYPED_SPEC, transform=transform)
    cv = cloud_volume(write_dataset(tmp_path, info, files))
    assert cv.skeleton.meta.info == info
    skeletons = cv.skeleton.get(list(cases))
    assert sorted(s.id for s in skeletons) == sorted(cases)
    for skel in skeletons:
        v, e, a = cases[skel.id]
        check_skeleton(skel, v, e, a, TYPED_SPEC, transform)


def test_single_vertex_no_edges(tmp_path: Path) -> None:
    """One vertex, zero edges, with attributes: counts (1, 0) and the attribute values read back."""
    spec = (VA("radius", "float32"), VA("swc_type", "uint8"))
    vertices, edges = np.array([[1.5, -2.0, 3.25]]), np.zeros((0, 2), np.uint32)
    attrs: dict[str, np.ndarray] = {"radius": np.array([7.5], np.float32), "swc_type": np.array([3], np.uint8)}
    data = sk.encode(vertices, edges, attrs, spec)
    assert data[:8] == np.array([1, 0], "<u4").tobytes()
    assert len(data) == sk.size(1, 0, spec) == 8 + 12 + 4 + 1
    skel = cloud_volume(write_dataset(tmp_path, sk.info(spec), {5: data})).skeleton.get(5)
    check_skeleton(skel, vertices, edges, attrs, spec, None)
    # an empty edge list given as a flat empty array is accepted too
    assert sk.encode(vertices, [], attrs, spec) == data


def test_no_attributes(tmp_path: Path) -> None:
    """An empty attribute list: ``vertex_attributes`` is [] and the file ends after the edges."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]], np.float32)
    edges = np.array([[0, 1], [1, 2], [2, 3]], np.uint32)
    info = sk.info()
    assert info == {"@type": "neuroglancer_skeletons", "transform": list(sk.IDENTITY), "vertex_attributes": []}
    data = sk.encode(vertices, edges, {}, ())
    assert len(data) == sk.size(4, 3, ()) == 8 + 4 * 12 + 3 * 8
    skel = cloud_volume(write_dataset(tmp_path, info, {9: data})).skeleton.get(9)
    check_skeleton(skel, vertices, edges, {}, (), None)


def test_large_skeleton(tmp_path: Path) -> None:
    """10k vertices in a random tree with radius and swc type, under a scaling transform."""
    rng = np.random.default_rng(1)
    n = 10_000
    spec = (VA("radius", "float32"), VA("swc_type", "uint8"))
    vertices = rng.uniform(0, 5e4, (n, 3)).astype(np.float32)
    edges = tree_edges(rng, n).astype(np.uint32)
    attrs: dict[str, np.ndarray] = {
        "radius": rng.uniform(1, 100, n).astype(np.float32),
        "swc_type": rng.integers(0, 8, n, dtype=np.uint8),
    }
    data = sk.encode(vertices, edges, attrs, spec)
    assert len(data) == sk.size(n, n - 1, spec) == 8 + n * (12 + 5) + 8 * (n - 1)
    skel = cloud_volume(write_dataset(tmp_path, sk.info(spec, transform=SCALING), {123456789: data})).skeleton.get(
        123456789
    )
    check_skeleton(skel, vertices, edges, attrs, spec, SCALING)


def test_bytes_are_little_endian_in_spec_order() -> None:
    """Byte layout independent of cloud-volume: header, positions, edges, then attributes in spec order."""
    spec = (VA("b", "uint16"), VA("a", "float32", 2))
    data = sk.encode(
        np.array([[1, 2, 3], [4, 5, 6]]),
        np.array([[1, 0]]),
        {"a": np.array([[0.5, 1.5], [2.5, 3.5]]), "b": np.array([258, 65535])},
        spec,
    )
    assert data == (
        np.array([2, 1], "<u4").tobytes()
        + np.arange(1, 7, dtype="<f4").tobytes()
        + np.array([1, 0], "<u4").tobytes()
        + np.array([258, 65535], "<u2").tobytes()
        + np.array([0.5, 1.5, 2.5, 3.5], "<f4").tobytes()
    )


@pytest.mark.parametrize("n_vertices,n_edges", [(0, 0), (1, 0), (2, 1), (100, 250)])
def test_size_matches_encode(n_vertices: int, n_edges: int) -> None:
    """size() equals len(encode()) for empty to multi-attribute skeletons (cycles and repeats allowed)."""
    rng = np.random.default_rng(n_vertices)
    vertices = rng.normal(size=(n_vertices, 3))
    edges = rng.integers(0, max(n_vertices, 1), (n_edges, 2))
    for spec in [(), TYPED_SPEC, (VA("v", "int32", 7),)]:
        attrs = {a.id: np.zeros((n_vertices, a.num_components)) for a in spec}
        assert len(sk.encode(vertices, edges, attrs, spec)) == sk.size(n_vertices, n_edges, spec)


# -- skeleton info and validation ---------------------------------------------------------------


def test_info_fields() -> None:
    """transform is written row-major as given, segment_properties as a relative path."""
    info = sk.info([VA("radius", "float32")], transform=np.asarray(SCALING).reshape(3, 4), segment_properties="props")
    assert info == {
        "@type": "neuroglancer_skeletons",
        "transform": list(SCALING),
        "vertex_attributes": [{"id": "radius", "data_type": "float32", "num_components": 1}],
        "segment_properties": "props",
    }
    assert json.loads(json.dumps(info)) == info
    with pytest.raises(ValueError, match="12 finite"):
        sk.info(transform=[1, 0, 0])
    with pytest.raises(ValueError, match="12 finite"):
        sk.info(transform=[float("nan")] * 12)
    with pytest.raises(ValueError, match="duplicate"):
        sk.info([VA("r", "float32"), VA("r", "uint8")])


def test_vertex_attribute_declarations() -> None:
    """Spec types are accepted; check() refuses what the 2.41.2 client cannot render."""
    for t in numeric.TYPES:
        assert VA("x", t, 2).json() == {"id": "x", "data_type": t, "num_components": 2}
    VA("radius", "float32").check()
    VA("rgba", "float32", 4).check()
    with pytest.raises(ValueError, match="float32"):
        VA("swc_type", "uint8").check()
    with pytest.raises(ValueError, match="4 components"):
        VA("v", "float32", 5).check()
    for bad in [("", "float32", 1), ("x", "float64", 1), ("x", "uint64", 1), ("x", "float32", 0)]:
        with pytest.raises(ValueError):
            VA(*bad)


@pytest.mark.parametrize(
    "edges,message",
    [
        ([[0, 3]], "edge index 3 out of range for 3 vertices"),
        ([[-1, 0]], "edge index -1 out of range"),
        ([[0, 1, 2]], r"shape \(M, 2\)"),
        ([[0.0, 1.0]], "integer"),
    ],
)
def test_bad_edges(edges: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sk.encode(np.zeros((3, 3)), np.array(edges), {}, ())


@pytest.mark.parametrize(
    "spec,values,message",
    [
        ((VA("r", "float32"),), np.zeros(2), r"shape \(2,\), expected \(3, 1\)"),
        ((VA("n", "float32", 3),), np.zeros(3), r"expected \(3, 3\)"),
        ((VA("n", "float32", 3),), np.zeros((3, 2)), r"expected \(3, 3\)"),
        ((VA("t", "uint8"),), np.array([0, 255, 256]), r"do not fit uint8"),
        ((VA("t", "int8"),), np.array([-129, 0, 0]), r"do not fit int8"),
        ((VA("t", "uint32"),), np.array([-1, 0, 0]), r"do not fit uint32"),
        ((VA("t", "int16"),), np.array([0.0, 1.5, 2.0]), "non-integer"),
        ((VA("t", "uint16"),), np.array([0.0, np.nan, 2.0]), "non-integer"),
        ((VA("r", "float32"),), np.array([0.0, 1e39, 2.0]), "float32 range"),
        ((VA("r", "float32"),), np.array(["a", "b", "c"]), "not numbers"),
    ],
)
def test_bad_attribute_values(spec: tuple[VA, ...], values: np.ndarray, message: str) -> None:
    """Length mismatches and values that would wrap, truncate or overflow are refused."""
    with pytest.raises(ValueError, match=message):
        sk.encode(np.zeros((3, 3)), np.array([[0, 1]]), {spec[0].id: values}, spec)


def test_bad_attribute_sets_and_vertices() -> None:
    spec = (VA("r", "float32"),)
    with pytest.raises(ValueError, match="missing vertex attribute 'r'"):
        sk.encode(np.zeros((2, 3)), [[0, 1]], {}, spec)
    with pytest.raises(ValueError, match="not declared"):
        sk.encode(np.zeros((2, 3)), [[0, 1]], {"r": np.zeros(2), "extra": np.zeros(2)}, spec)
    with pytest.raises(ValueError, match="duplicate"):
        sk.encode(np.zeros((2, 3)), [[0, 1]], {"r": np.zeros(2)}, spec * 2)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        sk.encode(np.zeros((2, 2)), [[0, 1]], {}, ())
    # integer values exactly at the limits are fine
    data = sk.encode(np.zeros((2, 3)), [[0, 1]], {"t": np.array([0, 2**32 - 1])}, (VA("t", "uint32"),))
    assert data[-8:] == np.array([0, 2**32 - 1], "<u4").tobytes()


# -- segment properties --------------------------------------------------------------------------

NUMBER_DTYPES = {
    "uint8": np.uint8,
    "int8": np.int8,
    "uint16": np.uint16,
    "int16": np.int16,
    "uint32": np.uint32,
    "int32": np.int32,
    "float32": np.float32,
}


def client_parse(info: Any) -> dict[str, dict[int, Any]]:
    """Apply the checks the 2.41.2 client makes when it parses an inline property map (notes section 6)
    and return property id -> {segment id: value}; any violation fails the test."""
    assert info["@type"] == "neuroglancer_segment_properties"
    inline = info["inline"]
    assert all(isinstance(i, str) and i.isdigit() and int(i) < 2**64 for i in inline["ids"])
    ids = [int(i) for i in inline["ids"]]
    assert len(set(ids)) == len(ids)
    types = [p["type"] for p in inline["properties"]]
    assert len({p["id"] for p in inline["properties"]}) == len(types)
    assert all(types.count(t) <= 1 for t in ("label", "description", "tags"))
    out = {}
    for p in inline["properties"]:
        values = p["values"]
        assert isinstance(values, list) and len(values) == len(ids)
        assert ("data_type" in p) == (p["type"] == "number")
        assert ("tags" in p) == (p["type"] == "tags")
        if p["type"] == "number":
            assert all(type(v) in (int, float) for v in values)
            with np.errstate(over="ignore", invalid="ignore"):  # as Float32Array.from / Int8Array.from / ...
                typed = np.array(values, np.float64).astype(NUMBER_DTYPES[p["data_type"]])
            if p["data_type"] == "float32":
                assert np.all(np.isfinite(typed))  # nothing became infinity
            else:
                assert typed.tolist() == values  # nothing wrapped or truncated
        elif p["type"] == "tags":
            assert "description" not in p
            tags = p["tags"]
            assert all(t and " " not in t and not t.startswith("#") for t in tags)
            assert len(p.get("tag_descriptions", tags)) == len(tags)
            for v in values:
                assert all(type(i) is int for i in v) and v == sorted(set(v))
                assert all(0 <= i < len(tags) for i in v)
            values = [[tags[i] for i in v] for v in values]
        else:
            assert all(isinstance(v, str) for v in values)
        out[p["id"]] = dict(zip(ids, values, strict=True))
    return out


def upstream_schema() -> dict:
    """google/neuroglancer's ``json_schema/segment_properties.yml`` from a local clone or bare mirror
    (``NEUROGLANCER_REPO``; default: the session's mirror), or skip."""
    yaml = pytest.importorskip("yaml")
    repo = os.environ.get("NEUROGLANCER_REPO", "/work/.mirror/google+neuroglancer/repo")
    path = "src/datasource/precomputed/json_schema/segment_properties.yml"
    try:
        text = subprocess.run(
            ["git", f"--git-dir={repo}", "show", f"HEAD:{path}"], capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no google/neuroglancer checkout for the upstream JSON schema")
    return yaml.safe_load(text)


def every_kind() -> tuple[list, list[sp.SegmentProperty]]:
    """Four segments with one property of each kind, values given partly as numpy types."""
    ids = [np.uint64(2**64 - 1), 1, np.int64(70), 3]
    props = [
        sp.SegmentProperty("label", "label", ["big", "one", np.str_("seventy"), ""]),
        sp.SegmentProperty("description", "description", ["d0", "d1", "d2", "d3"]),
        sp.SegmentProperty("region", "string", ["CA1", "CA3", "DG", "CA1"], description="brain region"),
        sp.SegmentProperty(
            "cell_type",
            "tags",
            [[0], [2, 0], [], np.array([1, 1])],
            tags=("soma", "axon", "Dendrite"),
            tag_descriptions=("cell body", "an axon", ""),
        ),
        sp.SegmentProperty(
            "volume_um3",
            "number",
            np.array([1.5, 0.1, 3.4e38, -0.0], np.float64),
            data_type="float32",
            description="volume",
        ),
        sp.SegmentProperty("n_synapses", "number", np.array([0, 4294967295, 7, 12], np.uint64), data_type="uint32"),
        sp.SegmentProperty("layer", "number", [np.int8(-128), 127, 0, True], data_type="int8"),
        sp.SegmentProperty("u8", "number", [0.0, 255.0, 1, 2], data_type="uint8"),
        sp.SegmentProperty("i16", "number", [-(2**15), 2**15 - 1, 0, 0], data_type="int16"),
        sp.SegmentProperty("u16", "number", [0, 2**16 - 1, 0, 0], data_type="uint16"),
        sp.SegmentProperty("i32", "number", [-(2**31), 2**31 - 1, 0, 0], data_type="int32"),
    ]
    return ids, props


def test_segment_properties_every_kind(tmp_path: Path) -> None:
    """Every kind and number type, written under ``segment_properties/`` beside the skeletons and
    referenced from the top info (cloud-volume still opens the dataset), then read back as JSON:
    it passes the client's rules and carries the given values."""
    ids, props = every_kind()
    info = sp.info(ids, props)
    spec = (VA("radius", "float32"),)
    data = sk.encode(np.zeros((1, 3)), [], {"radius": [1.0]}, spec)
    root = write_dataset(tmp_path, sk.info(spec), {1: data}, properties=info)
    assert cloud_volume(root).info["segment_properties"] == "segment_properties"
    read = json.loads((root / "segment_properties" / "info").read_text())
    assert read == info
    assert read["inline"]["ids"] == ["18446744073709551615", "1", "70", "3"]
    parsed = client_parse(read)
    assert parsed["label"] == {2**64 - 1: "big", 1: "one", 70: "seventy", 3: ""}
    assert parsed["cell_type"] == {2**64 - 1: ["soma"], 1: ["soma", "Dendrite"], 70: [], 3: ["axon"]}
    assert parsed["region"][70] == "DG"
    assert np.float32(parsed["volume_um3"][1]) == np.float32(0.1) and parsed["volume_um3"][1] == 0.1
    assert np.float32(parsed["volume_um3"][70]) == np.float32(3.4e38)
    assert parsed["n_synapses"][1] == 4294967295 and parsed["layer"] == {2**64 - 1: -128, 1: 127, 70: 0, 3: 1}
    assert parsed["u8"][1] == 255 and type(parsed["u8"][1]) is int
    by_id = {p["id"]: p for p in read["inline"]["properties"]}
    assert by_id["region"]["description"] == "brain region"
    assert by_id["cell_type"]["tag_descriptions"] == ["cell body", "an axon", ""]
    assert "description" not in by_id["label"] and "tag_descriptions" not in by_id["region"]


def test_segment_properties_upstream_schema() -> None:
    """The same info validates against the upstream JSON schema (skipped without a neuroglancer checkout)."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = upstream_schema()
    ids, props = every_kind()
    jsonschema.validate(sp.info(ids, props), schema)
    jsonschema.validate(sp.info([], []), schema)
    with pytest.raises(jsonschema.ValidationError):  # the schema does catch a wrong type
        jsonschema.validate(
            {"@type": "neuroglancer_segment_properties", "inline": {"ids": [1], "properties": []}}, schema
        )


def test_segment_properties_empty_and_tags_without_descriptions() -> None:
    """No ids is valid; tag_descriptions is omitted when not given."""
    assert sp.info([], []) == {"@type": "neuroglancer_segment_properties", "inline": {"ids": [], "properties": []}}
    info = sp.info([5], [sp.SegmentProperty("t", "tags", [[1]], tags=("a", "b"))])
    assert info["inline"]["properties"] == [{"id": "t", "type": "tags", "tags": ["a", "b"], "values": [[1]]}]
    assert client_parse(info)["t"] == {5: ["b"]}


@pytest.mark.parametrize(
    "ids,props,message",
    [
        ([1, 2], [sp.SegmentProperty("l", "label", ["a"])], "1 values for 2 ids"),
        ([1], [sp.SegmentProperty("a", "label", ["x"]), sp.SegmentProperty("b", "label", ["y"])], "one 'label'"),
        (
            [1],
            [sp.SegmentProperty("a", "description", ["x"]), sp.SegmentProperty("b", "description", ["y"])],
            "one 'description'",
        ),
        (
            [1],
            [sp.SegmentProperty("a", "tags", [[]], tags=("x",)), sp.SegmentProperty("b", "tags", [[]], tags=("y",))],
            "one 'tags'",
        ),
        (
            [1],
            [sp.SegmentProperty("a", "string", ["x"]), sp.SegmentProperty("a", "number", [1], data_type="uint8")],
            "duplicate",
        ),
        ([1, 1], [], "unique"),
        ([2**64], [], "not a uint64"),
        ([-1], [], "not a uint64"),
        ([1.0], [], "integers"),
        ([1], [sp.SegmentProperty("x", "colour", ["r"])], "type 'colour'"),
        ([1], [sp.SegmentProperty("x", "string", [3])], "must be strings"),
        ([1, 2], [sp.SegmentProperty("n", "number", [1.0, float("nan")], data_type="float32")], "NaN"),
        ([1], [sp.SegmentProperty("n", "number", [float("inf")], data_type="float32")], "NaN/infinite"),
        ([1], [sp.SegmentProperty("n", "number", [1e39], data_type="float32")], "float32 range"),
        ([1], [sp.SegmentProperty("n", "number", [300], data_type="uint8")], "do not fit uint8"),
        ([1], [sp.SegmentProperty("n", "number", [-1], data_type="uint32")], "do not fit uint32"),
        ([1], [sp.SegmentProperty("n", "number", [2**31], data_type="int32")], "do not fit int32"),
        ([1], [sp.SegmentProperty("n", "number", [0.5], data_type="int16")], "non-integer"),
        ([1], [sp.SegmentProperty("n", "number", ["1"], data_type="int16")], "not numbers"),
        ([1], [sp.SegmentProperty("n", "number", [1])], "data_type is required"),
        ([1], [sp.SegmentProperty("n", "number", [1], data_type="uint64")], "not in"),
        ([1], [sp.SegmentProperty("s", "string", ["x"], data_type="uint8")], "data_type is required"),
        ([1], [sp.SegmentProperty("s", "string", ["x"], tags=("a",))], "tags properties only"),
        ([1], [sp.SegmentProperty("t", "tags", [[2]], tags=("a", "b"))], "out of range"),
        ([1], [sp.SegmentProperty("t", "tags", [[0.5]], tags=("a",))], "integers"),
        ([1], [sp.SegmentProperty("t", "tags", [[0]], tags=("a b",))], "spaces"),
        ([1], [sp.SegmentProperty("t", "tags", [[0]], tags=("#a",))], "'#'"),
        ([1], [sp.SegmentProperty("t", "tags", [[0]], tags=("a", "A"))], "distinct"),
        ([1], [sp.SegmentProperty("t", "tags", [[0]], tags=("a",), tag_descriptions=("x", "y"))], "2 tag_descriptions"),
        ([1], [sp.SegmentProperty("t", "tags", [[0]], tags=("a",), description="d")], "no description"),
        ([1], [sp.SegmentProperty("", "string", ["x"])], "non-empty"),
    ],
)
def test_segment_properties_invalid(ids: list, props: list[sp.SegmentProperty], message: str) -> None:
    """Everything the client would reject, misread (wrap, truncation, NaN) or ignore raises ValueError."""
    with pytest.raises(ValueError, match=message):
        sp.info(ids, props)
