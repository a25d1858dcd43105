"""Vector data lands where the anatomy is: stores made by the ecosystem's converter (TrackVis files in RAS,
LPS, LAS, anisotropic and oblique frames, and MRtrix TCK, written with nibabel and ingested by ``zvtools
convert``) and stores whose ``crs`` or coordinate offset is written directly, read back through a real
mount, a real server and an export with Neuroglancer's AnnotationReader and cloud-volume. Every vertex's
physical position (as the client places it: the annotation dimensions and the source transform ``zvfs
link``/``view`` put in the state; the skeleton ``transform``) must equal the ground truth within 1 µm:
nibabel's RAS+ mm reading of the file, or the definition of the metadata written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from cloudvolume import Skeleton
from ecosystem import TRK_CASES, convert, rasmm_truth, streamlines_in_volume, write_tck, write_trk
from neuroglancer import read_precomputed_annotations
from support import FRONT_ENDS, PointSpec, build_points, fetch, read_truth, tree_urls, zvfs

from zvfs import link
from zvfs.source import open_tree

MICROMETRE_IN_MM = 1e-3
CASES = (*TRK_CASES, "tck")


def client_physical(points: np.ndarray, info: dict, state: dict) -> np.ndarray:
    """Where the client puts annotation coordinates, in metres: counted in the info's dimensions, through
    the layer's source transform (whose linear part the client scales by input scale / output scale)."""
    in_scales = np.array([scale for scale, _ in info["dimensions"].values()])
    source = state["source"]
    if isinstance(source, str):
        return np.asarray(points, np.float64) * in_scales
    transform = source["transform"]
    out_scales = np.array([scale for scale, _ in transform["outputDimensions"].values()])
    m = np.asarray(transform["matrix"], np.float64)
    counts = (np.asarray(points, np.float64) * in_scales) @ m[:, :-1].T / out_scales + m[:, -1]
    return counts * out_scales


def skeleton_physical(vertices: np.ndarray, info: dict) -> np.ndarray:
    """Skeleton vertices through the info's ``transform`` (to nanometres), in metres."""
    t = np.asarray(info.get("transform", [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]), np.float64).reshape(3, 4)
    return (np.asarray(vertices, np.float64) @ t[:, :3].T + t[:, 3]) * 1e-9


@pytest.fixture(scope="module")
def tracts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[np.ndarray]]]:
    """case -> (zvtools store, nibabel's RAS+ mm streamlines)."""
    root = tmp_path_factory.mktemp("tracts")
    out = {}
    for seed, (case, frame) in enumerate(TRK_CASES.items()):
        lines = streamlines_in_volume(frame.vox_to_ras, frame.dimensions, n=12, seed=seed)
        src = write_trk(
            root / f"{case}.trk",
            lines,
            voxel_sizes=frame.voxel_sizes,
            dimensions=frame.dimensions,
            vox_to_ras=frame.vox_to_ras,
            voxel_order=frame.voxel_order,
        )
        out[case] = (convert(src, root / f"{case}.zarrvectors"), rasmm_truth(src))
    frame = TRK_CASES["aniso_oblique"]
    src = write_tck(root / "tck.tck", streamlines_in_volume(frame.vox_to_ras, frame.dimensions, n=12, seed=99))
    out["tck"] = (convert(src, root / "tck.zarrvectors", "--chunk-shape", "20,20,20"), rasmm_truth(src))
    return out


