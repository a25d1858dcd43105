"""Level of detail from the ZVF pyramid: point clouds with 1, 2 and 3+ level pyramids built by
zarr-vectors, read back through a real server with Neuroglancer's AnnotationReader."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zarr_vectors as zv
from neuroglancer import read_precomputed_annotations
from support import PointSpec, add_pyramid, build_points, read_truth, tree_urls
from support import point_key as key

from zvfs.encoders.meshes import Manifest
from zvfs.tree import NotFound

PYRAMIDS = {1: False, 2: True, 3: True, 4: False}  # levels -> with object ids


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("pyramids")
    spec = PointSpec(n=6000, hi=(200.0, 200.0, 200.0), cell=(50.0, 50.0, 50.0), typed=True)
    return {
        n: add_pyramid(build_points(root / f"p{n}.zarrvectors", replace(spec, objects=40 if objects else 0, seed=n)), n)
        for n, objects in PYRAMIDS.items()
    }


@pytest.fixture(scope="module")
def layer(stores: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with ExitStack() as stack:
        urls = tree_urls("http", {str(n): p for n, p in stores.items()}, tmp_path_factory.mktemp("lod"), stack)
        yield lambda n: read_precomputed_annotations.AnnotationReader(urls[str(n)] + "annotations/")


def per_level(r) -> list[list[list]]:
    """Per spatial level (coarsest first): the annotations of each of its cells."""
    out = []
    for index, meta in zip(r.spatial, r.metadata["spatial"], strict=True):
        cells = [index.get(c).result() for c in np.ndindex(*meta["grid_shape"])]
        out.append([c for c in cells if c is not None])
    return out


@pytest.mark.parametrize("n", PYRAMIDS)
def test_every_point_exactly_once_across_levels(n: int, layer, stores) -> None:
    r = layer(n)
    levels = zv.open(str(stores[n])).levels
    assert len(r.metadata["spatial"]) == len(levels), "one spatial level per ZVF level"
    truth = read_truth(stores[n])
    ids = [int(a.id) for level in per_level(r) for cell in level for a in cell]
    assert len(ids) == len(set(ids)) == len(truth.positions), "each point at exactly one level, once"
    drawn = {int(a.id): a for level in per_level(r) for cell in level for a in cell}
    assert {key(a.point) for a in drawn.values()} == {key(p) for p in truth.positions}
    lo, hi = np.asarray(r.metadata["lower_bound"]), np.asarray(r.metadata["upper_bound"])
    for meta, cells in zip(r.metadata["spatial"], per_level(r), strict=True):
        assert np.allclose(np.asarray(meta["grid_shape"]) * meta["chunk_size"], hi - lo)
        assert meta["limit"] == max(len(c) for c in cells), "limit is the true maximum per cell"


@pytest.mark.parametrize("n", [2, 3, 4])
def test_coarse_levels_follow_the_bins(n: int, layer, stores) -> None:
    """Drawn together down to ZVF level k, the coarse levels show one real point per occupied
    level-k bin (of the objects that level keeps), as the level's metavertices do."""
    r = layer(n)
    ds = zv.open(str(stores[n]))
    truth = read_truth(stores[n])
    levels = per_level(r)
    cumulative: list = []
    for spatial, cells in enumerate(levels[:-1]):
        k = len(levels) - 1 - spatial
        cumulative += [a for c in cells for a in c]
        bins = np.asarray(ds.level(k).resolution)
        object_of, kept = truth.object_of, None
        if object_of is not None:
            kept = {int(o) for o in ds.level(k).objects.ids() if ds.level(k).objects[int(o)].vertex_count}
        candidates = [p for p in truth.positions if kept is None or object_of is None or object_of[key(p)] in kept]
        occupied = {tuple(np.floor(np.asarray(p, np.float64) / bins).astype(int)) for p in candidates}
        got = [tuple(np.floor(np.asarray(a.point, np.float64) / bins).astype(int)) for a in cumulative]
        assert set(got) >= occupied, "every occupied bin is shown"
        if kept is None:
            assert len(got) == len(set(got)) == len(occupied), "one point per bin"
        assert len(cumulative) < len(truth.positions)
        assert abs(len(cumulative) - ds.level(k).vertex_count) <= 0.25 * ds.level(k).vertex_count


