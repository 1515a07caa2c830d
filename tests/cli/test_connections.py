"""The bounded protocols in process: only the request head is timed, never a body or a
response (a streamed LLM answer may take minutes), and the log is throttled."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from budget_guard.server.connections import BoundedConfig, ConnectionBounds, ThrottledReport

HEADER_TIMEOUT = 0.5
"""Short: every test below outlasts it several times over."""

PARSERS = ["httptools", "h11"]


async def _slow_stream(request: Request) -> Response:
    async def chunks() -> object:
        for i in range(6):
            await asyncio.sleep(0.3)
            yield f"chunk {i}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


async def _upload(request: Request) -> Response:
    return PlainTextResponse(f"{len(await request.body())} bytes")


APP = Starlette(
    routes=[Route("/stream", _slow_stream), Route("/upload", _upload, methods=["POST"])]
)


@contextmanager
def _serving(http: str) -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = BoundedConfig(
        APP,
        bounds=ConnectionBounds(header_timeout_seconds=HEADER_TIMEOUT, http=http),
        keep_alive_seconds=HEADER_TIMEOUT,
        log_level="warning",
        lifespan="off",
    )
    import uvicorn

    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def _read_all(sock: socket.socket, seconds: float) -> bytes:
    sock.settimeout(seconds)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("http", PARSERS)
def test_a_response_streaming_past_the_header_timeout_is_not_cut(http: str) -> None:
    with _serving(http) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        started = time.monotonic()
        answer = _read_all(sock, 10)
        assert time.monotonic() - started > 3 * HEADER_TIMEOUT
        assert answer.startswith(b"HTTP/1.1 200") and b"chunk 5" in answer


@pytest.mark.parametrize("http", PARSERS)
def test_a_slow_body_is_not_cut_by_the_header_timeout(http: str) -> None:
    with _serving(http) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 6\r\n\r\n"
        )
        for _ in range(6):  # 1.8 s: beyond the header timeout, the body's deadline is not ours
            time.sleep(0.3)
            sock.sendall(b"x")
        answer = _read_all(sock, 10)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"6 bytes")


@pytest.mark.parametrize(("http", "status"), [("httptools", b"431"), ("h11", b"400")])
def test_a_request_head_is_capped_at_16_kib(http: str, status: bytes) -> None:
    with _serving(http) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n")
        for i in range(64):  # up to 64 KiB of header lines, a line at a time
            sock.sendall(f"x-filler-{i}: {'y' * 1000}\r\n".encode())
            # Stop once answered: bytes sent after the server's close would reset the
            # connection before the answer is read.
            if select.select([sock], [], [], 0.02)[0]:
                break
        answer = _read_all(sock, 5)
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:80]


async def test_the_report_writes_one_line_per_interval_and_loses_no_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    report = ThrottledReport(loop, 0.3, lambda: "test")
    with caplog.at_level(logging.WARNING, logger="budget_guard.connections"):
        for _ in range(500):
            report.count("refused")
        for _ in range(7):
            report.count("displaced")
        assert len(caplog.records) == 1
        assert "refused 1 new" in caplog.records[0].getMessage()
        await asyncio.sleep(0.5)
    assert len(caplog.records) == 2
    second = caplog.records[1].getMessage()
    assert "refused 499 new" in second and "closed 7 connection" in second
