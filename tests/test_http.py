"""The Tornado front end, tested against a real server with ``requests`` (and raw http.client)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import requests
from support import cli_server, running

from zvfs.errors import UsageError
from zvfs.frontends.http import parse_range, serve, tree_path
from zvfs.tree import Dir, DirectoryTree, File, Tree, VirtualTree

MTIME = 1_700_000_000.0
DATA = bytes(range(256)) * 40
INFO = b'{"@type": "test_info"}'
NESTED = b"nested bytes"
SECRET = b"TOP SECRET sibling of the served root"
TIMEOUT = 10


def known(data: bytes) -> File:
    return File(lambda: data, lambda: len(data))


def boom() -> Any:
    raise RuntimeError("encoder exploded")


class Recording:
    """A tree that records every read call, to check only the requested slice is read."""

    def __init__(self, tree: Tree) -> None:
        self.tree, self.label = tree, tree.label
        self.reads: list[tuple] = []
        self.at_hand = False

    def stat(self, path: str):
        return self.tree.stat(path)

    def listdir(self, path: str):
        return self.tree.listdir(path)

    def read(self, path: str, offset: int = 0, size: int | None = None) -> bytes:
        self.reads.append((path, offset, size))
        return self.tree.read(path, offset, size)

    def cached(self, path: str):
        """Nothing is at hand unless ``at_hand`` is set, so that every read shows."""
        hit = self.tree.cached(path) if self.at_hand else None
        if hit is not None:
            self.reads.append((path, "at hand"))
        return hit


@contextmanager
def zvfs_serve(source: Path, tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``zvfs serve SOURCE --port 0 ARGS`` as a subprocess; yields it and the URL as printed."""
    with cli_server(["serve", str(source), "--port", "0", *args], tmp_path / "serve.log", "serving ") as running:
        yield running


@pytest.fixture(scope="module")
def release() -> threading.Event:
    """Lets the 'slow' file finish."""
    return threading.Event()


@pytest.fixture(scope="module")
def tree(release: threading.Event) -> Recording:
    def slow() -> bytes:
        release.wait(TIMEOUT)
        return b"slow"

    root = Dir(
        {
            "info": known(INFO),
            "data": known(DATA),
            "empty": known(b""),
            "nested": Dir({"deep": Dir({"x.json": known(b"{}"), "chunk_0": known(NESTED)})}),
            "broken": File(boom, lambda: 10),
            "broken_size": File(boom, boom),
            "slow": File(slow, lambda: 4),
        }
    )
    return Recording(VirtualTree(root, label="test-store", mtime=MTIME))


@pytest.fixture(scope="module")
def url(tree: Recording) -> Iterator[str]:
    with running(tree) as base:
        yield base


