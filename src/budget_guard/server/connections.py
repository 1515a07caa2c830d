"""Bounds on client connections: a request-head deadline and a cap on open connections.

uvicorn arms its only connection timer (``timeout_keep_alive``) when a response completes and
cancels it on the next byte received, so a connection that sends nothing, or trickles its
request head a byte at a time, is never closed; and it accepts connections until the process
runs out of file descriptors, after which asyncio logs every failing ``accept()``. This
module closes those gaps in uvicorn's own protocol class, passed as ``http=``:

* **Header deadline.** While a connection waits for a request head (from the connect, or
  from the end of the previous response) it has ``header_timeout_seconds`` to deliver one,
  however it dribbles in; then it is closed. Bodies and responses are not timed here: the
  guard bounds bodies, and a streamed LLM answer may run for minutes.
* **Connection cap.** At ``max_connections`` a new connection displaces the connection that
  has waited longest for a request head (idle and slow clients cost least to drop; nginx
  drains its idle keep-alive connections the same way), so a flood of idle sockets cannot
  lock out a real client or ``/healthz``. Only when every connection is busy with a request is
  the newcomer refused, with a 503 written before the close.
* **Bounded log.** Refusals, displacements and failing ``accept()`` calls are counted and
  reported in one line at most every ``log_every_seconds``, never one line each.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

logger = logging.getLogger("budget_guard.connections")

REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: 43\r\n"
    b"\r\n"
    b"Too many open connections; retry shortly.\r\n"
)
"""The whole answer to a refused connection, written without parsing a request: the client
learns it was turned away (and when to retry) instead of seeing a bare reset."""

MAX_HEAD_BYTES = 16 * 1024
"""The most a request head may take (h11's own default limit, applied to httptools too)."""

HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: 34\r\n"
    b"\r\n"
    b"Request head larger than 16 KiB.\r\n"
)

_ACCEPT_FAILED = "socket.accept() out of system resource"
"""asyncio's message (one traceback each, every second per listening socket) when accept()
fails for want of file descriptors or memory."""

_PHRASES = {
    "displaced": "closed {n} connection(s) still waiting for a request head to make room",
    "refused": "refused {n} new connection(s) with a 503, every connection busy with a request",
    "accept_failed": "accept() failed {n} time(s): out of file descriptors or memory",
}


@dataclass(frozen=True)
class ConnectionBounds:
    header_timeout_seconds: float = 10.0
    max_connections: int = 2048
    log_every_seconds: float = 10.0
    http: str = "httptools"
    """Which of uvicorn's HTTP/1.1 parsers serves (see :data:`PROTOCOLS`)."""


class BoundedConfig(uvicorn.Config):
    """A uvicorn ``Config`` that serves with a bounded protocol and carries the bounds to it
    (the config is pickled to each ``--workers`` process, the bounds with it)."""

    def __init__(
        self,
        app: Any,
        *,
        bounds: ConnectionBounds,
        keep_alive_seconds: float,
        **options: Any,
    ) -> None:
        super().__init__(
            app,
            http=PROTOCOLS[bounds.http],
            # The plain asyncio loop even where uvloop is installed: the accept-failure report
            # above hooks asyncio's exception handler, and the bounds are tested on asyncio.
            loop="asyncio",
            # No WebSocket routes: an upgrade would hand the socket to a protocol that the
            # book below does not track.
            ws="none",
            # uvicorn types it as int, but only ever hands it to loop.call_later.
            timeout_keep_alive=keep_alive_seconds,  # type: ignore[arg-type]
            **options,
        )
        self.bounds = bounds