@pytest.fixture(scope="module", params=FRONT_ENDS)
def urls(request: pytest.FixtureRequest, tracts: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with ExitStack() as stack:
        stores = {case: store for case, (store, _) in tracts.items()}
        yield tree_urls(request.param, stores, tmp_path_factory.mktemp(request.param), stack)


@pytest.mark.parametrize("case", CASES)
def test_streamline_annotations_where_nibabel_reads_them(case: str, tracts: dict, urls: dict) -> None:
    store, truth = tracts[case]
    reader = read_precomputed_annotations.AnnotationReader(urls[case] + "annotations/")
    info = json.loads(fetch(urls[case] + "annotations/info"))
    state = link.tree_layers(link.Source("t", open_tree(str(store)), urls[case]))[0].state  # as zvfs link shows it
    assert state["type"] == "annotation"
    for oid, line in enumerate(truth):
        got = client_physical(np.asarray(reader.by_id[oid + 1].points), info, state) * 1e3
        np.testing.assert_allclose(got, line, rtol=0, atol=MICROMETRE_IN_MM, err_msg=f"{case} streamline {oid}")


@pytest.mark.parametrize("case", CASES)
def test_streamline_skeletons_where_nibabel_reads_them(case: str, tracts: dict, urls: dict) -> None:
    _, truth = tracts[case]
    base = urls[case] + "skeletons/"
    info = json.loads(fetch(base + "info"))
    for oid, line in enumerate(truth):
        skeleton = Skeleton.from_precomputed(
            fetch(f"{base}{oid + 1}"), segid=oid + 1, vertex_attributes=info["vertex_attributes"]
        )
        got = skeleton_physical(skeleton.vertices, info) * 1e3
        np.testing.assert_allclose(got, line, rtol=0, atol=MICROMETRE_IN_MM, err_msg=f"{case} streamline {oid}")
        # the direction colours: unit tangents in RAS+ (central differences inside, one-sided at the ends)
        tangent = np.concatenate([line[1:2] - line[:1], (line[2:] - line[:-2]) / 2, line[-1:] - line[-2:-1]])
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        np.testing.assert_allclose(np.asarray(skeleton.direction, np.float64), tangent, rtol=0, atol=1e-4)


# -- coordinate metadata written directly ----------------------------------------------------------


def with_root_attributes(store: Path, **zarr_vectors: object) -> Path:
    """The store's root ``zarr_vectors`` attributes extended, as a converter writes them."""
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["zarr_vectors"].update(zarr_vectors)
    (store / "zarr.json").write_text(json.dumps(meta))
    return store


OBLIQUE = TRK_CASES["aniso_oblique"].vox_to_ras
PERMUTED = np.array([[0, 0, 2.0, 10.0], [1.5, 0, 0, -5.0], [0, -1.0, 0, 30.0], [0, 0, 0, 1]])  # axes swapped, flipped
LPS_GRID = np.array([[0.8, 0, 0, 12.0], [0, 0.8, 0, -40.0], [0, 0, 2.5, 7.0], [0, 0, 0, 1]])

# name -> (root attributes, the affine that takes stored positions to RAS+ mm by the attributes' definition)
DIRECT: dict[str, tuple[dict, np.ndarray]] = {
    "crs_voxel_to_ras": (
        {"crs": {"input_space": "voxel", "output_space": "RASmm", "units": "mm", "affine": OBLIQUE.ravel().tolist()}},
        OBLIQUE,
    ),
    "crs_voxel_to_lps": (
        {"crs": {"input_space": "voxel", "output_space": "LPSmm", "units": "mm", "affine": LPS_GRID.ravel().tolist()}},
        np.diag([-1.0, -1, 1, 1]) @ LPS_GRID,
    ),
    "crs_voxel_permuted": (
        {"crs": {"input_space": "voxel", "output_space": "RASmm", "units": "mm", "affine": PERMUTED.ravel().tolist()}},
        PERMUTED,
    ),
    "coordinate_offset": ({"coordinate_offset": [100.0, -20.0, 3.5]}, np.array(
        [[1.0, 0, 0, 100.0], [0, 1, 0, -20.0], [0, 0, 1, 3.5], [0, 0, 0, 1]]
    )),
}  # fmt: skip


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray]]:
    """name -> (point store with that metadata, expected RAS+ mm positions)."""
    root = tmp_path_factory.mktemp("direct")
    out = {}
    for name, (attributes, affine) in DIRECT.items():
        spec = PointSpec(n=300, unit="mm", hi=(40.0, 50.0, 20.0), cell=(10.0, 10.0, 10.0))
        store = with_root_attributes(build_points(root / f"{name}.zarrvectors", spec), **attributes)
        stored = read_truth(store).positions.astype(np.float64)
        out[name] = (store, stored @ affine[:3, :3].T + affine[:3, 3])
    return out


