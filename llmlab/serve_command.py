"""`llmlab serve`: the app in a browser, through Textual's own serving (textual-serve).

Each browser tab that opens the page starts its own `llmlab SESSION` process, drawn by xterm.js
in the tab; closing the tab ends that process. Trainings are jobs of their own (core/launch.py),
so a tab attaches to the same runs as a terminal does and closing it leaves them training.

The server is bound to 127.0.0.1 unless asked otherwise: whoever reaches the port gets the full
app (it reads and writes files as the user who started it). The socket is bound here, before
the server starts, so a port in use or an unknown host is one line and exit 2, and port 0 picks
a free port whose address is the one printed.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import shlex
import socket
import sys
from functools import partial
from pathlib import Path

from core.errors import LlmlabError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000


def add_parser(sub) -> None:
    serve = sub.add_parser(
        "serve", help="serve the app in a browser: each tab runs `llmlab SESSION`",
        description="Serve the full-screen app to a web browser (Textual's textual-serve). Each "
                    "browser tab runs its own app on SESSION; trainings are jobs, so closing a "
                    "tab leaves them running. Bound to 127.0.0.1: from another machine use an "
                    "SSH tunnel (ssh -L 8000:127.0.0.1:8000 HOST).")
    serve.add_argument("session", nargs="?", metavar="SESSION.toml",
                       help="session file (default: the shipped session)")
    serve.add_argument("--port", default=str(DEFAULT_PORT),
                       help=f"TCP port (default: {DEFAULT_PORT}; 0 picks a free one)")
    serve.add_argument("--host", default=DEFAULT_HOST,
                       help=f"address to listen on (default: {DEFAULT_HOST}, this machine only)")


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from llmlab.lab_server import LabServer
    except ImportError:  # (an install without the dependency)
        raise LlmlabError("llmlab serve needs textual-serve: pip install textual-serve") from None
    command = app_command(args.session)
    port = parse_port(args.port)
    sock = bind(args.host, port)
    address = url_of(sock)
    if not is_loopback(sock):
        print(f"llmlab serve: warning: listening on {address}, not this machine alone: anyone "
              "who reaches the port gets the full app (no shell, but your files); prefer "
              "127.0.0.1 and an SSH tunnel", file=sys.stderr)
    if ipaddress.ip_address(sock.getsockname()[0]).is_unspecified:  # (every interface)
        address += f" (from elsewhere: {url_of(sock, socket.gethostname())})"
    ready = f"llmlab serve: {address} (each browser tab runs the app; ctrl+c stops the server)"
    LabServer(command, sock).serve(ready=partial(print, ready, flush=True))
    return 0


def app_command(session: str | None) -> str:
    """The shell command each tab runs: this Python's `llmlab [SESSION]` (so the tab gets
    the same installation and PYTHONPATH as the server). A session that does not load is
    refused here, with its problems, rather than in every tab."""
    words = [sys.executable, "-m", "llmlab"]
    if session is not None:
        from core.session import load_session

        path = Path(session).resolve()
        load_session(path)  # raises SessionError: one line per problem, exit 2
        words.append(str(path))
    return shlex.join(words)


def parse_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise LlmlabError(f"--port {text!r}: not a port number (0-65535; 0 picks a free one)")
    return port


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one line saying why not."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        cause = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise LlmlabError(f"--host {host!r}: not an address of this machine ({cause})") \
            from None
    family, _type, _proto, _name, address = infos[0]
    try:
        return socket.create_server(address, family=family, backlog=128)
    except OSError as e:
        causes = {errno.EADDRINUSE: "in use (another server? choose another with --port)",
                  errno.EADDRNOTAVAIL: "not an address of this machine",
                  errno.EACCES: "permission denied (ports below 1024 need root)"}
        cause = causes.get(e.errno, e.strerror or str(e))
        raise LlmlabError(f"port {port} on {host}: {cause}") from None


def url_of(sock: socket.socket, name: str | None = None) -> str:
    """The address `sock` listens on, as a URL (with host `name` instead, if given)."""
    host, port = sock.getsockname()[:2]
    host = name or host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def is_loopback(sock: socket.socket) -> bool:
    return ipaddress.ip_address(sock.getsockname()[0]).is_loopback

