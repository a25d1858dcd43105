"""Shared test helpers: sample stores built with zarr-vectors, real mounts and servers, oracles."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import zarr_vectors as zv

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
        "i16": rng.integers(-2**15, 2**15, n).astype(np.int16),
        "u16": rng.integers(0, 2**16, n).astype(np.uint16),
        "i32": rng.integers(-2**31, 2**31, n).astype(np.int32),
        "u32": rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32),
        "i64": rng.integers(-10**6, 10**6, n).astype(np.int64),
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
    schema = zv.Schema(bounds=(list(spec.lo), list(spec.hi)), kind="point_cloud", axes=axes,
                       layout=zv.Layout(cell_size=spec.cell, subcells=4))
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


# -- front ends ----------------------------------------------------------------------------------

def zvfs(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run([*ZVFS, *args], capture_output=True, text=True, timeout=TIMEOUT)
    if check:
        assert res.returncode == 0, f"zvfs {' '.join(args)} -> {res.returncode}\n{res.stderr}"
    return res


def is_mounted(path: Path) -> bool:
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return any(line.split()[1] == str(path) for line in f)


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
def served(source: Path, log: Path, *args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``zvfs serve SOURCE --port 0`` as a subprocess; yields it and its base URL (ending in /)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([*ZVFS, "serve", str(source), "--port", "0", *args],
                                stdout=subprocess.PIPE, stderr=out, text=True)
    try:
        line = proc.stdout.readline()
        assert "http://" in line, log.read_text()
        url = line.split()[-1]
        yield proc, url if url.endswith("/") else url + "/"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)
        proc.stdout.close()


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
