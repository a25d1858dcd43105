"""HTTP front end: a read-only static server over any :class:`~zvfs.tree.Tree`, with CORS and Range.

It knows no file format: ``info`` and ``*.json`` are served as JSON, everything else as bytes.
Tree calls may be slow (they encode data), so they run in a bounded thread pool while the IOLoop
keeps serving other requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import json
import logging
import os
import posixpath
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import unquote

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.httputil import responses
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets
from tornado.web import HTTPError

from ..errors import UsageError
from ..tree import NotFound, ReadFailed, Stat, Tree

ALLOW = "GET, HEAD, OPTIONS"
EXPOSE = "Content-Range, Content-Length, Content-Encoding, Accept-Ranges, ETag"
DEFAULT_WORKERS = min(32, (os.cpu_count() or 1) + 4)

_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")  # longer numbers: malformed
access_log = logging.getLogger("tornado.access")

T = TypeVar("T")


class RangeNotSatisfiable(HTTPError):
    """416: the requested range lies outside a file of ``total`` bytes."""

    def __init__(self, total: int) -> None:
        super().__init__(416)
        self.total = total


def tree_path(raw: str) -> str:
    """The tree path of a raw (still percent-encoded) URL path.

    400 for an encoded '/' or a NUL in any component, 404 for a '..' component, so a request
    can only name something inside the tree.
    """
    if not raw.startswith("/"):
        raise HTTPError(400)
    parts = [unquote(p, errors="replace") for p in raw.split("/")]
    if any("/" in p or "\0" in p for p in parts):
        raise HTTPError(400)
    if ".." in parts:
        raise HTTPError(404)
    return "/".join(parts).strip("/")


def parse_range(header: str | None, total: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single ``bytes=`` range, or None to send the whole file.

    Absent, malformed and multi-range headers mean the whole file; a well-formed range that
    lies outside the file raises :class:`RangeNotSatisfiable`.
    """
    m = _RANGE.fullmatch(header.strip()) if header else None
    if m is None or m.group(1) == m.group(2) == "":
        return None
    first, last = m.groups()
    if not first:
        if int(last) == 0 or total == 0:
            raise RangeNotSatisfiable(total)
        return max(0, total - int(last)), total
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= total:
        raise RangeNotSatisfiable(total)
    end = min(int(last) + 1, total) if last else total
    return start, end


def content_type(path: str) -> str:
    """``application/json`` for ``info`` and ``*.json`` files, else ``application/octet-stream``."""
    name = posixpath.basename(path)
    return "application/json" if name == "info" or name.endswith(".json") else "application/octet-stream"


def etag(st: Stat) -> str:
    """A strong validator from modification time and size."""
    return f'"{int(st.mtime * 1e6):x}-{st.size:x}"'


@contextlib.contextmanager
def http_errors() -> Iterator[None]:
    """A tree's NotFound as 404, ReadFailed as 500 (its message names store and path)."""
    try:
        yield
    except NotFound:
        raise HTTPError(404) from None
    except ReadFailed as exc:
        raise HTTPError(500, "%s", exc) from None


class TreeHandler(tornado.web.RequestHandler):
    """GET/HEAD/OPTIONS of any path of the tree; every other method is 405."""

    def set_default_headers(self) -> None:
        self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Access-Control-Expose-Headers", EXPOSE)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A JSON body ``{"error": message}``; a failed read's message names store and path."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if status_code == 405:
            self.set_header("Allow", ALLOW)
        if isinstance(exc, RangeNotSatisfiable):
            self.set_header("Content-Range", f"bytes */{exc.total}")
        detail = isinstance(exc, HTTPError) and exc.log_message
        self.finish({"error": exc.log_message % exc.args if detail else responses.get(status_code, "Error")})

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a tree call in the pool, mapping its errors to HTTP ones."""
        with http_errors():
            return await IOLoop.current().run_in_executor(self.settings["executor"], fn, *args)

    def options(self) -> None:
        self.set_status(204)
        self.set_header("Access-Control-Allow-Methods", ALLOW)
        requested = self.request.headers.get("Access-Control-Request-Headers")
        self.set_header("Access-Control-Allow-Headers", requested or "Range, Content-Type")
        self.set_header("Access-Control-Max-Age", "86400")
        self.finish()

    async def get(self) -> None:
        await self._serve()

    async def head(self) -> None:
        await self._serve()

    async def _serve(self) -> None:
        path = tree_path(self.request.path)
        tree = self.settings["tree"]
        with http_errors():
            at_hand = None if self.request.path.endswith("/") else tree.cached(path)
        if at_hand is not None:
            await self._file(path, *at_hand)
            return
        st = await self._call(tree.stat, path)
        if st.is_dir != self.request.path.endswith("/"):
            raise HTTPError(404)  # a directory only as '.../', a file never; no redirects
        if st.is_dir:
            await self._listing(path)
        else:
            await self._file(path, st)

    async def _listing(self, path: str) -> None:
        names = await self._call(lambda: list(self.settings["tree"].listdir(path)))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(names))

    async def _file(self, path: str, st: Stat, data: bytes | None = None) -> None:
        """Send a file (or its range); ``data`` when its bytes are already at hand."""
        tag = etag(st)
        self.set_header("Content-Type", content_type(path))
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("Last-Modified", datetime.datetime.fromtimestamp(st.mtime, datetime.timezone.utc))
        self.set_header("ETag", tag)
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return
        start, end = self._span(st.size, tag)
        self.set_header("Content-Length", end - start)
        if self.request.method == "HEAD":
            self.finish()
            return
        if data is not None:
            data = data[start:end]
        else:
            data = await self._call(self.settings["tree"].read, path, start, end - start)
        assert data is not None
        if len(data) != end - start:
            raise HTTPError(
                500,
                "%s: /%s: %d bytes announced but %d read",
                self.settings["tree"].label,
                path,
                end - start,
                len(data),
            )
        self.finish(data)

    def _span(self, total: int, tag: str) -> tuple[int, int]:
        """The byte span to send; a range (honoured unless If-Range names another version) is 206."""
        if_range = self.request.headers.get("If-Range")
        span = parse_range(self.request.headers.get("Range") if if_range in (None, tag) else None, total)
        if span is None:
            return 0, total
        self.set_status(206)
        self.set_header("Content-Range", f"bytes {span[0]}-{span[1] - 1}/{total}")
        return span


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log: failures as warnings, successes only at debug level (a viewer asks a lot)."""
    status = handler.get_status()
    level = logging.DEBUG if status < 400 else logging.WARNING
    req = handler.request
    access_log.log(level, "%d %s %s (%s) %.1fms", status, req.method, req.uri, req.remote_ip, 1000 * req.request_time())


