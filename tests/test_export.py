"""Export at scale: resumable exports, and exports run as tasks on a Dask cluster (a LocalCluster of
2 worker processes), byte-identical to the single-process export."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import PointSpec, add_pyramid, build_points, build_skeletons, same_tree, zvfs


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export_stores")
    points = add_pyramid(build_points(root / "p.zarrvectors", PointSpec(n=3000, objects=30, typed=True, seed=3)), 2)
    return {"points": points, "skeletons": build_skeletons(root / "k.zarrvectors")[0]}


@pytest.fixture(scope="module")
def reference(stores: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reference")
    for name, store in stores.items():
        zvfs("export", "--no-progress", str(store), str(out / name))
    return {name: out / name for name in stores}


def test_resume_completes_an_interrupted_export(stores, reference, tmp_path: Path) -> None:
    out = tmp_path / "out"
    zvfs("export", "--no-progress", str(stores["points"]), str(out))
    files = sorted(p for p in out.rglob("*") if p.is_file())
    removed, truncated = files[1::50], files[0]
    for p in removed:
        p.unlink()
    truncated.write_bytes(truncated.read_bytes()[:-1])  # a partly written file is rewritten too
    res = zvfs("export", "--no-progress", str(stores["points"]), str(out), check=False)
    assert res.returncode == 2 and "--resume" in res.stderr
    res = zvfs("export", "--no-progress", "--resume", str(stores["points"]), str(out))
    assert f"({len(removed) + 1} written" in res.stdout
    assert same_tree(out, reference["points"])


def test_dask_export_is_byte_identical(stores, reference, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for name, store in stores.items():
            res = zvfs("export", "--no-progress", "--dask", cluster.scheduler_address, str(store), str(tmp_path / name))
            assert "with 2 Dask workers" in res.stdout
            assert same_tree(tmp_path / name, reference[name])
        (tmp_path / "points" / "annotations" / "info").unlink()
        res = zvfs(
            "export",
            "--no-progress",
            "--resume",
            "--dask",
            cluster.scheduler_address,
            str(stores["points"]),
            str(tmp_path / "points"),
        )
        assert "(1 written)" in res.stdout and same_tree(tmp_path / "points", reference["points"])
