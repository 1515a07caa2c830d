"""Reading a guarded request's body whole, within a size cap and a deadline.

The guard must count a body before anything reaches the upstream, so it reads it first; a
client must not be able to make it hold more than ``max_body_bytes`` or wait forever.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Receive

from budget_guard.eager import receive_with_deadline


class ClientGone(Exception):
    """The client left before its body arrived: nothing to answer, nothing forwarded."""


class BodyRefused(Exception):
    """The body is over the cap (413) or too slow to arrive (408). ``close``: part of it is
    still unread, so the connection must close rather than wait for it."""

    def __init__(self, status: int, *, close: bool) -> None:
        super().__init__(status)
        self.status = status
        self.close = close


async def read_body(receive: Receive, headers: Headers, *, cap: int, seconds: float) -> bytes:
    """The whole request body, read within ``seconds`` and never held past ``cap``. A body
    that passes the cap as it arrives is drained (discarded) to its end, so a client that
    sends it whole still reads a clean 413 on an open connection."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        # The server in front discards exactly the declared bytes itself.
        raise BodyRefused(413, close=False)
    chunks: list[bytes] = []
    size = 0
    bounded = receive_with_deadline(receive, seconds)
    while True:
        try:
            message = await bounded()
        except TimeoutError:
            # The server in front would wait for the rest forever: stop, and hang up.
            raise BodyRefused(413 if size > cap else 408, close=True) from None
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > cap:
                chunks.clear()
            else:
                chunks.append(chunk)
        if not message.get("more_body", False):
            if size > cap:
                raise BodyRefused(413, close=False)
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