@pytest.mark.parametrize("front_end", FRONT_ENDS)
@pytest.mark.parametrize("name", list(DIRECT))
def test_store_metadata_written_directly(name: str, front_end: str, direct: dict, tmp_path: Path) -> None:
    store, expected = direct[name]
    with ExitStack() as stack:
        url = tree_urls(front_end, {name: store}, tmp_path, stack)[name]
        info = json.loads(fetch(url + "annotations/info"))
        reader = read_precomputed_annotations.AnnotationReader(url + "annotations/")
        state = link.tree_layers(link.Source("t", open_tree(str(store)), url))[0].state
        points = np.array([a.point for a in reader.get_within_spatial_bounds()])
    got = client_physical(points, info, state) * 1e3
    np.testing.assert_allclose(sorted_rows(got), sorted_rows(expected), rtol=0, atol=MICROMETRE_IN_MM)


def sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


def test_unknown_metadata_is_a_warning_not_a_guess(tmp_path: Path) -> None:
    odd = with_root_attributes(
        build_points(tmp_path / "odd.zarrvectors", PointSpec(n=50, unit="mm")),
        crs={"input_space": "voxel", "output_space": "MNI152NLin2009cAsym", "affine": np.eye(4).ravel().tolist()},
    )
    result = zvfs("info", "--json", str(odd))
    described = json.loads(result.stdout)
    assert "MNI152NLin2009cAsym" in result.stderr and str(odd) in result.stderr
    assert described["coordinates"]["ignored"], described["coordinates"]
    np.testing.assert_allclose(np.asarray(described["coordinates"]["affine"])[:3], np.eye(4)[:3])


def test_transform_composes_on_top_unless_the_store_space_is_ignored(tracts: dict) -> None:
    store = tracts["lps"][0]
    shift = np.array([[1.0, 0, 0, 10.0], [0, 1, 0, 0], [0, 0, 1, 0]])
    on_top = json.loads(zvfs("info", "--json", "--transform", json.dumps(shift.tolist()), str(store)).stdout)
    alone = json.loads(
        zvfs("info", "--json", "--ignore-store-space", "--transform", json.dumps(shift.tolist()), str(store)).stdout
    )
    own = json.loads(zvfs("info", "--json", str(store)).stdout)
    a_own, a_top = np.asarray(own["coordinates"]["affine"]), np.asarray(on_top["coordinates"]["affine"])
    np.testing.assert_allclose(a_top[:3, :3], a_own[:3, :3])
    np.testing.assert_allclose(a_top[:3, 3], a_own[:3, 3] + [10, 0, 0])
    np.testing.assert_allclose(np.asarray(alone["coordinates"]["affine"])[:3], shift)


def test_info_says_what_a_store_holds_and_where_it_lands(tracts: dict) -> None:
    store, truth = tracts["aniso_oblique"]
    described = json.loads(zvfs("info", "--json", str(store)).stdout)
    assert described["geometry"] == "streamline" and described["layers"] == ["annotations", "skeletons"]
    (level,) = described["levels"]
    assert level["objects"] == len(truth) and level["vertices"] == sum(map(len, truth))
    assert described["coordinates"]["decided_by"][0].startswith("headers/trk")
    everything = np.concatenate(truth)
    bounds = described["bounds"]
    assert bounds["units"] == ["mm"] * 3
    assert np.all(everything >= np.asarray(bounds["lower"]) - 1e-3) and np.all(
        everything <= np.asarray(bounds["upper"]) + 1e-3
    )
    text = zvfs("info", str(store)).stdout
    for line in (
        "geometry: streamline",
        "decided by: headers/trk",
        "physical units: mm, mm, mm, RAS+",
        "layers: annotations, skeletons",
    ):
        assert line in text, text
