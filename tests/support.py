"""Shared test helpers: sample stores built with zarr-vectors, real mounts and servers, oracles."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr_vectors as zv
from tornado.netutil import bind_sockets

from zvfs.frontends.http import Background, make_app
from zvfs.tree import Tree

TIMEOUT = 60
ZVFS = [sys.executable, "-m", "zvfs"]


# -- stores ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointSpec:
    """A point cloud to build: size, grid, units, and which attributes/ids it carries."""

    n: int
    objects: int = 0  # 0: no object ids
    typed: bool = False  # one attribute of every dtype
    unit: str = "nanometer"
    lo: tuple[float, ...] = (0.0, 0.0, 0.0)
    hi: tuple[float, ...] = (100.0, 100.0, 100.0)
    cell: tuple[float, ...] = (25.0, 25.0, 25.0)
    seed: int = 0
    extra: dict = field(default_factory=dict, hash=False)


def typed_attributes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """One per-vertex attribute of each dtype a ZVF store can hold."""
    return {
        "f32": rng.normal(0, 1e3, n).astype(np.float32),
        "f64": rng.random(n),
        "i8": rng.integers(-128, 128, n).astype(np.int8),
        "u8": rng.integers(0, 256, n).astype(np.uint8),
        "i16": rng.integers(-(2**15), 2**15, n).astype(np.int16),
        "u16": rng.integers(0, 2**16, n).astype(np.uint16),
        "i32": rng.integers(-(2**31), 2**31, n).astype(np.int32),
        "u32": rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32),
        "i64": rng.integers(-(10**6), 10**6, n).astype(np.int64),
        "rgb": rng.integers(0, 256, (n, 3)).astype(np.uint8),
        "rgba": rng.integers(0, 256, (n, 4)).astype(np.uint8),
        "cell type": np.array(["axon", "dendrite", "soma", "glia"])[rng.integers(0, 4, n)],
        "flag": rng.random(n) < 0.3,
        "vec": rng.normal(0, 1, (n, 2)).astype(np.float32),
    }


def build_points(path: Path, spec: PointSpec) -> Path:
    """Write ``spec`` as a ZVF point cloud with zarr-vectors."""
    rng = np.random.default_rng(spec.seed)
    axes = tuple(zv.Axis(name, spec.unit) for name in "xyz")
    schema = zv.Schema(
        bounds=(list(spec.lo), list(spec.hi)),
        kind="point_cloud",
        axes=axes,
        layout=zv.Layout(cell_size=spec.cell, subcells=4),
    )
    lo, hi = np.asarray(spec.lo), np.asarray(spec.hi)
    pos = (lo + rng.random((spec.n, 3)) * (hi - lo) * 0.9999).astype(np.float32)
    kwargs: dict = {}
    if spec.typed:
        kwargs["attributes"] = typed_attributes(rng, spec.n)
    if spec.objects:
        kwargs["object_ids"] = rng.integers(0, spec.objects, spec.n)
        if spec.typed:
            kwargs["object_attributes"] = {
                "score": rng.random(spec.objects).astype(np.float32),
                "tissue": np.array(["cortex", "white matter"])[rng.integers(0, 2, spec.objects)],
            }
    kwargs.update(spec.extra)
    zv.create(str(path), schema=schema).add_points(pos, **kwargs)
    return path


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root`` (to prove a store is unchanged)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def same_tree(a: Path, b: Path) -> bool:
    """Whether two directories hold the same files with the same bytes."""
    import filecmp

    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    return all(filecmp.cmp(a / f, b / f, shallow=False) for f in cmp.common_files) and all(
        same_tree(a / d, b / d) for d in cmp.common_dirs
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


# -- oracle: what zarr-vectors itself reads ------------------------------------------------------


def point_key(p) -> tuple:
    """A hashable position, rounded so float32 values compare equal whichever reader gave them."""
    return tuple(np.round(np.asarray(p, np.float64), 3).tolist())


@dataclass
class PointTruth:
    positions: np.ndarray  # (N, 3)
    attributes: dict[str, np.ndarray]
    object_of: dict[tuple, int] | None  # rounded position -> object id (None: no objects)


def read_truth(path: Path) -> PointTruth:
    """Points, attributes and object ids exactly as zarr-vectors' public API reads them."""
    level = zv.open(str(path)).level(0)
    everything = level.read()
    object_of = None
    if level.objects.count:
        object_of = {}
        for oid in level.objects.ids():
            for p in level.objects[int(oid)].positions:
                object_of[point_key(p)] = int(oid)
    return PointTruth(np.asarray(everything.positions), dict(everything.attributes), object_of)


