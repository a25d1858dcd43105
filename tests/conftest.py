"""Session fixtures: sample point clouds written with zarr-vectors (several sizes, with and without
object ids, with attributes of every dtype)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from neuroglancer import write_annotations
from support import PointSpec, build_points

# neuroglancer 2.41.2's annotation reader gives uint32 alignment 3 (fixed upstream in 8c06aa58); our
# files follow the client, so every test reads them with the corrected table.
write_annotations._PROPERTY_DTYPES["uint32"] = (("<u4",), 4)

POINT_SPECS = {
    "tiny": PointSpec(n=40),
    "typed": PointSpec(
        n=3000,
        objects=30,
        typed=True,
        unit="micrometer",
        lo=(-50.0, 0.0, 0.0),
        hi=(100.0, 100.0, 40.0),
        cell=(25.0, 25.0, 20.0),
        seed=1,
    ),
    "typed_anonymous": PointSpec(n=1500, typed=True, seed=2),
    "large": PointSpec(n=40_000, objects=400, hi=(1000.0, 1000.0, 1000.0), cell=(250.0, 250.0, 250.0), seed=3),
}


def pytest_configure(config: pytest.Config) -> None:
    """Store indexes of the whole run (its subprocesses too) go to a directory of its own, not the
    user's cache; a test that is about indexes passes --index-dir itself."""
    os.environ.setdefault("ZVFS_INDEX_DIR", tempfile.mkdtemp(prefix="zvfs-test-index-"))


@pytest.fixture(scope="session")
def point_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> path of each store in POINT_SPECS."""
    root = tmp_path_factory.mktemp("stores")
    return {name: build_points(root / f"{name}.zarrvectors", spec) for name, spec in POINT_SPECS.items()}
