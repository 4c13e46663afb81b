"""The server behind `llmlab serve`: textual-serve's, on a socket bound beforehand.

Three changes to textual_serve.server.Server: the page's URLs follow the address the browser
used (an SSH tunnel on another local port, a non-local bind; textual-serve writes its own bind
address into the page), a websocket opened by another site's page is refused (browsers let
any page open a websocket to 127.0.0.1, which here would start the app and type into it), and
stopping the server closes its tabs, whose apps exit (a training job one started trains on).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server

from llmlab.serve_command import is_loopback

TAB_CLOSE_TIMEOUT = 20  # seconds a stopping server waits for its tabs' apps to exit


class LabServer(Server):
    """Serves `command` (one process per browser tab) on the listening socket `sock`."""

    def __init__(self, command: str, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(command, host=host, port=port, title="llmlab")
        self.sock = sock
        self.loopback = is_loopback(sock)
        self.tabs: set[asyncio.Task] = set()
        self.stopping = False

    def initialize_logging(self) -> None:
        super().initialize_logging()
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    async def on_startup(self, app: web.Application) -> None:
        pass  # (cmd_serve prints the address once the socket is bound)

    async def on_shutdown(self, app: web.Application) -> None:
        """Close every tab: its app is told to quit and exits."""
        for tab in self.tabs:
            tab.cancel()
        if self.tabs:
            await asyncio.wait(self.tabs, timeout=TAB_CLOSE_TIMEOUT)

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        # (the base handler builds every URL from public_url, without awaiting in between)
        self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.trusted(request):
            raise web.HTTPForbidden(text="llmlab serve: not opened from this server's page")
        tab = asyncio.current_task()
        assert tab is not None
        self.tabs.add(tab)
        try:
            return await super().handle_websocket(request)
        finally:
            self.tabs.discard(tab)

    def trusted(self, request: web.Request) -> bool:
        """The page that opens the websocket came from this server (its Origin is the Host it
        asked for) and, on a loopback bind, through a loopback name: not through a DNS name
        that another site rebound to 127.0.0.1."""
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            return False
        if self.loopback:
            name = urlsplit(f"//{request.host}").hostname or ""
            return name == "localhost" or _is_ip(name)
        return True

    def request_exit(self) -> None:
        """The first SIGINT/SIGTERM stops the server; one more while it closes its tabs is
        ignored (raised then, aiohttp's GracefulExit would end the process with status 1
        midway, leaving the tabs' apps behind)."""
        if not self.stopping:
            self.stopping = True
            super().request_exit()

    def serve(self, debug: bool = False, ready: Callable[[], None] | None = None) -> None:
        """Serve until SIGINT or SIGTERM (textual-serve's, on our socket); `ready` is called
        once a signal would stop the server cleanly (it says where it listens: a caller
        that stops it as soon as it has read that gets a clean stop)."""
        self.debug = debug
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.request_exit)
        if ready is not None:
            ready()
        web.run_app(self._make_app(), sock=self.sock, handle_signals=False, loop=loop,
                    print=None, shutdown_timeout=TAB_CLOSE_TIMEOUT)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
