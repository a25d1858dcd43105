#!/usr/bin/env python
"""Build the benchmark mesh store with zarr-vectors: closed UV spheres, one object each.

    python bench/build_mesh.py OUT.zarrvectors [--meshes 100] [--resolution 45] [--cell 125]

Default: 100 meshes of 1,982 vertices / 3,960 triangles each (resolution 45), radius 40-120 in a
[0, 1000]^3 nm box, so most cross chunk seams; per-vertex and per-object attributes; the same
3-level pyramid and owner index as ``shared/tools/make_samples.py --large`` (factors [(2,1),(2,2)],
chunk_scale_factors [1,2], sparsity seed 0). Deterministic (seed 20240607).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import zarr_vectors as zv
from zarr_vectors import building

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import uv_sphere

SEED = 20240607
PYRAMID = {"factors": [(2, 1), (2, 2)], "chunk_scale_factors": [1, 2], "sparsity_seed": 0}


def build(path: str, meshes: int, resolution: int, cell: float) -> dict:
    rng = np.random.default_rng(SEED)
    vs, fs, os_ = [], [], []
    nv = 0
    for o in range(meshes):
        v, f = uv_sphere(rng.uniform(150, 850, 3), float(rng.uniform(40, 120)), resolution)
        vs.append(v)
        fs.append(f + nv)
        os_.append(np.full(len(v), o))
        nv += len(v)
    V, F, owners = np.concatenate(vs), np.concatenate(fs), np.concatenate(os_)
    axes = tuple(zv.Axis(a, "nanometer") for a in "xyz")
    schema = zv.Schema(
        bounds=([0.0] * 3, [1000.0] * 3), kind="mesh", axes=axes, layout=zv.Layout(cell_size=(cell,) * 3, subcells=4)
    )
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    ds = zv.create(path, schema=schema)
    ds.add_mesh(
        V,
        F,
        object_ids=owners,
        attributes={"height": V[:, 2].copy()},
        object_attributes={
            "label": np.array([f"sphere {o}" for o in range(meshes)]),
            "radius": np.asarray(
                [np.ptp(v[:, 0]) / 2 for v in np.split(V, np.cumsum(np.bincount(owners))[:-1])], np.float32
            ),
        },
    )
    zv.open(path, mode="r+").build_pyramid(**PYRAMID)
    building.build_fragment_owner_index(path)
    return {
        "meshes": meshes,
        "vertices_per_mesh": int(len(V) // meshes),
        "triangles_per_mesh": int(len(F) // meshes),
        "cell": cell,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path")
    ap.add_argument("--meshes", type=int, default=100)
    ap.add_argument("--resolution", type=int, default=45, help="UV sphere resolution n: 2+(n-1)n vertices")
    ap.add_argument("--cell", type=float, default=125.0, help="ZVF chunk edge (nm)")
    args = ap.parse_args(argv)
    print(json.dumps(build(args.path, args.meshes, args.resolution, args.cell)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
