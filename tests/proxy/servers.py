"""Real uvicorn servers on free loopback ports, for tests that need HTTP on the wire.

Each server runs in its own thread with its own event loop, so a test (sync or async) talks to
it over real sockets exactly as a client would, and the ASGI lifespan runs as in production.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from budget_guard.server.connections import BoundedConfig, ConnectionBounds

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


@contextmanager
def serve(app: ASGIApp, **config: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL (``http://127.0.0.1:<port>``).

    The socket is bound before the server starts, so there is no window in which another process
    can take the port. ``config`` is passed to ``uvicorn.Config`` (e.g. ``timeout_keep_alive``).
    """
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every request on a kept-alive connection waits ~40 ms for delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings: dict[str, Any] = {"lifespan": "on", "log_level": "warning", **config}
    keep_alive = settings.pop("timeout_keep_alive", 5)
    # The machinery `budget-guard serve` runs: its parser, its head deadline and size cap.
    server = uvicorn.Server(
        BoundedConfig(app, bounds=ConnectionBounds(), keep_alive_seconds=keep_alive, **settings)
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"uvicorn on port {port} exited before it started")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn on port {port} did not start in {_START_TIMEOUT}s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(_STOP_TIMEOUT)
        sock.close()


def refused_url() -> str:
    """A loopback URL nothing listens on: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
