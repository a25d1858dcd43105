"""``zvfs view``: a tree and the Neuroglancer client served together on one port, offline.

The client is the build inside the ``neuroglancer`` Python package. It starts only under
``/v/<token>/`` and opens a server-sent event stream at ``/events/<token>``; that stream sends the
viewer state once and then stays open. (A state in the URL's ``#!`` fragment is restored while the
client is still starting, and then sometimes loses annotation layers.) The state changes the
client posts back (``/state/<token>``) and its actions (``/action/<token>``) are accepted and
dropped, so a reload starts from the initial state again. Every other path is the tree, served by
:mod:`zvfs.frontends.http` (CORS, ``HEAD``, byte ranges). Knows no formats: the caller supplies the
state.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import sys
import webbrowser
from collections.abc import Callable

import tornado.web

from ..errors import UsageError
from ..tree import Tree
from . import http

TOKEN = "zvfs"
GENERATION = "zvfs-1"  # of the one state the server sends; a client that has it is not sent it again
INSTALL_HINT = "zvfs view needs the Neuroglancer client: pip install 'zvfs[view]' (or neuroglancer==2.41.2)"
LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def client_dir() -> str:
    """The built client inside the installed ``neuroglancer`` package; UsageError if absent."""
    spec = importlib.util.find_spec("neuroglancer")
    path = os.path.join(os.path.dirname(spec.origin), "static", "client") if spec and spec.origin else ""
    if not os.path.isfile(os.path.join(path, "index.html")):
        raise UsageError(INSTALL_HINT)
    return path


class EventsHandler(tornado.web.RequestHandler):
    """The client's state stream: the state (unless the client has it already), then silence."""

    async def get(self, token: str) -> None:
        self._gone = asyncio.Event()
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        if self.get_query_argument("gs", "") != GENERATION:
            message = {"k": "s", "s": self.settings["view_state"], "g": GENERATION}
            self.write(f"data: {json.dumps(message, separators=(',', ':'))}\n\n")
        else:
            self.write(": zvfs\n\n")
        await self.flush()
        with contextlib.suppress(asyncio.CancelledError):  # the server is stopping: end the stream
            await self._gone.wait()

    def on_connection_close(self) -> None:
        if hasattr(self, "_gone"):
            self._gone.set()


class SyncHandler(tornado.web.RequestHandler):
    """Accepts the client's state updates and actions, and drops them."""

    def post(self, kind: str, token: str) -> None:
        self.finish({"g": GENERATION})


class NoFaviconHandler(tornado.web.RequestHandler):
    """The browser's favicon request: nothing, and no 404 in the log."""

    def get(self) -> None:
        self.set_status(204)


def make_app(tree: Tree, client: str, state: dict) -> tornado.web.Application:
    """:func:`zvfs.frontends.http.make_app` for ``tree``, plus the client showing ``state``."""
    app = http.make_app(tree)
    app.settings["view_state"] = state
    app.add_handlers(
        r".*",
        [
            (r"/v/[^/]+/(.*)", tornado.web.StaticFileHandler, {"path": client, "default_filename": "index.html"}),
            (r"/events/([^/]+)", EventsHandler),
            (r"/(state|action)/([^/]+)", SyncHandler),
            (r"/favicon\.ico", NoFaviconHandler),
        ],
    )
    return app


def viewer_url(base: str) -> str:
    """Where the client is, on a server whose base URL is ``base`` (ending in '/')."""
    return f"{base}v/{TOKEN}/"


def open_browser(url: str) -> None:
    """Open ``url`` in the user's browser, unless there is no display to show it on."""
    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if not headless:
        webbrowser.open(url)


def serve(
    tree: Tree, make_state: Callable[[str], dict], *, port: int, bind: str = "127.0.0.1", browse: bool = True
) -> int:
    """Serve ``tree`` and the client on ``bind:port`` until Ctrl-C or SIGTERM; returns 0.

    ``make_state(base)`` gives the viewer state for a server at ``base``. The viewer URL is printed,
    and opened in a browser when ``browse``.
    """
    client = client_dir()
    sockets = http.listen(port, bind)
    base = http.base_url(LOOPBACK.get(bind, bind), sockets[0].getsockname()[1])
    app = make_app(tree, client, make_state(base))
    url = viewer_url(base)
    print(f"neuroglancer: {url}", flush=True)
    if browse:
        open_browser(url)
    http.run_until_stopped(app, sockets, base)
    return 0