@pytest.fixture(scope="module")
def served_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/ (served) beside secret.txt (must never be reachable), with a symlink out of root."""
    top = tmp_path_factory.mktemp("dirtree")
    (top / "secret.txt").write_bytes(SECRET)
    root = top / "root"
    (root / "sub").mkdir(parents=True)
    (root / "public.txt").write_bytes(b"public")
    (root / "sub" / "inner.bin").write_bytes(NESTED)
    (root / "link").symlink_to(top / "secret.txt")
    return root


@pytest.fixture(scope="module")
def dir_url(served_dir: Path) -> Iterator[str]:
    with running(DirectoryTree(str(served_dir))) as base:
        yield base


def raw_get(base: str, target: str) -> tuple[int, bytes]:
    """GET with the request target sent exactly as given (no client-side normalisation)."""
    host, port = base.split("//")[1].strip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def assert_cors(resp: requests.Response) -> None:
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Content-Range", "Content-Length", "Content-Encoding", "Accept-Ranges", "ETag"} <= exposed


# -- pure helpers


@pytest.mark.parametrize(
    "header, total, span",
    [
        ("bytes=1-2", 5, (1, 3)),
        ("bytes=1-", 5, (1, 5)),
        ("bytes=-2", 5, (3, 5)),
        ("bytes=-9", 5, (0, 5)),
        ("bytes=0-99", 5, (0, 5)),
        ("bytes=3-1", 5, None),
        ("bytes=0-1,3-4", 5, None),
        ("items=0-1", 5, None),
        ("bytes=-", 5, None),
        ("bytes=x-1", 5, None),
        ("bytes=" + "9" * 30 + "-", 5, None),
        (None, 5, None),
    ],
)
def test_parse_range(header: str | None, total: int, span: tuple[int, int] | None) -> None:
    assert parse_range(header, total) == span


@pytest.mark.parametrize("raw, path", [("/", ""), ("/a/b", "a/b"), ("/a/b/", "a/b"), ("/a%20b", "a b")])
def test_tree_path(raw: str, path: str) -> None:
    assert tree_path(raw) == path


# -- files


def test_get_and_head_files(url: str) -> None:
    for name, data, ctype in [
        ("info", INFO, "application/json"),
        ("data", DATA, "application/octet-stream"),
        ("nested/deep/x.json", b"{}", "application/json"),
        ("nested/deep/chunk_0", NESTED, "application/octet-stream"),
        ("empty", b"", None),
    ]:
        got = requests.get(url + name, timeout=TIMEOUT)
        assert got.status_code == 200 and got.content == data
        assert int(got.headers["Content-Length"]) == len(data)
        assert ctype is None or got.headers["Content-Type"] == ctype
        assert got.headers["Accept-Ranges"] == "bytes"
        assert got.headers["Last-Modified"] == formatdate(MTIME, usegmt=True)
        assert got.headers["ETag"]
        assert_cors(got)
        head = requests.head(url + name, timeout=TIMEOUT)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["Content-Length"] == str(len(data))
        assert head.headers["ETag"] == got.headers["ETag"]


def test_etag_revalidation(url: str) -> None:
    tag = requests.head(url + "data", timeout=TIMEOUT).headers["ETag"]
    resp = requests.get(url + "data", headers={"If-None-Match": tag}, timeout=TIMEOUT)
    assert resp.status_code == 304 and resp.content == b""
    assert requests.get(url + "data", headers={"If-None-Match": '"other"'}, timeout=TIMEOUT).status_code == 200


@pytest.mark.parametrize(
    "spec, start, end",
    [
        ("bytes=100-199", 100, 199),
        ("bytes=10000-", 10000, len(DATA) - 1),
        ("bytes=-300", len(DATA) - 300, len(DATA) - 1),
        ("bytes=10200-99999", 10200, len(DATA) - 1),
    ],
)
def test_range(url: str, tree: Recording, spec: str, start: int, end: int) -> None:
    tree.reads.clear()
    resp = requests.get(url + "data", headers={"Range": spec, "Accept-Encoding": "gzip"}, timeout=TIMEOUT)
    assert resp.status_code == 206
    assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert resp.content == DATA[start : end + 1]
    assert int(resp.headers["Content-Length"]) == end + 1 - start
    assert "Content-Encoding" not in resp.headers
    assert tree.reads == [("data", start, end + 1 - start)]
    assert_cors(resp)


def test_bytes_at_hand_are_sent_without_a_read(url: str, tree: Recording) -> None:
    """A file the tree already holds is answered from those bytes: same body, headers and ranges."""
    first = requests.get(url + "data", timeout=TIMEOUT)
    tree.reads.clear()
    tree.at_hand = True
    try:
        full = requests.get(url + "data", timeout=TIMEOUT)
        part = requests.get(url + "data", headers={"Range": "bytes=100-199"}, timeout=TIMEOUT)
    finally:
        tree.at_hand = False
    assert full.status_code == 200 and full.content == DATA
    assert {k: full.headers[k] for k in ("ETag", "Last-Modified", "Content-Length", "Content-Type")} == {
        k: first.headers[k] for k in ("ETag", "Last-Modified", "Content-Length", "Content-Type")
    }
    assert part.status_code == 206 and part.content == DATA[100:200]
    assert tree.reads == [("data", "at hand")] * 2
    assert_cors(full)


def test_head_range_reads_nothing(url: str, tree: Recording) -> None:
    tree.reads.clear()
    resp = requests.head(url + "data", headers={"Range": "bytes=0-9"}, timeout=TIMEOUT)
    assert resp.status_code == 206 and resp.headers["Content-Length"] == "10"
    assert resp.headers["Content-Range"] == f"bytes 0-9/{len(DATA)}"
    assert tree.reads == []


def test_multi_range_and_stale_if_range_send_everything(url: str) -> None:
    multi = requests.get(url + "data", headers={"Range": "bytes=0-1,5-6"}, timeout=TIMEOUT)
    stale = requests.get(url + "data", headers={"Range": "bytes=0-1", "If-Range": '"old"'}, timeout=TIMEOUT)
    for resp in (multi, stale):
        assert resp.status_code == 200 and resp.content == DATA


@pytest.mark.parametrize(
    "name, spec, total",
    [
        ("data", f"bytes={len(DATA)}-", len(DATA)),
        ("data", "bytes=20000-20010", len(DATA)),
        ("data", "bytes=-0", len(DATA)),
        ("empty", "bytes=0-", 0),
    ],
)
def test_unsatisfiable_range(url: str, name: str, spec: str, total: int) -> None:
    resp = requests.get(url + name, headers={"Range": spec}, timeout=TIMEOUT)
    assert resp.status_code == 416
    assert resp.headers["Content-Range"] == f"bytes */{total}"
    assert_cors(resp)


# -- directories, errors, methods


def test_directories(url: str) -> None:
    assert requests.get(url, timeout=TIMEOUT).json() == [
        "info",
        "data",
        "empty",
        "nested",
        "broken",
        "broken_size",
        "slow",
    ]
    assert requests.get(url + "nested/deep/", timeout=TIMEOUT).json() == ["x.json", "chunk_0"]
    for target in ("nested", "nested/deep", "info/"):  # never a redirect
        resp = requests.get(url + target, allow_redirects=False, timeout=TIMEOUT)
        assert resp.status_code == 404
        assert_cors(resp)


def test_missing_is_404_with_cors(url: str) -> None:
    for target in ("nope", "nested/nope", "info/more", "nested/deep/x.json/y"):
        resp = requests.get(url + target, timeout=TIMEOUT)
        assert resp.status_code == 404 and "error" in resp.json()
        assert_cors(resp)


def test_failed_read_is_500_naming_store_and_path(url: str) -> None:
    for name in ("broken", "broken_size"):
        resp = requests.get(url + name, timeout=TIMEOUT)
        assert resp.status_code == 500
        error = resp.json()["error"]
        assert "test-store" in error and f"/{name}" in error and "encoder exploded" in error
        assert_cors(resp)
        assert requests.get(url + "data", timeout=TIMEOUT).content == DATA


def test_options_preflight(url: str) -> None:
    resp = requests.options(url + "data", timeout=TIMEOUT)
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"range", "content-type"} <= allowed
    assert_cors(resp)
    echoed = requests.options(
        url + "data", headers={"Access-Control-Request-Headers": "range, x-custom"}, timeout=TIMEOUT
    )
    assert echoed.headers["Access-Control-Allow-Headers"] == "range, x-custom"


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "PATCH"])
def test_writes_are_405(url: str, method: str) -> None:
    resp = requests.request(method, url + "data", data=b"x", timeout=TIMEOUT)
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert_cors(resp)
    assert requests.get(url + "data", timeout=TIMEOUT).content == DATA


# -- no escape from a real directory


def test_directory_tree(dir_url: str) -> None:
    assert requests.get(dir_url + "public.txt", timeout=TIMEOUT).content == b"public"
    resp = requests.get(dir_url + "sub/inner.bin", headers={"Range": "bytes=-5"}, timeout=TIMEOUT)
    assert resp.status_code == 206 and resp.content == NESTED[-5:]
    assert sorted(requests.get(dir_url, timeout=TIMEOUT).json()) == ["link", "public.txt", "sub"]


@pytest.mark.parametrize("target", ["public.txt/x", "public.txt/x/", "sub/inner.bin/y", "public.txt/"])
def test_path_through_a_file_is_404(dir_url: str, target: str) -> None:
    resp = requests.get(dir_url + target, timeout=TIMEOUT)
    assert resp.status_code == 404 and "error" in resp.json()
    assert_cors(resp)


def test_directory_that_cannot_be_listed_is_500_naming_it(
    served_dir: Path, dir_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its listing fails (here: permission denied, which root is never told) with a one-line
    message naming the directory; everything else is served."""
    listdir = os.listdir

    def denied(path: str) -> list[str]:
        if Path(path) == served_dir / "sub":
            raise PermissionError(13, "Permission denied", path)
        return listdir(path)

    monkeypatch.setattr(os, "listdir", denied)
    resp = requests.get(dir_url + "sub/", timeout=TIMEOUT)
    error = resp.json()["error"]
    assert resp.status_code == 500 and f"{served_dir}: /sub: " in error and "Permission denied" in error
    assert "\n" not in error
    assert requests.get(dir_url + "sub/inner.bin", timeout=TIMEOUT).content == NESTED
    assert sorted(requests.get(dir_url, timeout=TIMEOUT).json()) == ["link", "public.txt", "sub"]


