"""A mock upstream that streams chat chunks at a fixed pace, for the stream benchmark.

    python -m benchmarks.stream_upstream --port 8101 --chunks-per-second 20 --chunks 100

It answers every request (whatever its path) with an OpenAI-shaped chat completion stream:
``--chunks`` content chunks (``"metadata": {"bench_chunks": "N"}`` in the request asks for
another number, a short warm-up: in metadata, which the guard forwards as the client's own
data, as it would not an unknown query parameter on a metered route), one every
``1 / --chunks-per-second`` seconds, then the usage chunk and
``data: [DONE]``. Each content chunk carries the moment it was written
(``time.monotonic_ns()``, system-wide on Linux) in ``system_fingerprint`` as ``t<ns>``, so the
load generator can measure each chunk's delay from the upstream's send to the client's read,
through whatever sits between. The text differs from chunk to chunk (LiteLLM ends a stream
that repeats one chunk 100 times as a model stuck in a loop).

It is raw asyncio, not an ASGI app, so that holding thousands of streams costs the mock little:
one timer per stream, one ``write`` per chunk, keep-alive connections parsed by hand (the
request body is read by its ``content-length`` and ignored). The stream benchmark measures
the proxies, not this.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import time
from collections.abc import Sequence

_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream\r\n"
    b"cache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_CONTENT = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-4o-mini","system_fingerprint":"t%d","choices":[{"index":0,'
    b'"delta":{"content":" w%d"},"logprobs":null,"finish_reason":null}]}\n\n'
)
_LAST = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":20,'
    b'"completion_tokens":%d,"total_tokens":%d}}\n\n'
    b"data: [DONE]\n\n"
)


_ASKED_CHUNKS = re.compile(rb'"bench_chunks":"(\d+)"')


def content_chunk(index: int) -> bytes:
    """The ``index``-th content event, stamped now."""
    return _CONTENT % (time.monotonic_ns(), index)


def last_chunks(chunks: int) -> bytes:
    """The final chunk, the usage chunk and ``[DONE]`` of an answer of ``chunks`` chunks."""
    return _LAST % (chunks, chunks + 20)


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class StreamingUpstream(asyncio.Protocol):
    """One client connection: reads a request, streams the answer, then the next request."""

    def __init__(self, interval: float, chunks: int) -> None:
        self._interval = interval
        self._default_chunks = self._chunks = chunks
        self._buffer = b""
        self._body_left = -1  # -1: reading a head; >= 0: body bytes still to read
        self._body = b""
        self._streaming = False
        self._sent = 0
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._advance()

    def _advance(self) -> None:
        while not self._streaming:
            if self._body_left < 0:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
                self._body_left = _content_length(head)
                self._body = b""
            take = min(self._body_left, len(self._buffer))
            self._body += self._buffer[:take]
            self._buffer = self._buffer[take:]
            self._body_left -= take
            if self._body_left > 0:
                return
            self._body_left = -1
            asked = _ASKED_CHUNKS.search(self._body)
            self._body = b""
            self._chunks = int(asked[1]) if asked else self._default_chunks
            self._start()

    def _start(self) -> None:
        assert self._transport is not None
        self._streaming = True
        self._sent = 0
        self._transport.write(_HEAD)
        self._timer = asyncio.get_running_loop().call_later(self._interval, self._tick)

    def _tick(self) -> None:
        transport = self._transport
        if transport is None:
            return
        self._sent += 1
        if self._sent < self._chunks:
            transport.write(_chunk(content_chunk(self._sent)))
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._tick)
            return
        transport.write(_chunk(content_chunk(self._sent)))
        tokens = self._chunks
        transport.write(_chunk(last_chunks(tokens)) + b"0\r\n\r\n")
        self._timer = None
        self._streaming = False
        self._advance()  # a pipelined next request, if any


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def _serve(port: int, interval: float, chunks: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: StreamingUpstream(interval, chunks), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks-per-second", type=float, default=20.0)
    parser.add_argument("--chunks", type=int, default=100, help="content chunks per stream")
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_serve(args.port, 1.0 / args.chunks_per_second, args.chunks))


if __name__ == "__main__":
    main()