@pytest.fixture(scope="module")
def streamlines(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from support import build_polylines

    path = add_pyramid(
        build_polylines(tmp_path_factory.mktemp("sl") / "s.zarrvectors", lengths=tuple(range(2, 42)))[0], 3
    )
    with ExitStack() as stack:
        url = tree_urls("http", {"s": path}, tmp_path_factory.mktemp("sl_http"), stack)["s"]
        yield path, read_precomputed_annotations.AnnotationReader(url + "annotations/")


def test_streamlines_at_the_coarsest_level_that_keeps_them(streamlines) -> None:
    """Each whole streamline is drawn at exactly one level: the coarsest whose ZVF level keeps its
    object (object sparsity), listed in every chunk of that level it passes through."""
    path, r = streamlines
    ds = zv.open(str(path))
    levels = per_level(r)
    assert len(levels) == len(ds.levels) == 3
    drawn_at: dict[int, int] = {}
    for spatial, cells in enumerate(levels):
        for a in (a for c in cells for a in c):
            assert drawn_at.setdefault(int(a.id), spatial) == spatial, "never at two levels"
    assert sorted(drawn_at) == [int(o) + 1 for o in ds.level(0).objects.ids()]
    for spatial in range(3):
        k = 2 - spatial
        kept = {int(o) for o in ds.level(k).objects.ids() if ds.level(k).objects[int(o)].vertex_count}
        coarser = (
            {int(o) for o in ds.level(k + 1).objects.ids() if ds.level(k + 1).objects[int(o)].vertex_count}
            if k < 2
            else set()
        )
        assert {aid - 1 for aid, s in drawn_at.items() if s == spatial} == kept - coarser
    for meta, cells in zip(r.metadata["spatial"], levels, strict=True):
        assert meta["limit"] == max((len(c) for c in cells), default=1)


@pytest.mark.parametrize("n", [2, 3])
def test_pinned_levels(n: int, layer, stores, tmp_path: Path) -> None:
    """``levels/N/annotations`` is one spatial level on level N's grid holding what Neuroglancer
    shows of level N: everything drawn at N or coarser, each once."""
    from support import served

    with served(stores[n], tmp_path / "log") as (_, base):
        full = per_level(layer(n))
        for k in range(n):
            r = read_precomputed_annotations.AnnotationReader(f"{base}levels/{k}/annotations/")
            (meta,) = r.metadata["spatial"]
            assert meta["chunk_size"] == list(zv.open(str(stores[n])).level(k).scale)
            (cells,) = per_level(r)
            pinned = sorted(int(a.id) for c in cells for a in c)
            coarse = sorted(int(a.id) for level in full[: n - k] for c in level for a in c)
            assert pinned == coarse
            assert meta["limit"] == max(len(c) for c in cells)


def test_skeletons_per_pyramid_level(streamlines, tmp_path: Path) -> None:
    """Skeletons have no level of detail in Neuroglancer: ``levels/N/skeletons`` shows level N's
    simplified streamlines (its metavertex sequences) as its own source, read with cloud-volume."""
    import json

    from cloudvolume import Skeleton
    from support import fetch, served

    path, _ = streamlines
    ds = zv.open(str(path))
    with served(path, tmp_path / "log") as (_, base):
        for k in range(len(ds.levels)):
            root = f"{base}levels/{k}/skeletons/"
            info = json.loads(fetch(root + "info"))
            ids = json.loads(fetch(root + "segment_properties/info"))["inline"]["ids"]
            level = ds.level(k)
            kept = [int(o) for o in level.objects.ids() if level.objects[int(o)].vertex_count]
            assert ids == [str(o + 1) for o in kept], "the objects level k keeps"
            for oid in kept[:10]:
                skel = Skeleton.from_precomputed(
                    fetch(f"{root}{oid + 1}"), segid=oid + 1, vertex_attributes=info["vertex_attributes"]
                )
                np.testing.assert_array_equal(skel.vertices, level.objects[oid].positions)
                assert len(skel.edges) == len(skel.vertices) - 1


def test_pinned_mesh_levels(tmp_path: Path) -> None:
    """``levels/N/meshes`` holds one LOD, level N's mesh of each object: decoded with DracoPy it
    covers the same surface as LOD N of ``meshes/``."""
    import DracoPy
    from support import build_meshes, fetch, served

    store, _ = build_meshes(tmp_path / "m.zarrvectors")
    add_pyramid(store, 3)

    def lod_area(manifest: bytes, data: bytes, lod: int) -> float:
        decoded, area = Manifest.decode(manifest), 0.0
        for k, _, start, size in decoded.fragments():
            if k == lod and size:
                m = DracoPy.decode(data[start : start + size])
                v = np.asarray(m.points, np.float64) * decoded.chunk_shape * 2**k / 65535
                a, b, c = (v[np.asarray(m.faces)[:, i]] for i in range(3))
                area += 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum()
        return area

    with served(store, tmp_path / "log") as (_, base):
        for k in range(3):
            full = lod_area(fetch(f"{base}meshes/1.index"), fetch(f"{base}meshes/1"), k)
            pinned_manifest = fetch(f"{base}levels/{k}/meshes/1.index")
            assert Manifest.decode(pinned_manifest).num_lods == 1
            pinned = lod_area(pinned_manifest, fetch(f"{base}levels/{k}/meshes/1"), 0)
            assert pinned == pytest.approx(full, rel=0.01)


def test_pinned_levels_list_only_what_they_show(stores, tmp_path: Path) -> None:
    """A pinned level is a view: its ``by_id`` holds only the annotations it draws, and it has no
    relationships (the layer itself has them), so exports do not repeat every file per level."""
    from zvfs.source import open_virtual_tree

    tree = open_virtual_tree(str(stores[3]))
    drawn = [sorted(int(n) for n in tree.listdir(f"levels/{k}/annotations/by_id")) for k in range(3)]
    assert len(drawn[0]) == len(list(tree.listdir("annotations/by_id"))) > len(drawn[1]) > len(drawn[2])
    assert set(drawn[2]) <= set(drawn[1]) <= set(drawn[0])
    assert sorted(tree.listdir("levels/1/annotations")) == ["by_id", "info", "spatial0"]
    hidden = (set(drawn[0]) - set(drawn[1])).pop()
    with pytest.raises(NotFound):
        tree.stat(f"levels/1/annotations/by_id/{hidden}")


@pytest.mark.parametrize("kind", ["graph", "skeleton"])
def test_pinned_skeleton_levels_stay_connected(kind: str, tmp_path: Path) -> None:
    """zarr-vectors keeps no edges on the coarse levels of graph and skeleton stores; zvfs contracts
    level 0's edges onto them. Through a real mount, read with cloud-volume: every object each level
    keeps is one connected skeleton (as written) over all the level's vertices, spanning the written
    extent to within a bin, under the segment id it has at level 0."""
    import json

    from cloudvolume import Skeleton
    from support import build_graph, build_skeletons, mounted
    from zarr_vectors import building as zb

    if kind == "graph":
        store, positions, _, _ = build_graph(tmp_path / "g.zarrvectors")
        owner, ids = np.repeat(np.arange(3), 80), None
    else:
        store, written = build_skeletons(tmp_path / "s.zarrvectors")
        positions, owner, ids = written["positions"], written["objects"], written["segment_id"]
    add_pyramid(store, 3)
    ds = zv.open(str(store))

    def vertices(k: int) -> dict[int, int]:
        """object id -> its vertices at level k (the objects the level keeps), from zarr-vectors' manifests."""
        lg = ds.level(k).store
        fragments = lambda cell: zb.read_vertex_fragment_index(lg, cell).ranges()  # noqa: E731
        manifests = zb.read_object_manifests(lg, ids=sorted(set(owner.tolist())))
        counts = {o: sum(int(fragments(c)[f][1]) for c, f in refs) for o, refs in manifests.items()}
        return {o: n for o, n in sorted(counts.items()) if n}

    with mounted(store, tmp_path / "mnt") as mnt:
        for k in range(3):
            root = mnt / "levels" / str(k) / "skeletons"
            info = json.loads((root / "info").read_text())
            level, kept = ds.level(k), vertices(k)
            segment = {o: int(ids[o]) if ids is not None else o + 1 for o in kept}
            listed = json.loads((root / "segment_properties" / "info").read_text())["inline"]["ids"]
            assert listed == [str(segment[o]) for o in kept], "level 0's segment ids"
            assert len(kept) >= 2
            bin_size = np.asarray(level.resolution, np.float64)  # the bin, at level k
            for oid in kept:
                data = (root / str(segment[oid])).read_bytes()
                skel = Skeleton.from_precomputed(data, segid=segment[oid], vertex_attributes=info["vertex_attributes"])
                assert len(skel.vertices) == kept[oid]
                ends = set(np.asarray(skel.edges).ravel().tolist())
                assert len(skel.vertices) == 1 or ends == set(range(len(skel.vertices))), ("loose vertices", k, oid)
                assert len(skel.components()) == min(1, len(ends)), (k, oid)
                fine = positions[owner == oid]
                for lo_hi in (np.min, np.max):
                    assert np.all(np.abs(lo_hi(skel.vertices, 0) - lo_hi(fine, 0)) <= bin_size), (k, oid)
