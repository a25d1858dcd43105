"""zvfs's own decoders (``zvfs.encoders``: annotation records, skeletons, multi-LOD manifests, legacy
mesh fragments), which ``zvfs link``, the benchmarks and some tests use as conveniences, agree with
the independent readers on every file of an export: Neuroglancer's ``AnnotationReader``, cloud-volume's
skeleton, manifest and mesh decoders, and DracoPy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from neuroglancer import read_precomputed_annotations
from support import build_every_type, zvfs

from zvfs.encoders import meshes, skeletons
from zvfs.encoders.annotations import Annotations, AnnotationSchema, decode_multiple, decode_single

ANNOTATED = ("point_cloud", "line", "streamline", "graph")


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """geometry type -> an export of a small store of it."""
    root = tmp_path_factory.mktemp("decoders")
    out = {}
    for kind, store in build_every_type(root / "stores", points=300).items():
        zvfs("export", "--no-progress", str(store), str(root / kind))
        out[kind] = root / kind
    return out


def records(ours: Annotations, schema: AnnotationSchema) -> list[tuple]:
    """(id, geometry, properties in info order) of each decoded annotation, as plain lists."""
    starts = np.concatenate([[0], np.cumsum(ours.counts)]) if ours.counts is not None else None
    out = []
    for i, aid in enumerate(ours.ids.tolist()):
        geometry = ours.geometry[starts[i] : starts[i + 1]] if starts is not None else ours.geometry[i]
        props = [np.asarray(ours.properties[p.id][i]).tolist() for p in schema.properties]
        out.append((str(aid), np.asarray(geometry, np.float32).ravel().tolist(), props))
    return out


def their_records(annotations: list) -> list[tuple]:
    """The same of annotations as Neuroglancer's reader gives them."""
    out = []
    for a in annotations:
        geometry = {"point": lambda a: [a.point], "line": lambda a: [a.point_a, a.point_b]}.get(
            a.type, lambda a: a.points
        )(a)
        props = [np.asarray(p).tolist() for p in a.props]
        out.append((a.id, np.asarray(geometry, np.float32).ravel().tolist(), props))
    return out


@pytest.mark.parametrize("kind", ANNOTATED)
def test_annotation_decoder_agrees_with_neuroglancer(kind: str, exports) -> None:
    layer = exports[kind] / "annotations"
    info = json.loads((layer / "info").read_text())
    schema = AnnotationSchema.from_info(info)
    reader = read_precomputed_annotations.AnnotationReader(f"file://{layer}/")
    cells = 0
    for index, level in zip(reader.spatial, info["spatial"], strict=True):
        for f in sorted((layer / level["key"]).iterdir()):
            cell = tuple(int(c) for c in f.name.split("_"))
            assert records(decode_multiple(schema, f.read_bytes()), schema) == their_records(index.get(cell).result())
            cells += 1
    assert cells
    ids = sorted(int(f.name) for f in (layer / "by_id").iterdir())[:40]
    for aid in ids:
        ours = decode_single(schema, (layer / "by_id" / str(aid)).read_bytes(), aid)
        theirs = reader.by_id[aid]
        assert records(ours, schema) == their_records([theirs])
        assert [r.tolist() for r in ours.related[0]] == [np.asarray(s).tolist() for s in theirs.segments]
    for rel in info["relationships"]:
        folder = layer / f"rel_{rel['id']}"
        for f in sorted(folder.iterdir())[:10]:
            ours_rel = records(decode_multiple(schema, f.read_bytes()), schema)
            assert ours_rel == their_records(reader.relationships[rel["id"]][int(f.name)])


@pytest.mark.parametrize("kind", ["streamline", "graph", "skeleton"])
def test_skeleton_decoder_agrees_with_cloud_volume(kind: str, exports) -> None:
    from cloudvolume import Skeleton

    layer = exports[kind] / "skeletons"
    info = json.loads((layer / "info").read_text())
    spec = skeletons.spec_from_info(info)
    assert [(a.id, a.data_type, a.num_components) for a in spec] == [
        (a["id"], a["data_type"], a["num_components"]) for a in info["vertex_attributes"]
    ]
    files = [f for f in layer.iterdir() if f.name.isdigit()]
    assert files
    for f in files:
        vertices, edges, values = skeletons.decode(f.read_bytes(), spec)
        theirs = Skeleton.from_precomputed(
            f.read_bytes(), segid=int(f.name), vertex_attributes=info["vertex_attributes"]
        )
        np.testing.assert_array_equal(vertices, theirs.vertices)
        np.testing.assert_array_equal(edges, theirs.edges)
        for a in spec:
            np.testing.assert_array_equal(
                values[a.id].reshape(len(vertices), -1), getattr(theirs, a.id).reshape(len(vertices), -1)
            )


def test_manifest_decoder_agrees_with_cloud_volume_and_dracopy(exports) -> None:
    import DracoPy
    from cloudvolume.datasource.precomputed.mesh.multilod import MultiLevelPrecomputedMeshManifest

    layer = exports["mesh"] / "meshes"
    manifests = sorted(layer.glob("*.index"))
    assert manifests
    for f in manifests:
        ours = meshes.Manifest.decode(f.read_bytes())
        theirs = MultiLevelPrecomputedMeshManifest.from_binary(f.read_bytes(), segment_id=int(f.stem))
        assert ours.num_lods == theirs.num_lods
        np.testing.assert_array_equal(ours.chunk_shape, theirs.chunk_shape)
        np.testing.assert_array_equal(ours.grid_origin, theirs.grid_origin)
        np.testing.assert_array_equal(ours.lod_scales, theirs.lod_scales)
        np.testing.assert_array_equal(ours.vertex_offsets, theirs.vertex_offsets)
        for lod in range(ours.num_lods):
            np.testing.assert_array_equal(ours.positions[lod], theirs.fragment_positions[lod])
            np.testing.assert_array_equal(ours.sizes[lod], theirs.fragment_offsets[lod])
        data = (layer / f.stem).read_bytes()
        spans = list(ours.fragments())
        assert sum(size for *_, size in spans) == len(data)
        for _, _, start, size in spans:
            if size:
                assert len(DracoPy.decode(data[start : start + size]).faces)


def test_legacy_fragment_decoder_agrees_with_cloud_volume(exports) -> None:
    from cloudvolume import Mesh

    layer = exports["mesh"] / "legacy_meshes"
    fragments = [f for f in layer.iterdir() if f.name.count(":") == 2]  # SEGMENT:0 is the JSON manifest
    assert fragments
    for f in fragments:
        vertices, faces = meshes.decode_legacy_fragment(f.read_bytes())
        theirs = Mesh.from_precomputed(f.read_bytes())
        np.testing.assert_array_equal(vertices, theirs.vertices)
        np.testing.assert_array_equal(faces, theirs.faces)
