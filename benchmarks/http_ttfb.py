"""Time to first byte of a streamed answer, read off a raw socket.

A client library buffers and parses before it hands anything over, which would add its own
time to both sides; this client writes the request bytes itself and stops the clock when the
first byte of the body (the first server-sent event's chunk) arrives. It then drains the rest
of the chunked answer, so every request is complete before the next one goes on the same
keep-alive connection.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit


class StreamFailed(RuntimeError):
    """The server did not answer 200 with a chunked body."""


def raw_request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_head(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, rest = head.partition(b"\r\n")
    if b" 200 " not in status_line + b" ":
        raise StreamFailed(status_line.decode("latin-1"))
    if b"transfer-encoding: chunked" not in rest.lower():
        raise StreamFailed("the answer is not streamed (no chunked transfer encoding)")


async def _drain_chunks(reader: asyncio.StreamReader, first_size_line: bytes) -> None:
    size_line = first_size_line
    while True:
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # the empty trailer
            return
        await reader.readexactly(size + 2)
        size_line = await reader.readuntil(b"\r\n")


async def time_to_first_byte(base_url: str, request_bytes: bytes, requests: int) -> list[float]:
    """TTFB of ``requests`` streamed answers in a row on one connection, in milliseconds."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    samples: list[float] = []
    try:
        for _ in range(requests):
            sent = time.perf_counter()
            writer.write(request_bytes)
            await _read_head(reader)
            first = await reader.readuntil(b"\r\n")  # the first chunk's size line
            samples.append((time.perf_counter() - sent) * 1000)
            await _drain_chunks(reader, first)
    finally:
        writer.close()
        await writer.wait_closed()
    return samples
