"""Small upstream ASGI apps that let proxy tests see what reached the upstream and when.

They run in a uvicorn thread, so what they observe is shared with the test through
`threading.Event`s and plain attributes, never through an event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Generous ceilings so a broken proxy fails a test instead of hanging it; never reached when the
# proxy works.
SAFETY_TIMEOUT = 10.0


async def _read_body(receive: Receive) -> bytes:
    body = b""
    more_body = True
    while more_body:
        message = await receive()
        body += message.get("body", b"")
        more_body = message.get("more_body", False)
    return body


async def _send_json(send: Send, payload: object, headers: list[tuple[bytes, bytes]]) -> None:
    body = orjson.dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _start_event_stream(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class EchoUpstream:
    """Answers every request with what it received: method, path, query, headers and body digest.

    Its answer also carries headers a proxy must not pass back (Keep-Alive, one named by
    Connection, Set-Cookie) beside ones it must (x-request-id, openai-processing-ms).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        await _send_json(
            send,
            {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode(),
                "headers": [[name.decode(), value.decode()] for name, value in scope["headers"]],
                "body_length": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            },
            [
                (b"x-request-id", b"req_echo"),
                (b"openai-processing-ms", b"7"),
                (b"keep-alive", b"timeout=5"),
                (b"connection", b"x-upstream-hop"),
                (b"x-upstream-hop", b"secret"),
                (b"set-cookie", b"__cf_bm=upstream-session; Path=/"),
            ],
        )


class HangingUpstream:
    """Never answers; records when the proxy gives up on it by closing the connection."""

    def __init__(self) -> None:
        self.requests = 0
        self.disconnected = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        await _read_body(receive)
        await asyncio.wait_for(_wait_for_disconnect(receive), SAFETY_TIMEOUT)
        self.disconnected.set()


class EndlessStreamUpstream:
    """Streams an SSE event every ``interval`` seconds until the client leaves.

    ``disconnected`` is set when the proxy closes the upstream connection; ``events_sent`` tells
    how far the stream got.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.events_sent = 0
        self.disconnected = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await _read_body(receive)
        await _start_event_stream(send)
        watcher = asyncio.create_task(_wait_for_disconnect(receive))
        try:
            deadline = asyncio.get_running_loop().time() + SAFETY_TIMEOUT
            while not watcher.done() and asyncio.get_running_loop().time() < deadline:
                self.events_sent += 1
                event = f'data: {{"n": {self.events_sent}}}\n\n'.encode()
                await send({"type": "http.response.body", "body": event, "more_body": True})
                await asyncio.wait([watcher], timeout=self.interval)
            if watcher.done():
                self.disconnected.set()
        finally:
            watcher.cancel()


class LingeringStreamUpstream:
    """Streams a chat completion up to ``data: [DONE]``, then keeps the response open for
    ``linger`` seconds before ending it, as a slow upstream or proxy may: the OpenAI SDK has
    its whole answer at [DONE] and stops reading there."""

    def __init__(self, text: str, linger: float = 3.0) -> None:
        self.text = text
        self.linger = linger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await _read_body(receive)
        await _start_event_stream(send)
        chunk = {
            "id": "chatcmpl-linger",
            "object": "chat.completion.chunk",
            "created": 1730000000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": self.text}, "finish_reason": None}],
        }
        events = b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"
        await send({"type": "http.response.body", "body": events, "more_body": True})
        watcher = asyncio.create_task(_wait_for_disconnect(receive))
        try:
            await asyncio.wait([watcher], timeout=self.linger)
        finally:
            watcher.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class ReasoningStreamUpstream:
    """A reasoning model's chat stream, shaped as OpenAI sends it: the visible ``text`` is a
    few tokens, but it reports ``reasoning_tokens`` more as completion tokens, and only when
    the request sets ``stream_options.include_usage`` (then with ``"usage": null`` on every
    other chunk). ``bodies`` keeps each request body it received."""

    def __init__(self, text: str, *, prompt_tokens: int = 12, reasoning_tokens: int = 600):
        self.text = text
        self.prompt_tokens = prompt_tokens
        self.reasoning_tokens = reasoning_tokens
        self.bodies: list[dict[str, object]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = orjson.loads(await _read_body(receive))
        self.bodies.append(request)
        options = request.get("stream_options") or {}
        with_usage = options.get("include_usage") is True
        await _start_event_stream(send)
        base = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "model": "o3"}
        if with_usage:
            base["usage"] = None
        for delta, reason in (({"content": self.text}, None), ({}, "stop")):
            choice = {"index": 0, "delta": delta, "finish_reason": reason}
            event = b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if with_usage:
            completion = 5 + self.reasoning_tokens
            usage = {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion,
                "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            }
            event = b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


class BrokenStreamUpstream:
    """Starts an event stream, then drops the connection without finishing it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await _read_body(receive)
        await _start_event_stream(send)
        await send({"type": "http.response.body", "body": b"data: {}\n\n", "more_body": True})
        # Returning now, mid-response, makes uvicorn close the connection.


class SendObserver:
    """Wraps an app and records when it sends the last body message of a response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.last_body_sent = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def observed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.last_body_sent.set()

        await self.app(scope, receive, observed_send)