def unopenable_copy(store: Path, dest: Path) -> Path:
    """A copy of ``store`` that still looks like a store but cannot be opened: its root metadata
    lacks the format version."""
    shutil.copytree(store, dest)
    meta = json.loads((dest / "zarr.json").read_text())
    del meta["attributes"]["zarr_vectors"]["zv_version"]
    (dest / "zarr.json").write_text(json.dumps(meta))
    return dest


# -- front ends ----------------------------------------------------------------------------------


def zvfs(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run([*ZVFS, *args], capture_output=True, text=True, timeout=TIMEOUT)
    if check:
        assert res.returncode == 0, f"zvfs {' '.join(args)} -> {res.returncode}\n{res.stderr}"
    return res


def is_mounted(path: Path) -> bool:
    """Whether the kernel's mount table lists ``path`` (which it writes with space, tab, newline and
    backslash as octal escapes, every other byte as it is)."""
    escaped = os.fsencode(path)
    for char in b"\\ \t\n":
        escaped = escaped.replace(bytes([char]), b"\\%03o" % char)
    with open("/proc/self/mounts", "rb") as f:
        return any(line.split()[1] == escaped for line in f)


@contextmanager
def mounted(store: Path, mountpoint: Path, *args: str) -> Iterator[Path]:
    """A real background ``zvfs mount``, unmounted afterwards whatever happens."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    zvfs("mount", str(store), str(mountpoint), *args)
    try:
        assert is_mounted(mountpoint)
        yield mountpoint
    finally:
        if is_mounted(mountpoint):
            zvfs("umount", str(mountpoint))


@contextmanager
def cli_server(args: list[str], log: Path, banner: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``zvfs ARGS`` as a subprocess whose first line on stdout starts with ``banner`` and ends with
    its URL; yields the process and that URL as printed, and kills the process if it still runs."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([*ZVFS, *args], stdout=subprocess.PIPE, stderr=out, text=True)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        assert line.startswith(banner) and "http://" in line, line + log.read_text()
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)
        proc.stdout.close()


@contextmanager
def running(tree: Tree) -> Iterator[str]:
    """A real server for ``tree`` on a free port, in a thread with its own event loop; yields its URL."""
    sockets = bind_sockets(0, "127.0.0.1")
    server = Background(make_app(tree), sockets)
    try:
        yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}/"
    finally:
        server.close()


@contextmanager
def served(source: Path, log: Path, *args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``zvfs serve SOURCE --port 0`` as a subprocess; yields it and its base URL (ending in /)."""
    with cli_server(["serve", str(source), "--port", "0", *args], log, "serving ") as (proc, url):
        yield proc, url if url.endswith("/") else url + "/"


# -- walking real directories (mounts, exports, copies) ----------------------------------------------


def relative_paths(root: Path) -> tuple[list[str], list[str]]:
    """(directories, files) under ``root`` as sorted '/'-separated paths relative to it."""
    dirs, files = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirs += [(rel / d).as_posix() for d in dirnames]
        files += [(rel / f).as_posix() for f in filenames]
    return sorted(dirs), sorted(files)


def read_files(root: Path) -> dict[str, bytes]:
    """relative path -> bytes of every file under ``root``."""
    return {rel: (root / rel).read_bytes() for rel in relative_paths(root)[1]}


# -- stores of connected geometry (tiny 4x4x4 grid of 25-unit chunks, so objects cross seams) -----


def small_schema(kind: str, unit: str = "nanometer") -> zv.Schema:
    axes = tuple(zv.Axis(name, unit) for name in "xyz")
    return zv.Schema(
        bounds=([0, 0, 0], [100, 100, 100]), kind=kind, axes=axes, layout=zv.Layout(cell_size=(25, 25, 25), subcells=4)
    )


def walk(rng: np.random.Generator, n: int, step: float = 6.0) -> np.ndarray:
    """A random walk of ``n`` vertices inside the store bounds (crosses chunks)."""
    return np.clip(rng.uniform(20, 80, 3) + np.cumsum(rng.normal(0, step, (n, 3)), 0), 0.5, 99.5).astype(np.float32)


def object_attributes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-object attributes of several dtypes, strings included."""
    return {
        "score": rng.random(n).astype(np.float32),
        "weight64": rng.random(n),
        "count": rng.integers(-1000, 1000, n).astype(np.int32),
        "tag": rng.integers(0, 60000, n).astype(np.uint16),
        "big": rng.integers(0, 10**6, n).astype(np.int64),
        "tissue": np.array(["cortex", "white matter", "thalamus"])[rng.integers(0, 3, n)],
    }


def build_polylines(
    path: Path, kind: str = "streamline", lengths: tuple[int, ...] = (1, 2, 3, 5, 30, 60, 120), seed: int = 0
) -> tuple[Path, list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Polylines of the given vertex counts, with per-vertex and per-object attributes and groups."""
    rng = np.random.default_rng(seed)
    lines = [walk(rng, n) for n in lengths]
    vertex: dict[str, list[np.ndarray]] = {
        "fa": [rng.random(len(p)).astype(np.float32) for p in lines],
        "label": [rng.integers(0, 7, len(p)).astype(np.uint8) for p in lines],
    }
    ds = zv.create(str(path), schema=small_schema(kind))
    ds.add_polylines(
        lines,
        streamlines=kind == "streamline",
        attributes=vertex,
        object_attributes=object_attributes(rng, len(lines)),
        groups={0: list(range(0, len(lines), 2)), 1: list(range(1, len(lines), 2))},
    )
    return path, lines, vertex


def build_lines(path: Path, n: int = 400, seed: int = 0) -> Path:
    """Short lines, many crossing a chunk seam, with per-endpoint and per-object attributes."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(1, 99, (n, 3))
    ends = np.stack([a, np.clip(a + rng.normal(0, 10, (n, 3)), 0.5, 99.5)], 1).astype(np.float32)
    ds = zv.create(str(path), schema=small_schema("line"))
    ds.add_lines(
        ends,
        attributes={"w": rng.random((n, 2)).astype(np.float32), "k": rng.integers(-300, 300, (n, 2)).astype(np.int16)},
        object_attributes=object_attributes(rng, n),
    )
    return path


def build_graph(
    path: Path, objects: int = 3, per: int = 80, seed: int = 0
) -> tuple[Path, np.ndarray, np.ndarray, dict]:
    """Graphs (one per object) linking each node to its two nearest later nodes, with node, edge and
    object attributes; returns the store and the written nodes, edges and edge attributes."""
    rng = np.random.default_rng(seed)
    pts, edges, owner = [], [], []
    for o in range(objects):
        p = walk(rng, per, 4.0)
        for i in range(per):
            d = np.linalg.norm(p - p[i], axis=1)
            d[: i + 1] = np.inf
            edges += [[o * per + i, o * per + j] for j in np.argsort(d)[:2] if np.isfinite(d[j])]
        pts.append(p)
        owner.append(np.full(per, o))
    P, E = np.concatenate(pts), np.unique(np.asarray(edges, np.int64), axis=0)
    edge_attributes = {
        "length": np.linalg.norm(P[E[:, 0]] - P[E[:, 1]], axis=1).astype(np.float32),
        "kind": rng.integers(0, 4, len(E)).astype(np.uint8),
    }
    ds = zv.create(str(path), schema=small_schema("graph"))
    ds.add_graph(
        P,
        E,
        object_ids=np.concatenate(owner),
        attributes={"degree": np.bincount(E.ravel(), minlength=len(P)).astype(np.int32)},
        edge_attributes=edge_attributes,
        object_attributes=object_attributes(rng, objects),
    )
    return path, P, E, edge_attributes


FRONT_ENDS = ("fuse", "http", "export")


def tree_urls(front_end: str, stores: dict[str, Path], tmp: Path, stack) -> dict[str, str]:
    """name -> URL (ending in /) of each store's tree through one real front end: a background
    mount (file://), ``zvfs serve`` (http://) or a ``zvfs export`` copy (file://)."""
    urls = {}
    for name, store in stores.items():
        if front_end == "fuse":
            urls[name] = f"file://{stack.enter_context(mounted(store, tmp / name))}/"
        elif front_end == "http":
            urls[name] = stack.enter_context(served(store, tmp / f"{name}.log"))[1]
        else:
            zvfs("export", "--no-progress", str(store), str(tmp / name))
            urls[name] = f"file://{tmp / name}/"
    return urls


def build_skeletons(path: Path, sizes: tuple[int, ...] = (1, 2, 40, 150), seed: int = 0) -> tuple[Path, dict]:
    """Branching trees ([child, parent] edges) of the given sizes, one per object, with a float
    radius and a uint8 SWC type per vertex and a ``segment_id``, a name and a volume per object;
    returns the store and what was written."""
    rng = np.random.default_rng(seed)
    pts, edges, owners = [], [], []
    base = 0
    for o, n in enumerate(sizes):
        pos = [rng.uniform(20, 80, 3)]
        for i in range(1, n):
            parent = i - 1 if i % 17 else int(rng.integers(0, i))
            pos.append(np.clip(pos[parent] + rng.normal(0, 5, 3), 0.5, 99.5))
            edges.append([base + i, base + parent])
        pts.append(np.asarray(pos, np.float32))
        owners.append(np.full(n, o))
        base += n
    P, owner = np.concatenate(pts), np.concatenate(owners)
    E = np.asarray(edges, np.int64).reshape(-1, 2)
    written = {
        "positions": P,
        "edges": E,
        "objects": owner,
        "radius": rng.uniform(0.5, 3, len(P)).astype(np.float32),
        "swc_type": rng.integers(0, 8, len(P)).astype(np.uint8),
        "segment_id": np.arange(len(sizes), dtype=np.uint64) * 1000 + 7,
    }
    ds = zv.create(str(path), schema=small_schema("skeleton", "micrometer"))
    ds.add_graph(
        P,
        E,
        object_ids=owner,
        tree=True,
        attributes={"radius": written["radius"], "swc_type": written["swc_type"]},
        object_attributes={
            "segment_id": written["segment_id"],
            "name": np.array([f"neuron {k}" for k in range(len(sizes))]),
            "volume": rng.random(len(sizes)).astype(np.float32),
        },
    )
    return path, written


def segmentation_info(layer: str) -> dict:
    """The smallest segmentation volume ``info`` pointing at a ``mesh`` or ``skeletons`` directory of the
    same name, which cloud-volume needs before it reads that directory."""
    scale = {"key": "1_1_1", "resolution": [1, 1, 1], "size": [1, 1, 1], "voxel_offset": [0, 0, 0],
             "chunk_sizes": [[64, 64, 64]], "encoding": "raw"}  # fmt: skip
    return {"@type": "neuroglancer_multiscale_volume", "type": "segmentation", "data_type": "uint64",
            "num_channels": 1, "scales": [scale], layer: layer}  # fmt: skip


def fetch(url: str) -> bytes:
    """The bytes at a file:// or http:// URL (through whichever front end serves it)."""
    if url.startswith("file://"):
        return Path(url[len("file://") :]).read_bytes()
    import requests

    resp = requests.get(url, timeout=TIMEOUT)
    assert resp.status_code == 200, (url, resp.status_code)
    return resp.content


def uv_sphere(center, radius: float, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A closed UV sphere (poles included), outward winding."""
    theta = np.linspace(0, np.pi, n + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    v = np.concatenate([[[0, 0, 1]], ring, [[0, 0, -1]]]) * radius + np.asarray(center, np.float64)
    idx = lambda i, j: 1 + i * n + j % n  # noqa: E731
    faces = [[0, idx(0, j), idx(0, j + 1)] for j in range(n)]
    for i in range(n - 2):
        for j in range(n):
            faces += [[idx(i, j), idx(i + 1, j), idx(i + 1, j + 1)], [idx(i, j), idx(i + 1, j + 1), idx(i, j + 1)]]
    faces += [[idx(n - 2, j), len(v) - 1, idx(n - 2, j + 1)] for j in range(n)]
    return v.astype(np.float32), np.asarray(faces, np.int64)


def build_meshes(path: Path, unit: str = "nanometer") -> tuple[Path, list[tuple[np.ndarray, np.ndarray]]]:
    """Two spheres crossing chunk seams and a single triangle, one object each, with per-vertex and
    per-object attributes; returns the store and each object's (vertices, faces) as written."""
    meshes = [
        uv_sphere((50, 50, 50), 30, 16),
        uv_sphere((20, 70, 40), 12, 8),
        (np.asarray([[80, 10, 10], [90, 10, 12], [85, 20, 11]], np.float32), np.asarray([[0, 1, 2]])),
    ]
    V = np.concatenate([v for v, _ in meshes])
    starts = np.cumsum([0] + [len(v) for v, _ in meshes])
    F = np.concatenate([f + s for (_, f), s in zip(meshes, starts[:-1], strict=True)])
    owner = np.concatenate([np.full(len(v), k) for k, (v, _) in enumerate(meshes)])
    ds = zv.create(str(path), schema=small_schema("mesh", unit))
    ds.add_mesh(
        V,
        F,
        object_ids=owner,
        attributes={"curvature": V[:, 2].copy()},
        object_attributes={
            "label": np.array(["big sphere", "small sphere", "triangle"]),
            "area": np.asarray([1.5, 2.5, 3.5], np.float32),
        },
    )
    return path, meshes


def add_pyramid(path: Path, levels: int) -> Path:
    """Coarser levels written by zarr-vectors itself: bins x2 per level, the second step also
    drops half the objects and doubles the chunk (the shared samples' recipe)."""
    if levels > 1:
        factors, chunks = [(2, 1), (2, 2), (2, 1)][: levels - 1], [1, 2, 1][: levels - 1]
        zv.open(str(path), mode="r+").build_pyramid(factors=factors, chunk_scale_factors=chunks, sparsity_seed=0)
    return path


def put_level_meshes(path: Path, level: int, meshes: list[tuple[np.ndarray, np.ndarray]]) -> Path:
    """Give pyramid ``level`` (on the root chunk grid) triangles: its geometry replaced by ``meshes``
    (object k = ``meshes[k]``) as zarr-vectors writes them at level 0 of a scratch store. The coarse
    level of a writer that simplifies; zarr-vectors' own pyramids keep vertices only."""
    import json
    import shutil

    scratch = path.with_name(f"{path.name}.level{level}")
    V = np.concatenate([v for v, _ in meshes])
    starts = np.cumsum([0] + [len(v) for v, _ in meshes])
    F = np.concatenate([f + s for (_, f), s in zip(meshes, starts[:-1], strict=True)])
    owner = np.concatenate([np.full(len(v), k) for k, (v, _) in enumerate(meshes)])
    zv.create(str(scratch), schema=small_schema("mesh")).add_mesh(V, F, object_ids=owner)
    for name in ("vertices", "vertex_fragments", "object_index", "links", "link_fragments"):
        shutil.rmtree(path / str(level) / name, ignore_errors=True)
        shutil.copytree(scratch / "0" / name, path / str(level) / name)
    meta_path = path / str(level) / "zarr.json"
    meta = json.loads(meta_path.read_text())
    attrs = meta["attributes"]["zarr_vectors_level"]
    attrs.update(arrays_present=["vertices", "links", "object_index"], vertex_count=len(V))
    attrs.pop("shared_fragments", None)
    meta_path.write_text(json.dumps(meta))
    shutil.rmtree(scratch)
    return path


# -- zvfs view -----------------------------------------------------------------------------------


@contextmanager
def viewed(sources: list[Path], log: Path, *args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``zvfs view SOURCES --port 0 --no-browser`` as a subprocess; yields it and the viewer URL."""
    with cli_server(
        ["view", *map(str, sources), "--port", "0", "--no-browser", *args], log, "neuroglancer: http://"
    ) as running:
        yield running


GEOMETRY_TYPES = ("point_cloud", "line", "streamline", "graph", "skeleton", "mesh")


def build_every_type(root: Path, points: int = 500) -> dict[str, Path]:
    """geometry type -> a small store of it under ``root`` (all in a 0..100 box; skeletons in
    micrometres)."""
    builders: dict[str, Callable[[Path], object]] = {
        "point_cloud": lambda p: build_points(p, PointSpec(n=points, objects=max(1, points // 100), typed=True)),
        "line": build_lines,
        "streamline": build_polylines,
        "graph": build_graph,
        "skeleton": build_skeletons,
        "mesh": build_meshes,
    }
    for kind, build in builders.items():
        build(root / f"{kind}.zarrvectors")
    return {kind: root / f"{kind}.zarrvectors" for kind in GEOMETRY_TYPES}
