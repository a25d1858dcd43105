"""nginx serving a real zvfs mount with the plain static ``root`` configuration we document."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from support import TIMEOUT, free_port, listening, mounted, relative_paths

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
)
if NGINX is None:
    pytest.skip("nginx is not installed (apt-get install nginx-light or nginx)", allow_module_level=True)
if not os.path.exists("/dev/fuse"):
    pytest.skip("needs /dev/fuse for a real mount", allow_module_level=True)

# The documented part: serve the mount as static files, with CORS on every response (also 404/206).
# nginx answers byte ranges, HEAD and Content-Length by itself. Its workers must be able to read the
# mount: run them as the mounting user (``user root;`` here) or mount with ``-o allow_other``.
NGINX_LOCATION = """\
        location / {{
            root {mountpoint};
            add_header Access-Control-Allow-Origin * always;
            add_header Access-Control-Expose-Headers "Content-Length, Content-Range" always;
            if ($request_method = OPTIONS) {{
                add_header Access-Control-Allow-Origin * always;
                add_header Access-Control-Allow-Headers "Range" always;
                return 204;
            }}
        }}"""

# A self-contained nginx around it, for running unprivileged-style under a temporary prefix.
NGINX_CONF = (
    """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 64;
}}
http {{
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
"""
    + NGINX_LOCATION
    + """
    }}
}}
"""
)


def nginx_config(mountpoint: Path, port: int, prefix: Path) -> str:
    """The full test configuration serving ``mountpoint`` on 127.0.0.1:``port``."""
    return NGINX_CONF.format(mountpoint=mountpoint, port=port, prefix=prefix)


@pytest.fixture(scope="module")
def mount(point_stores: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``typed`` store mounted for the module."""
    mp = tmp_path_factory.mktemp("mnt_nginx")
    with mounted(point_stores["typed"], mp, "--log-file", str(mp.with_name(mp.name + ".log"))):
        yield mp


@pytest.fixture(scope="module")
def nginx(mount: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx in front of the mount; yields its base URL (ending in /)."""
    with run_nginx(mount, tmp_path_factory.mktemp("nginx")) as url:
        yield url


@contextmanager
def run_nginx(root: Path, prefix: Path) -> Iterator[str]:
    """nginx serving ``root`` (a mount, an export) as a child process, its files under ``prefix``;
    yields its base URL (ending in /)."""
    proc = None
    for _ in range(3):  # the free port may be taken between choosing and binding it
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_config(root, port, prefix))
        proc = subprocess.Popen(
            [str(NGINX), "-p", str(prefix), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + TIMEOUT
        while proc.poll() is None and not listening(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None and listening(port):
            break
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)
    else:
        log = prefix / "error.log"
        pytest.fail(f"nginx did not start: {log.read_text() if log.exists() else 'no error log'}")
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(TIMEOUT)


@pytest.fixture(scope="module")
def http(nginx: str) -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_info(nginx: str, http: requests.Session, mount: Path) -> None:
    """The info file: 200, JSON, Content-Length = st_size on the mount = body length, CORS."""
    resp = http.get(nginx + "annotations/info", timeout=TIMEOUT)
    assert resp.status_code == 200
    assert json.loads(resp.content)["@type"] == "neuroglancer_annotations_v1"
    size = os.stat(mount / "annotations" / "info").st_size
    assert int(resp.headers["Content-Length"]) == size == len(resp.content)
    assert resp.content == (mount / "annotations" / "info").read_bytes()
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_files_equal_the_mount(nginx: str, http: requests.Session, mount: Path) -> None:
    """Every spatial chunk and a few by_id and rel_object files are the mount's bytes."""
    _, files = relative_paths(mount)
    spatial = [f for f in files if f.startswith("annotations/spatial0/")]
    by_id = sorted((f for f in files if f.startswith("annotations/by_id/")), key=lambda f: int(f.rsplit("/", 1)[1]))
    related = sorted(f for f in files if f.startswith("annotations/rel_object/"))
    assert len(spatial) == 48 and len(by_id) == 3000 and len(related) == 30
    chosen = spatial + by_id[:2] + by_id[1499:1501] + by_id[-2:] + related[:3] + related[-2:]
    for rel in chosen:
        resp = http.get(nginx + rel, timeout=TIMEOUT)
        assert resp.status_code == 200, rel
        assert resp.content == (mount / rel).read_bytes(), rel
        assert int(resp.headers["Content-Length"]) == os.stat(mount / rel).st_size, rel


def test_range(nginx: str, http: requests.Session, mount: Path) -> None:
    """``Range: bytes=10-99`` -> 206 with the right Content-Range and slice."""
    rel = "annotations/spatial0/" + sorted(os.listdir(mount / "annotations" / "spatial0"))[0]
    data = (mount / rel).read_bytes()
    assert len(data) > 100
    resp = http.get(nginx + rel, headers={"Range": "bytes=10-99"}, timeout=TIMEOUT)
    assert resp.status_code == 206
    assert resp.headers["Content-Range"] == f"bytes 10-99/{len(data)}"
    assert resp.content == data[10:100] and resp.headers["Content-Length"] == "90"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_head(nginx: str, http: requests.Session, mount: Path) -> None:
    """HEAD: same Content-Length as GET, no body."""
    rel = "annotations/rel_object/" + sorted(os.listdir(mount / "annotations" / "rel_object"))[0]
    get = http.get(nginx + rel, timeout=TIMEOUT)
    head = http.head(nginx + rel, timeout=TIMEOUT)
    assert head.status_code == get.status_code == 200
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(os.stat(mount / rel).st_size)
    assert head.content == b""


@pytest.mark.parametrize(
    "rel",
    [
        "annotations/spatial0/99_99_99",
        "annotations/by_id/0",
        "annotations/by_id/3001",
        "annotations/rel_object/999999",
        "annotations/nope",
        "nope/info",
    ],
)
def test_missing_is_404(nginx: str, http: requests.Session, rel: str) -> None:
    resp = http.get(nginx + rel, timeout=TIMEOUT)
    assert resp.status_code == 404
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_preflight_and_exposed_headers(nginx: str, http: requests.Session) -> None:
    """The documented configuration answers a Range preflight and exposes Content-Range."""
    pre = http.options(
        nginx + "annotations/info",
        headers={"Origin": "http://viewer.example", "Access-Control-Request-Headers": "range"},
    )
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "*" and "Range" in pre.headers["Access-Control-Allow-Headers"]
    resp = http.get(nginx + "annotations/info", headers={"Range": "bytes=0-9"})
    assert resp.status_code == 206 and "Content-Range" in resp.headers["Access-Control-Expose-Headers"]