@pytest.mark.parametrize(
    "target, status",
    [
        ("/../secret.txt", 404),
        ("/sub/../../secret.txt", 404),
        ("/%2e%2e/secret.txt", 404),
        ("/sub/%2E%2E/%2e%2e/secret.txt", 404),
        ("/../etc/passwd", 404),
        ("/..%2fsecret.txt", 400),
        ("/..%2Fsecret.txt", 400),
        ("/sub%2F..%2F..%2Fsecret.txt", 400),
        ("/a%2Fb", 400),
        ("/public.txt%00", 400),
        ("/%00/../secret.txt", 400),
        ("/link", 404),
        ("//../secret.txt", 404),
    ],
)
def test_no_path_escape(dir_url: str, target: str, status: int) -> None:
    code, body = raw_get(dir_url, target)
    assert code == status
    assert SECRET not in body and b"root:" not in body


# -- concurrency


def test_64_concurrent_requests(url: str) -> None:
    def fetch(i: int) -> bytes:
        headers = {"Range": "bytes=256-511"} if i % 2 else {}
        return requests.get(url + "data", headers=headers, timeout=TIMEOUT).content

    with ThreadPoolExecutor(64) as pool:
        bodies = list(pool.map(fetch, range(64)))
    assert bodies[0::2] == [DATA] * 32 and bodies[1::2] == [DATA[256:512]] * 32