def make_app(tree: Tree, *, workers: int = DEFAULT_WORKERS) -> tornado.web.Application:
    """The application serving ``tree``; tree calls run in a pool of ``workers`` threads."""
    executor = ThreadPoolExecutor(workers, thread_name_prefix="zvfs-http")
    return tornado.web.Application([(r".*", TreeHandler)], tree=tree, executor=executor, log_function=log_request)


def listen(port: int, bind: str) -> list[socket.socket]:
    """Listening sockets on ``bind:port`` (port 0: any free port); UsageError if that fails."""
    try:
        return bind_sockets(port, bind)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {bind} is already in use (choose another with --port)") from None
        raise UsageError(f"cannot listen on {bind}:{port}: {exc.strerror or exc}") from None


def base_url(bind: str, port: int) -> str:
    """``http://BIND:PORT/`` (IPv6 addresses in brackets)."""
    host = f"[{bind}]" if ":" in bind else bind
    return f"http://{host}:{port}/"


async def serve_until(app: tornado.web.Application, sockets: list[socket.socket], stop: asyncio.Event) -> None:
    """Serve ``app`` (from :func:`make_app`) on ``sockets`` until ``stop`` is set; then close the
    sockets and every connection, drop the worker pool's pending calls and wait for its running ones,
    so that nothing of the server is left."""
    server = HTTPServer(app)
    server.add_sockets(sockets)
    try:
        await stop.wait()
    finally:
        server.stop()
        await server.close_all_connections()
        app.settings["executor"].shutdown(wait=True, cancel_futures=True)


async def _run(app: tornado.web.Application, sockets: list[socket.socket], url: str) -> None:
    """Serve on ``sockets`` until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"serving {app.settings['tree'].label} at {url}", flush=True)
    await serve_until(app, sockets, stop)


def run_until_stopped(app: tornado.web.Application, sockets: list[socket.socket], url: str) -> None:
    """Serve ``app`` (from :func:`make_app`) on ``sockets`` until SIGINT or SIGTERM."""
    asyncio.run(_run(app, sockets, url))


def serve(tree: Tree, *, port: int, bind: str = "127.0.0.1") -> int:
    """Serve ``tree`` over HTTP on ``bind:port`` until Ctrl-C or SIGTERM; returns 0."""
    sockets = listen(port, bind)
    run_until_stopped(make_app(tree), sockets, base_url(bind, sockets[0].getsockname()[1]))
    return 0


class Background:
    """``app`` (from :func:`make_app`) served on ``sockets`` by a thread with an event loop of its
    own, so that the caller (a script, a notebook) goes on; :meth:`close` stops it and waits until
    its port, connections and threads are gone."""

    def __init__(self, app: tornado.web.Application, sockets: list[socket.socket]) -> None:
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, args=(app, sockets), name="zvfs-http-server", daemon=True)
        self._thread.start()
        self._started.wait()

    def _run(self, app: tornado.web.Application, sockets: list[socket.socket]) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._started.set()
            await serve_until(app, sockets, self._stop)

        try:
            asyncio.run(main())
        finally:
            self._started.set()  # also when it failed to start: the constructor waits for this

    def close(self) -> None:
        """Stop serving and wait for it (again: nothing)."""
        if self._thread.is_alive():
            assert self._loop is not None and self._stop is not None
            with contextlib.suppress(RuntimeError):  # the loop has just ended
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join()
