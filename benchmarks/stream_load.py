"""The stream benchmark's load generator: hold N concurrent SSE streams, time every chunk.

    python -m benchmarks.stream_load --url http://127.0.0.1:8102 --streams 1000 \
        --ramp 1.0 --deadline 30 --api-key KEY

Each stream is one keep-alive-free HTTP/1.1 connection (raw asyncio, a hand-written chunked
decoder: no HTTP library's CPU in the way) that sends one streamed chat request and reads the
answer to its end. Starts are spread evenly over ``--ramp`` seconds, as real traffic arrives.
For every content chunk the mock upstream wrote its send time (``time.monotonic_ns()``, one
clock for every process on the machine) into the chunk; the delay to the moment this process
reads it is the chunk's latency through the proxy. A stream is *complete* when it got status
200, the usage chunk and ``[DONE]`` within ``--deadline``.

It prints ``OPEN`` on stdout when every stream has its response head (the parent samples the
server's memory then) and, at the end, one JSON line: per-chunk latency and time-to-first-byte
percentiles, completed and failed streams, chunks read, and this process's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import time
from array import array
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

_STAMP = re.compile(rb'"system_fingerprint":"t(\d+)"')


def stream_request(chunks: int | None = None) -> bytes:
    """The benchmark's chat request; ``chunks`` asks the mock upstream for that many chunks."""
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Stream something."}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if chunks:
        body["metadata"] = {"bench_chunks": str(chunks)}
    return orjson.dumps(body)


STREAM_REQUEST = stream_request()
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class _Run:
    """What all streams share: the sample arrays and the counts."""

    def __init__(self, streams: int) -> None:
        self.latency_ns = array("q")
        self.ttfb_ns = array("q")
        self.completed = 0
        self.failed = 0
        self.errors: dict[str, int] = {}
        self.heads = 0
        self.streams = streams
        self.all_open = asyncio.Event()

    def fail(self, reason: str) -> None:
        self.failed += 1
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def head_seen(self) -> None:
        self.heads += 1
        if self.heads == self.streams:
            self.all_open.set()


class _Stream(asyncio.Protocol):
    """One streamed request, decoded as it arrives."""

    def __init__(self, run: _Run, request: bytes, done: asyncio.Future[None]) -> None:
        self._run = run
        self._request = request
        self._done = done
        self._buffer = b""
        self._events = b""
        self._head = True
        self._chunk_left = 0  # bytes of the current chunk still to read (+2 for its CRLF)
        self._sent_ns = 0
        self._complete = False
        self._finished = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._sent_ns = time.monotonic_ns()
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self._buffer += data
        if self._head:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            self._head = False
            self._run.ttfb_ns.append(now - self._sent_ns)
            self._run.head_seen()
            if not head.startswith(b"HTTP/1.1 200"):
                self._finish(f"status {head[9:12].decode(errors='replace')}")
                return
        self._decode(now)

    def _decode(self, now: int) -> None:
        buffer = self._buffer
        while True:
            if self._chunk_left == 0:
                line_end = buffer.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(buffer[:line_end].split(b";", 1)[0], 16)
                buffer = buffer[line_end + 2 :]
                if size == 0:
                    self._complete = self._events.endswith(b"data: [DONE]\n\n")
                    self._buffer = b""
                    self._finish(None if self._complete else "no [DONE]")
                    return
                self._chunk_left = size + 2
            take = min(self._chunk_left, len(buffer))
            payload, buffer = buffer[:take], buffer[take:]
            self._chunk_left -= take
            if self._chunk_left < 2:  # the trailing CRLF is (partly) in payload
                payload = payload[: len(payload) - (2 - self._chunk_left)]
            self._take_events(payload, now)
            if self._chunk_left:
                break
        self._buffer = buffer

    def _take_events(self, payload: bytes, now: int) -> None:
        events = self._events + payload
        cut = events.rfind(b"\n\n")
        if cut < 0:
            self._events = events
            return
        for stamp in _STAMP.findall(events, 0, cut):
            self._run.latency_ns.append(now - int(stamp))
        self._events = events[cut - 12 if cut >= 12 else 0 :]  # keep "[DONE]\n\n" visible

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish("connection lost" if exc is None else type(exc).__name__)

    def _finish(self, error: str | None) -> None:
        if self._finished:
            return
        self._finished = True
        if error is None:
            self._run.completed += 1
        else:
            self._run.fail(error)
        self._transport.close()
        if not self._done.done():
            self._done.set_result(None)


async def _one(run: _Run, host: str, port: int, request: bytes, delay: float) -> None:
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    try:
        await loop.create_connection(lambda: _Stream(run, request, done), host, port)
    except OSError as exc:
        run.fail(f"connect: {type(exc).__name__}")
        run.head_seen()
        return
    await done


def _request(host: str, port: int, path: str, api_key: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\n"
        f"authorization: Bearer {api_key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


def _percentiles_ms(samples: array[int]) -> dict[str, float]:
    if not samples:
        return {str(p): float("nan") for p in PERCENTILES}
    ordered = sorted(samples)
    last = len(ordered) - 1
    return {str(p): ordered[round(p / 100 * last)] / 1e6 for p in PERCENTILES}


async def drive(
    url: str,
    streams: int,
    ramp: float,
    deadline: float,
    api_key: str,
    *,
    path: str = "/v1/chat/completions",
    body: bytes = STREAM_REQUEST,
) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = _request(host, port, path, api_key, body)
    run = _Run(streams)
    started = time.monotonic()
    tasks = [
        asyncio.ensure_future(_one(run, host, port, request, ramp * i / streams))
        for i in range(streams)
    ]

    async def announce() -> None:
        await run.all_open.wait()
        print("OPEN", flush=True)

    announcer = asyncio.ensure_future(announce())
    _, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    announcer.cancel()
    unfinished = len(pending)
    if unfinished:
        run.errors["deadline"] = unfinished
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "streams": streams,
        "completed": run.completed,
        "failed": run.failed + unfinished,
        "errors": run.errors,
        "chunks": len(run.latency_ns),
        "seconds": time.monotonic() - started,
        "latency_ms": _percentiles_ms(run.latency_ns),
        "ttfb_ms": _percentiles_ms(run.ttfb_ns),
        "driver_cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds over which to start")
    parser.add_argument("--deadline", type=float, required=True, help="seconds for everything")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--chunks", type=int, help="ask the mock upstream for N chunks")
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    body = stream_request(args.chunks)
    result = asyncio.run(
        drive(args.url, args.streams, args.ramp, args.deadline, args.api_key, body=body)
    )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