def test_slow_read_does_not_block_others(url: str, release: threading.Event) -> None:
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(requests.get, url + "slow", timeout=TIMEOUT)
        time.sleep(0.2)
        started = time.monotonic()
        assert requests.get(url + "info", timeout=TIMEOUT).content == INFO
        assert time.monotonic() - started < 2 and not slow.done()
        release.set()
        assert slow.result().content == b"slow"


# -- serve(): bind, port in use, signals


def test_port_in_use_is_usage_error(served_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(UsageError, match="already in use"):
            serve(DirectoryTree(str(served_dir)), port=busy.getsockname()[1])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serve_binds_localhost_and_stops_on_signal(served_dir: Path, tmp_path: Path, sig: int) -> None:
    with zvfs_serve(served_dir, tmp_path) as (proc, base):
        assert base.startswith("http://127.0.0.1:") and base.endswith("/")
        assert requests.get(base + "public.txt", timeout=TIMEOUT).content == b"public"
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        with pytest.raises(OSError):  # 127.0.0.2 is loopback too, but not the bound address
            socket.create_connection(("127.0.0.2", port), timeout=TIMEOUT).close()
        proc.send_signal(sig)
        assert proc.wait(TIMEOUT) == 0


# -- a real ZVF store through ``zvfs serve``


def test_serve_zvf_store(tmp_path: Path) -> None:
    pytest.importorskip("zvfs.mappers")
    np = pytest.importorskip("numpy")
    zv = pytest.importorskip("zarr_vectors")
    store = tmp_path / "points.zvf"
    axes = tuple(zv.Axis(name, "nanometer") for name in "xyz")
    schema = zv.Schema(
        bounds=([0, 0, 0], [100, 100, 100]),
        kind="point_cloud",
        axes=axes,
        layout=zv.Layout(cell_size=(25, 25, 25), subcells=4),
    )
    ds = zv.create(str(store), schema=schema)
    ds.add_points(np.random.default_rng(0).uniform(0, 100, (500, 3)).astype(np.float32))
    with zvfs_serve(store, tmp_path) as (proc, base):
        resp = requests.get(base + "annotations/info", timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"] == "application/json"
        assert json.loads(resp.content)["@type"] == "neuroglancer_annotations_v1"
        assert "annotations" in requests.get(base, timeout=TIMEOUT).json()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
