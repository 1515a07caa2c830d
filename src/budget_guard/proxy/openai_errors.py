"""Answers in OpenAI's error shape, shared by the guard, the proxy and the demo upstream, so
that the OpenAI SDKs raise the right exception (401 AuthenticationError, 429
RateLimitError...) whichever part answered."""

from __future__ import annotations

import orjson
from starlette.types import Send

DOT_SEGMENT_MESSAGE = "The request path must not contain '.' or '..' segments."


def openai_error_body(
    message: str, *, type_: str, code: str | None, param: str | None = None
) -> bytes:
    """The error body OpenAI's API and SDKs use: ``{"error": {message, type, param, code}}``."""
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


async def send_openai_error(
    send: Send,
    status: int,
    message: str,
    *,
    type_: str,
    code: str | None,
    param: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = openai_error_body(message, type_=type_, code=code, param=param)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def has_dot_segment(path: str) -> bool:
    """Whether ``path`` has a ``.`` or ``..`` segment (``%2e%2e`` arrives decoded as ``..``).

    HTTP clients resolve them before a request leaves, so ``/v1/x/../chat/completions`` would
    be metered as an unknown route (free) yet reach the upstream as a chat completion, and
    ``/v1/../admin`` would leave ``/v1/`` altogether: the guard and the proxy refuse them.
    """
    if "/." not in path and not path.startswith("."):
        return False  # every dot segment starts the path or follows a slash
    return any(segment in (".", "..") for segment in path.split("/"))
