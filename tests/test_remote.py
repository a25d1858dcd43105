"""Stores on object storage: ``zvfs`` takes fsspec URLs wherever it takes a store path; tested
against a local HTTP server holding a store (zarr's fsspec store, as for s3:// or gs://)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support import PointSpec, build_points, same_tree, served, zvfs


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A store on disk and its URL on a plain static HTTP server."""
    root = tmp_path_factory.mktemp("remote")
    store = build_points(root / "pts.zarrvectors", PointSpec(n=2000, objects=20, seed=7))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield store, f"http://127.0.0.1:{port}/pts.zarrvectors"
    finally:
        proc.kill()
        proc.wait()


def test_export_from_url_equals_local_export(remote, tmp_path: Path) -> None:
    store, url = remote
    zvfs("export", "--no-progress", url, str(tmp_path / "from_url"))
    zvfs("export", "--no-progress", str(store), str(tmp_path / "local"))
    assert same_tree(tmp_path / "from_url", tmp_path / "local")


def test_serve_from_url(remote, tmp_path: Path) -> None:
    _, url = remote
    with served(url, tmp_path / "log") as (_, base):
        info = requests.get(base + "annotations/info", timeout=30)
        assert info.status_code == 200 and info.json()["@type"] == "neuroglancer_annotations_v1"


def test_missing_remote_store_is_a_one_line_error(remote, tmp_path: Path) -> None:
    _, url = remote
    res = zvfs("export", url.replace("pts", "absent"), str(tmp_path / "out"), check=False)
    assert res.returncode == 2 and res.stderr.startswith("zvfs: error:") and "absent" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_remote_store_gets_an_index_too(remote, tmp_path: Path) -> None:
    """Built once, outside the (read-only) server's tree, and found again by the next command."""
    _, url = remote
    index = tmp_path / "index"
    first = zvfs("index", "--no-progress", "--index-dir", str(index), url).stdout
    again = zvfs("index", "--no-progress", "--index-dir", str(index), url).stdout
    assert "index built at" in first and "index already built at" in again
    assert first.split(" at ")[-1] == again.split(" at ")[-1] and str(index) in first
    zvfs("export", "--no-progress", "--index-dir", str(index), url, str(tmp_path / "out"))
    assert sorted(p.name for p in index.iterdir() if p.is_dir()) == [Path(first.split(" at ")[-1].strip()).name]
