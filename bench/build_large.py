#!/usr/bin/env python
"""Point clouds and streamlines at real sizes, at the density of the shared 1M-point / 100k-streamline
samples, for the real-sizes benchmark (``bench/scale.py``).

Points: gaussian blobs (one object per 100 points), ~2,000 points per level-0 chunk of 125 units,
with ``intensity`` (float32), ``rgb`` (uint8 x3) and ``label`` (3 categories) per point and ``size``,
``score`` per object. Streamlines: random walks of 20-40 vertices (step 6), 100,000 per 1000^3, with
``fa`` per vertex, ``length`` and ``bundle`` per streamline and 10 groups. Both: subcells 4, a
zarr-vectors pyramid (bins x2, then x4 with half the objects and chunks x2) and the fragment owner
index, as the shared samples are built. Deterministic (seeded).

    python bench/build_large.py OUTDIR points 8000000
    python bench/build_large.py OUTDIR streamlines 1000000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import zarr_vectors as zv
from zarr_vectors import building

from zvfs.samples import add_blobs

SEED = 20261130
CHUNK = 125.0
POINTS_PER_1000_CUBE = 1_000_000
STREAMLINES_PER_1000_CUBE = 100_000
PYRAMID = {"factors": [(2, 1), (2, 2)], "chunk_scale_factors": [1, 2], "sparsity_seed": 0}


def side(n: int, per_cube: int) -> float:
    """Edge of the cube holding ``n`` at the samples' density, a whole number of level-2 chunks."""
    edge = 1000.0 * (n / per_cube) ** (1 / 3)
    return float(np.ceil(edge / (2 * CHUNK)) * 2 * CHUNK)


def schema(kind: str, edge: float) -> zv.Schema:
    axes = tuple(zv.Axis(a, "nanometer") for a in "xyz")
    return zv.Schema(
        bounds=([0.0] * 3, [edge] * 3), kind=kind, axes=axes, layout=zv.Layout(cell_size=(CHUNK,) * 3, subcells=4)
    )


def points(path: Path, n: int) -> None:
    rng = np.random.default_rng(SEED)
    edge = side(n, POINTS_PER_1000_CUBE)
    centres = rng.uniform(0.05 * edge, 0.95 * edge, (n // 100, 3))
    add_blobs(zv.create(str(path), schema=schema("point_cloud", edge)), rng, n, centres, 20, edge - 0.1)


def streamlines(path: Path, n: int) -> None:
    rng = np.random.default_rng(SEED)
    edge = side(n, STREAMLINES_PER_1000_CUBE)
    lines = []
    for _ in range(n):
        start = rng.uniform(0.1 * edge, 0.9 * edge, 3)
        walk = start + np.cumsum(rng.normal(0, 6, (int(rng.integers(20, 41)), 3)), axis=0)
        lines.append(np.clip(walk, 1, edge - 1).astype(np.float32))
    zv.create(str(path), schema=schema("streamline", edge)).add_polylines(
        lines,
        streamlines=True,
        attributes={"fa": [rng.random(len(s)).astype(np.float32) for s in lines]},
        object_attributes={
            "length": np.array([np.linalg.norm(np.diff(s, axis=0), axis=1).sum() for s in lines], np.float32),
            "bundle": rng.integers(0, 10, n).astype(np.int32),
        },
        groups={b: list(range(b, n, 10)) for b in range(10)},
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("kind", choices=["points", "streamlines"])
    ap.add_argument("n", type=int)
    args = ap.parse_args()
    path = args.outdir / f"{args.kind}_{args.n}.zarrvectors"
    if path.exists():
        print(path)
        return 0
    args.outdir.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    t0 = time.monotonic()
    (points if args.kind == "points" else streamlines)(scratch, args.n)
    t1 = time.monotonic()
    zv.open(str(scratch), mode="r+").build_pyramid(**PYRAMID)
    t2 = time.monotonic()
    building.build_fragment_owner_index(str(scratch))
    scratch.rename(path)
    print(
        f"{path}: write {t1 - t0:.0f} s, pyramid {t2 - t1:.0f} s, owner index {time.monotonic() - t2:.0f} s",
        file=sys.stderr,
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
