"""Meshes end to end: a mesh store built with zarr-vectors, its ``meshes/`` (multi-resolution Draco)
and ``legacy_meshes/`` trees fetched through a real mount, a real server and an export, and decoded
with independent readers (cloud-volume for both formats, DracoPy for every fragment)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import DracoPy
import numpy as np
import pytest
import zarr_vectors as zv
from cloudvolume import CloudVolume
from support import FRONT_ENDS, build_meshes, fetch, segmentation_info, tree_urls

from zvfs.encoders.meshes import Manifest

SEGMENTS = (1, 2, 3)  # object id + 1


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    return build_meshes(tmp_path_factory.mktemp("mesh") / "mesh.zarrvectors")


@pytest.fixture(scope="module", params=FRONT_ENDS)
def fetched(request: pytest.FixtureRequest, store, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Every mesh file of the store, fetched through one front end into a cloud-volume layout
    (``<layer>/info`` a stub volume whose ``mesh`` directory holds the fetched files)."""
    out = tmp_path_factory.mktemp(f"fetched_{request.param}")
    with ExitStack() as stack:
        base = tree_urls(request.param, {"mesh": store[0]}, tmp_path_factory.mktemp(request.param), stack)["mesh"]
        for layer, names in (
            ("meshes", [n for s in SEGMENTS for n in (f"{s}.index", str(s))]),
            ("legacy_meshes", [n for s in SEGMENTS for n in (f"{s}:0", f"{s}:0:0")]),
        ):
            (out / layer / "mesh" / "segment_properties").mkdir(parents=True)
            for name in ["info", "segment_properties/info", *names]:
                (out / layer / "mesh" / name).write_bytes(fetch(f"{base}{layer}/{name}"))
            (out / layer / "info").write_text(json.dumps(segmentation_info("mesh")))
        yield out


def area(v: np.ndarray, f: np.ndarray) -> float:
    a, b, c = (np.asarray(v, np.float64)[f[:, k]] for k in range(3))
    return float(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())


def triangles(v: np.ndarray, f: np.ndarray) -> set:
    return {frozenset(map(tuple, np.round(np.asarray(v, np.float64)[t], 4))) for t in f}


def test_written_meshes_are_what_zarr_vectors_reads(store) -> None:
    path, meshes = store
    whole = zv.open(str(path)).level(0).read()
    assert len(whole.faces) == sum(len(f) for _, f in meshes)
    assert triangles(whole.positions, whole.faces) == set().union(*(triangles(v, f) for v, f in meshes))


def test_legacy_meshes_exact(fetched, store) -> None:
    cv = CloudVolume(f"precomputed://file://{fetched}/legacy_meshes")
    for seg, (v, f) in zip(SEGMENTS, store[1], strict=True):
        mesh = cv.mesh.get(seg, remove_duplicate_vertices=False)
        assert triangles(mesh.vertices, mesh.faces) == triangles(v, f), "every face, exact float32, whole object"
        assert len(mesh.vertices) == len(v), "each vertex once, also where the object crosses chunk seams"


def test_multires_draco_meshes_within_quantization(fetched, store) -> None:
    cv = CloudVolume(f"precomputed://file://{fetched}/meshes")
    info = json.loads((fetched / "meshes" / "mesh" / "info").read_text())
    assert info["@type"] == "neuroglancer_multilod_draco" and info["segment_properties"] == "segment_properties"
    for seg, (v, f) in zip(SEGMENTS, store[1], strict=True):
        chunk = Manifest.decode((fetched / "meshes" / "mesh" / f"{seg}.index").read_bytes()).chunk_shape
        tol = np.linalg.norm(chunk) / (2 ** info["vertex_quantization_bits"] - 1) + 1e-3  # 16-bit grid + float32
        mesh = cv.mesh.get(seg, lod=0)[seg]
        got = np.asarray(mesh.vertices, np.float64)
        nearest = np.min(np.linalg.norm(got[None] - np.asarray(v, np.float64)[:, None], axis=2), axis=1)
        assert nearest.max() <= tol, "every input vertex survives within the quantization step"
        assert area(mesh.vertices, mesh.faces) == pytest.approx(area(v, f), rel=1e-3)


def test_every_draco_fragment_decodes(fetched) -> None:
    for seg in SEGMENTS:
        fragments = Manifest.decode((fetched / "meshes" / "mesh" / f"{seg}.index").read_bytes()).fragments()
        data = (fetched / "meshes" / "mesh" / str(seg)).read_bytes()
        assert sum(size for *_, size in fragments) == len(data)
        for _, _, start, size in fragments:
            if size:
                decoded = DracoPy.decode(data[start : start + size])
                assert len(decoded.faces) and len(decoded.points)
            start += size


def test_segment_properties(fetched) -> None:
    props = json.loads((fetched / "meshes" / "mesh" / "segment_properties" / "info").read_text())["inline"]
    assert props["ids"] == [str(s) for s in SEGMENTS]
    by_id = {p["id"]: p for p in props["properties"]}
    assert by_id["label"]["values"] == ["big sphere", "small sphere", "triangle"]
    assert by_id["area"]["values"] == [1.5, 2.5, 3.5]
