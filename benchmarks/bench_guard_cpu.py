"""Guard CPU: what the guard's own Python work costs a short chat request, without the network.

The app ``budget-guard serve`` builds (:func:`benchmarks.http_server.proxy_app`: metrics on,
the memory store) and the same routes without the guard (the bare proxy), each with its proxy
route's endpoint replaced by an in-process ASGI upstream that answers the benchmark's chat
request with ``usage``. Requests are driven by calling the app directly (one ASGI call per
request, its body already read), so what is measured is the middleware, the counting, the
store, the metrics and Starlette's routing: the figures the HTTP group's ratios are made of,
without uvicorn, httpx and aiohttp around them.

A busy server pays each of these 2-4x (caches are cold between a request's steps), so this
measures changes, and the HTTP group judges them. Variants measured in the same rounds: the
guard with metrics off, and in strict mode (a reservation and a settle per request).
Figures are process CPU per request, the median of rounds of ``REQUESTS`` requests.

The same for a streamed answer, per chunk: the stream benchmark's request and chunks
(``stream_upstream``), ``STREAM_CHUNKS`` of them and the usage chunk per request, through the
guard (its ``send`` wrapper and the meter reading every event) and through the bare routes.
What the guard adds per chunk there is what the stream benchmark's CPU per chunk and tail
latency are made of, without the sockets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from benchmarks.bench_http import CHAT
from benchmarks.harness import Context, Figure, ainterleave, comparison
from benchmarks.http_server import API_KEY
from benchmarks.stream_load import STREAM_REQUEST
from benchmarks.stream_upstream import content_chunk, last_chunks

GROUP = "guard-cpu"

BARE = "bare routes"
GUARD = "guard, memory"
NO_METRICS = "guard, memory, metrics off"
STRICT = "guard, memory, strict"

_BODY = CHAT.body  # the HTTP group's chat request, byte for byte
_ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Something short."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24},
    }
)
_ANSWER_HEAD: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_ANSWER)).encode()),
    ],
}
_SCOPE: Scope = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/v1/chat/completions",
    "raw_path": b"/v1/chat/completions",
    "query_string": b"",
    "root_path": "",
    "headers": [
        (b"host", b"bench"),
        (b"authorization", f"Bearer {API_KEY}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_BODY)).encode()),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


async def _upstream(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body"):
        pass
    await send(_ANSWER_HEAD)
    await send({"type": "http.response.body", "body": _ANSWER})


STREAM_CHUNKS = 160  # the stream benchmark's 8 s at 20 chunks/s
_STREAM_HEAD: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream")],
}
_CHUNKS = [content_chunk(index) for index in range(STREAM_CHUNKS)]
_LAST_CHUNKS = last_chunks(STREAM_CHUNKS)


async def _streaming_upstream(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body"):
        pass
    await send(_STREAM_HEAD)
    for chunk in _CHUNKS:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": _LAST_CHUNKS, "more_body": False})


def _app(
    *, bare: bool, strict: bool = False, metrics: bool = True, upstream: ASGIApp = _upstream
) -> ASGIApp:
    from benchmarks.http_server import proxy_app

    app: Any = proxy_app(
        "http://127.0.0.1:9",
        "memory://",
        "guard-cpu:",
        strict=strict,
        bare=bare,
        metrics=metrics,
    )
    for route in app.router.routes:
        if isinstance(route, Route) and route.path.startswith("/v1/"):
            route.app = upstream
    return app  # type: ignore[no-any-return]


async def _one(app: ASGIApp, body: bytes = _BODY) -> None:
    delivered = False
    status = 0

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # a client that stays: never a disconnect
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = dict(_SCOPE)
    if body is not _BODY:
        scope["headers"] = [
            *(header for header in _SCOPE["headers"] if header[0] != b"content-length"),
            (b"content-length", str(len(body)).encode()),
        ]
    await app(scope, receive, send)
    if status != 200:
        raise RuntimeError(f"the benchmark's chat request got {status}")


def _sampler(
    app: ASGIApp, requests: int, body: bytes = _BODY, per: int = 1
) -> Callable[[], Awaitable[float]]:
    """CPU per request (``per`` 1) or per chunk (``per`` the chunks of one answer)."""

    async def sample() -> float:
        started = time.process_time()
        for _ in range(requests):
            await _one(app, body)
        return (time.process_time() - started) / (requests * per) * 1e6

    return sample


def run(ctx: Context) -> list[Figure]:
    return asyncio.run(_run(ctx))


async def _run(ctx: Context) -> list[Figure]:
    from budget_guard.counting import preload_encodings

    preload_encodings()  # as the server's start-up does: no first-use build in a sample
    requests = ctx.size(3_000, 20)
    apps = {
        BARE: _app(bare=True),
        GUARD: _app(bare=False),
        NO_METRICS: _app(bare=False, metrics=False),
        STRICT: _app(bare=False, strict=True),
    }
    for app in apps.values():
        for _ in range(ctx.size(200, 2)):
            await _one(app)
    samples = await ainterleave(
        {name: _sampler(app, requests) for name, app in apps.items()},
        ctx.size(9, 1),
    )
    figures = []
    for name in (GUARD, NO_METRICS, STRICT):
        figure = comparison(
            f"CPU per request in-process: {name}",
            samples,
            measured=name,
            baseline=BARE,
            unit="µs",
            target=None,
            detail={"requests_per_round": requests},
        )
        figure.note = f"adds {figure.value - (figure.baseline or 0):.1f} µs to the bare routes"
        figures.append(figure)
    figures.append(await _per_chunk(ctx))
    return figures


async def _per_chunk(ctx: Context) -> Figure:
    streams = ctx.size(100, 2)
    chunks = STREAM_CHUNKS + 1  # and the last write: the usage chunk and [DONE]
    apps = {
        BARE: _app(bare=True, upstream=_streaming_upstream),
        GUARD: _app(bare=False, upstream=_streaming_upstream),
    }
    for app in apps.values():
        for _ in range(ctx.size(10, 1)):
            await _one(app, STREAM_REQUEST)
    samples = await ainterleave(
        {name: _sampler(app, streams, STREAM_REQUEST, chunks) for name, app in apps.items()},
        ctx.size(9, 1),
    )
    figure = comparison(
        f"CPU per streamed chunk in-process: {GUARD}",
        samples,
        measured=GUARD,
        baseline=BARE,
        unit="µs",
        target=None,
        detail={"streams_per_round": streams, "chunks_per_stream": chunks},
    )
    figure.note = f"adds {figure.value - (figure.baseline or 0):.2f} µs per chunk"
    return figure
