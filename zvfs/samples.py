"""Small deterministic sample stores, written with ``zarr-vectors`` itself (``zvfs sample``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import numpy as np
import zarr_vectors as zv

from .errors import UsageError

SEED = 20261125
AXES = tuple(zv.Axis(name, "nanometer") for name in "xyz")
BOUNDS = ([0.0, 0.0, 0.0], [1000.0, 1000.0, 1000.0])
CELL = (250.0, 250.0, 250.0)


def _schema(kind: str) -> zv.Schema:
    return zv.Schema(bounds=BOUNDS, kind=kind, axes=AXES, layout=zv.Layout(cell_size=CELL, subcells=4))


def add_blobs(ds: zv.Dataset, rng: np.random.Generator, n: int, centres: np.ndarray, spread: float, top: float) -> None:
    """``n`` points in gaussian blobs (standard deviation ``spread``) around ``centres``, one object
    each, clipped to [0, ``top``], with intensity, colour and class per point and size and score per
    blob (the sample's recipe, also the benchmarks' at larger sizes)."""
    objects = len(centres)
    owner = rng.integers(0, objects, n)
    pos = np.clip(centres[owner] + rng.normal(0, spread, (n, 3)), 0, top).astype(np.float32)
    ds.add_points(
        pos,
        attributes={
            "intensity": rng.random(n).astype(np.float32),
            "rgb": rng.integers(0, 256, (n, 3)).astype(np.uint8),
            "label": np.array(["axon", "dendrite", "soma"])[rng.integers(0, 3, n)],
        },
        object_ids=owner,
        object_attributes={
            "size": np.bincount(owner, minlength=objects).astype(np.int32),
            "score": rng.random(objects).astype(np.float32),
        },
    )


def point_cloud(path: str, rng: np.random.Generator) -> None:
    """20k points in 200 gaussian blobs (objects) with intensity, colour, class and per-blob score."""
    centres = rng.uniform(80, 920, (200, 3))
    add_blobs(zv.create(path, schema=_schema("point_cloud")), rng, 20_000, centres, 25, 999.9)


BUILDERS: dict[str, Callable[[str, np.random.Generator], None]] = {"point_cloud": point_cloud}


def build(path: str, kind: str = "point_cloud", force: bool = False) -> str:
    """Write the sample store of ``kind`` at ``path`` (kept if it exists, unless ``force``)."""
    if kind not in BUILDERS:
        raise UsageError(f"no sample of kind {kind!r} (have: {', '.join(sorted(BUILDERS))})")
    path = os.path.abspath(path)
    if os.path.exists(path):
        if not force:
            return path
        shutil.rmtree(path)
    BUILDERS[kind](path, np.random.default_rng(SEED))
    return path
