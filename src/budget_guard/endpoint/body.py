"""Reading a request body with a hard size cap.

The cap is enforced twice: a declared ``Content-Length`` over it is refused before a byte is
read, and a chunked body is counted as it arrives and abandoned the moment it passes the cap,
so no client can make the endpoint hold more than ``limit`` bytes of one request.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Receive

__all__ = ["BodyTooLarge", "ClientDisconnected", "declared_too_large", "read_capped"]


class BodyTooLarge(Exception):
    """The body is (or would become) larger than the cap; answer 413."""


class ClientDisconnected(Exception):
    """The client went away mid-body; there is nobody left to answer."""


def declared_too_large(headers: Mapping[str, str], limit: int) -> bool:
    """Whether ``Content-Length`` already says the body is over ``limit``.

    A malformed value is left to the reader: the server in front (h11, httptools) refuses it
    itself, and if it did not, the streamed byte count is still capped.
    """
    declared = headers.get("content-length", "").strip()
    return declared.isdigit() and int(declared) > limit


async def read_capped(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
