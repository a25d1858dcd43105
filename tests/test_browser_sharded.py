"""The real client renders sharded layers (``--sharding on``) of every geometry type, reading shards
with byte ranges, from three servers: ``zvfs serve``, nginx in front of a ``zvfs mount`` and nginx on
a ``zvfs export``.

The client (the ``neuroglancer`` package's build, served by the viewer app of ``zvfs view`` from a
thread of this process) shows a state naming the data on the server under test, another origin; each
layer must pass the four checks of :mod:`test_browser` and must have had a shard answered 206.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from support import TIMEOUT, build_every_type, mounted, served, zvfs
from test_browser import EXPECTED_LAYERS, TYPES, browser, check  # noqa: F401 - browser is a fixture
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

from zvfs import link
from zvfs.frontends import http, view
from zvfs.source import open_tree
from zvfs.tree import DirectoryTree

SERVERS = ("serve", "nginx-mount", "nginx-export")
OPTIONS = ("--sharding", "on", "--units", "nanometer")  # one view: every store in nanometres


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a small store of every geometry type."""
    root = tmp_path_factory.mktemp("browser-sharded-stores")
    build_every_type(root, points=2000)
    return root


@contextmanager
def data_server(kind: str, stores: Path, work: Path) -> Iterator[str]:
    """The base URL (ending in /) of the sharded trees of ``stores`` on one kind of server."""
    with ExitStack() as stack:
        if kind == "serve":
            yield stack.enter_context(served(stores, work / "serve.log", *OPTIONS))[1]
            return
        from test_nginx import run_nginx  # skips the test where nginx or FUSE is missing

        if kind == "nginx-mount":
            root = stack.enter_context(mounted(stores, work / "mnt", *OPTIONS))
        else:
            root = work / "export"
            for store in sorted(stores.glob("*.zarrvectors")):
                zvfs("export", "--no-progress", *OPTIONS, str(store), str(root / store.name))
        (work / "nginx").mkdir()
        yield stack.enter_context(run_nginx(root, work / "nginx"))


@contextmanager
def viewer(state: dict, empty: Path) -> Iterator[str]:
    """The client, showing ``state``, on a server of its own in a thread; yields its URL."""
    sockets = http.listen(0, "127.0.0.1")
    app = view.make_app(DirectoryTree(str(empty)), view.client_dir(), state)
    started, loops = threading.Event(), []

    def run() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        HTTPServer(app).add_sockets(sockets)
        loops.append(IOLoop.current())
        started.set()
        loops[0].start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(TIMEOUT)
    try:
        yield view.viewer_url(http.base_url("127.0.0.1", sockets[0].getsockname()[1]))
    finally:
        loops[0].add_callback(loops[0].stop)
        thread.join(TIMEOUT)
        app.settings["executor"].shutdown(wait=False, cancel_futures=True)


@pytest.mark.parametrize("server", SERVERS)
def test_sharded_layers_render(server: str, browser, stores: Path, tmp_path: Path) -> None:  # noqa: F811
    with data_server(server, stores, tmp_path) as base:
        sources = [
            link.Source(
                kind, open_tree(str(stores / f"{kind}.zarrvectors"), units="nanometer"), f"{base}{kind}.zarrvectors/"
            )
            for kind in TYPES
        ]
        (tmp_path / "empty").mkdir()
        with viewer(link.build_state(sources), tmp_path / "empty") as url:
            verdicts = check(browser, url)
    assert sorted(verdicts) == sorted(f"{k}/{d}" for k in TYPES for d in EXPECTED_LAYERS[k])
    for name, v in verdicts.items():
        assert not v.failures() and v.ranged, (name, v.failures(), v)
