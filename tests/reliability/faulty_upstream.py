"""An OpenAI-shaped upstream that fails on purpose, chosen by the last message's text.

- ``fail-500``: a 500 with OpenAI's error body and no usage.
- ``slow``: no answer for ``stall`` seconds (the proxy's timeout ends it first: 504).
- ``cut``: a chat stream that dies after :data:`PRODUCED` (the process "crashes": the
  connection is dropped without the end of the chunked body).
- ``stall``: a chat stream that stops sending after :data:`PRODUCED` and never ends.
- ``cut-json``: a JSON answer that declares its length and dies half-way through it.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.types import Receive, Scope, Send

PRODUCED = ("Hello", " there", ", friend")
"""The text every broken stream sends before it breaks."""
FULL_ANSWER = "Hello there, friend. This sentence is never delivered in full."


class UpstreamCrashed(Exception):
    """Raised inside the app to make uvicorn drop the connection mid-response."""


class FaultyUpstream:
    def __init__(self, *, stall: float = 5.0) -> None:
        self.stall = stall

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].replace("lifespan.", "")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        scenario = orjson.loads(body)["messages"][-1]["content"]
        handler = {"stall": self.stall_stream}.get(scenario) or getattr(
            self, scenario.replace("-", "_")
        )
        await handler(send)

    async def fail_500(self, send: Send) -> None:
        error = {"error": {"message": "The server had an error", "type": "server_error"}}
        await _json(send, 500, orjson.dumps(error))

    async def slow(self, send: Send) -> None:
        await asyncio.sleep(self.stall)
        await _json(send, 200, orjson.dumps(_completion(FULL_ANSWER)))

    async def cut(self, send: Send) -> None:
        await self._stream_produced(send)
        raise UpstreamCrashed("the upstream died mid-stream")

    async def stall_stream(self, send: Send) -> None:
        await self._stream_produced(send)
        await asyncio.sleep(self.stall)

    async def cut_json(self, send: Send) -> None:
        whole = orjson.dumps(_completion(FULL_ANSWER))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(whole)).encode()),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": whole[: len(whole) // 2], "more_body": True}
        )
        raise UpstreamCrashed("the upstream died mid-body")

    async def _stream_produced(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for i, text in enumerate(PRODUCED):
            delta = {"role": "assistant", "content": text} if i == 0 else {"content": text}
            chunk = {
                "id": "chatcmpl-broken",
                "object": "chat.completion.chunk",
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            event = b"data: " + orjson.dumps(chunk) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
            await asyncio.sleep(0.02)


def _completion(text: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-whole",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 14, "total_tokens": 23},
    }


async def _json(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