class ThrottledReport:
    """Counts events and logs them in one line at most every ``every`` seconds: under a flood
    the log grows by a line per interval, not a line per connection, and no count is lost
    (a line still owed is written by a timer when the interval is up)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        every: float,
        describe: Callable[[], str],
    ) -> None:
        self._loop = loop
        self._every = every
        self._describe = describe
        self._counts: Counter[str] = Counter()
        self._last = float("-inf")
        self._pending: asyncio.TimerHandle | None = None

    def count(self, event: str) -> None:
        self._counts[event] += 1
        if self._pending is not None:
            return
        wait = self._last + self._every - self._loop.time()
        if wait <= 0:
            self.flush()
        else:
            self._pending = self._loop.call_later(wait, self.flush)

    def flush(self) -> None:
        self._pending = None
        if not self._counts:
            return
        self._last = self._loop.time()
        parts = [_PHRASES[event].format(n=n) for event, n in sorted(self._counts.items())]
        self._counts.clear()
        logger.warning(
            "connection bound: %s; %s (at most one such line every %g s)",
            self._describe(),
            "; ".join(parts),
            self._every,
        )


class ConnectionBook:
    """One worker's open client connections, and which of them wait for a request head,
    oldest first (a dict keeps insertion order: the first key is the one to displace)."""

    def __init__(self, bounds: ConnectionBounds, loop: asyncio.AbstractEventLoop) -> None:
        self.limit = bounds.max_connections
        self._open: set[_Bounded] = set()
        self._waiting: dict[_Bounded, None] = {}
        self.report = ThrottledReport(loop, bounds.log_every_seconds, self._describe)
        self._watch_accept_failures(loop)

    def admit(self, connection: _Bounded) -> bool:
        """Whether ``connection`` may stay open; displaces a waiting one to make room."""
        if len(self._open) >= self.limit:
            victim = next(iter(self._waiting), None)
            if victim is None:
                self.report.count("refused")
                return False
            self.forget(victim)
            victim.close_waiting()
            self.report.count("displaced")
        self._open.add(connection)
        return True

    def waiting(self, connection: _Bounded) -> None:
        if connection in self._open:
            self._waiting[connection] = None

    def busy(self, connection: _Bounded) -> None:
        self._waiting.pop(connection, None)

    def forget(self, connection: _Bounded) -> None:
        self._open.discard(connection)
        self._waiting.pop(connection, None)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def _describe(self) -> str:
        return f"{len(self._open)} of {self.limit} connections open in this worker"

    def _watch_accept_failures(self, loop: asyncio.AbstractEventLoop) -> None:
        """Route asyncio's failing-accept() reports into the throttled line. The cap keeps the
        worker below its descriptor limit, but descriptors can still run out (other
        processes' share of a system-wide limit, a leak); then asyncio would log a traceback
        per listening socket every second."""
        previous = loop.get_exception_handler()

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if str(context.get("message", "")).startswith(_ACCEPT_FAILED):
                self.report.count("accept_failed")
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handle)


_books: WeakKeyDictionary[ServerState, ConnectionBook] = WeakKeyDictionary()


def _book_for(
    state: ServerState, bounds: ConnectionBounds, loop: asyncio.AbstractEventLoop
) -> ConnectionBook:
    """The worker's one book: uvicorn shares a ``ServerState`` among a server's connections."""
    book = _books.get(state)
    if book is None:
        book = _books[state] = ConnectionBook(bounds, loop)
    return book


class _Bounded(asyncio.Protocol):
    """The bounds, mixed into either of uvicorn's HTTP/1.1 protocols (both keep the request
    in flight as ``self.cycle``, with ``response_complete`` set once it is answered)."""

    # Provided by the uvicorn protocol this is mixed into.
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)  # type: ignore[call-arg]
        bounds = getattr(config, "bounds", None) or ConnectionBounds()
        self._book = _book_for(server_state, bounds, self.loop)
        self._header_timeout = bounds.header_timeout_seconds
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._refused = False
        self._displaceable = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._book.admit(self):
            self._refused = True
            transport.write(REFUSAL)
            transport.close()
            return
        self._track()
        # Displaceable only from the second loop iteration on. A burst accepted while the
        # loop was busy gets connection_made for every connection before any data_received,
        # so a client whose request already waits in its socket would look idle; by the time
        # the inner callback runs, the reader registered with connection_made has been polled
        # once and any pending head parsed (asyncio runs reader callbacks queued by a poll
        # after the callbacks queued before it).
        self.loop.call_soon(self.loop.call_soon, self._become_displaceable)

    def _become_displaceable(self) -> None:
        self._displaceable = True
        if self._head_deadline is not None and not self.transport.is_closing():
            self._book.waiting(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._book.forget(self)
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        cycle = self.cycle
        if self._head_deadline is not None and (cycle is None or not cycle.more_body):
            # Only bytes between messages are a head; the rest of a body the app answered
            # before reading (a 413 on its declared length) is the parser's to discard.
            self._head_bytes += len(data)
        super().data_received(data)  # type: ignore[misc]
        self._track()
        if self._head_deadline is not None and self._head_bytes > MAX_HEAD_BYTES:
            # Still no complete head after this many bytes: httptools would keep collecting
            # header lines without limit (h11 stops at the same size with a 400 itself).
            self._cancel_deadline()
            self._book.forget(self)
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._track()

    def close_waiting(self) -> None:
        """Close a connection that is waiting for a request head (deadline or displaced)."""
        self._cancel_deadline()
        self._book.forget(self)
        if not self.transport.is_closing():
            self.transport.close()

    def _track(self) -> None:
        """Busy (a request head is in, its response not finished): no deadline. Waiting for
        a head: a deadline armed once, when the wait began, not re-armed by each byte."""
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._cancel_deadline()
            self._book.busy(self)
        elif self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self._header_timeout, self.close_waiting)
            self._head_bytes = 0
            if self._displaceable:
                self._book.waiting(self)

    def _cancel_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None


class BoundedH11Protocol(_Bounded, H11Protocol):
    """uvicorn's h11 protocol (pure Python, strict parser) with the bounds."""


class BoundedHttpToolsProtocol(_Bounded, HttpToolsProtocol):
    """uvicorn's httptools protocol (llhttp, the parser Node.js uses) with the bounds."""


PROTOCOLS: dict[str, type[asyncio.Protocol]] = {
    "httptools": BoundedHttpToolsProtocol,
    "h11": BoundedH11Protocol,
}
