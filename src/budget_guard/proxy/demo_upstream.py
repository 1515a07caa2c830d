"""A built-in OpenAI-compatible upstream, so budget-guard can be tried without an API key.

It answers the endpoints a chat backend uses — ``POST /v1/chat/completions``, ``/v1/responses``,
``/v1/completions``, ``/v1/embeddings`` and ``GET /v1/models`` — streaming and not, in OpenAI's
wire format. The text is fixed for a given request shape (it says how many messages it got), and
the usage numbers are real: input tokens are what ``budget_guard.counting`` gives for the request
(OpenAI's documented rules, with the encoding OpenAI uses for the requested model, ``o200k_base``
when it is unknown), output tokens are tiktoken's count of the reply text. So a guard in front
records the same numbers whether it trusts the upstream's usage or its own count.

Like OpenAI, a chat or completions stream carries a final usage chunk only when
``stream_options.include_usage`` is true; ``response.completed`` always carries usage.
``max_tokens``/``max_completion_tokens``/``max_output_tokens`` cut the reply, as upstream.

It is also the benchmark upstream, so the per-request work is small: pure ASGI, orjson, and the
fixed reply's tokens are encoded once per (encoding, message count, token limit).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import random
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import lru_cache
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from budget_guard.counting.chat_request import count_chat_request
from budget_guard.counting.encoding_lookup import (
    DEFAULT_ENCODING,
    count_text,
    encoding_for_model,
    get_encoding,
)
from budget_guard.counting.errors import InvalidRequestBody
from budget_guard.counting.prompt_request import (
    count_completions_request,
    count_embeddings_request,
)
from budget_guard.counting.responses_request import count_responses_request
from budget_guard.proxy.openai_errors import openai_error_body

__all__ = ["DEMO_MODELS", "create_demo_upstream"]

DEMO_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
_DEFAULT_EMBEDDING_DIMENSIONS = 8
_MAX_EMBEDDING_DIMENSIONS = 3072

_JSON = b"application/json"
_SSE = b"text/event-stream"

JSONObject = dict[str, Any]


class _ClientGone(Exception):
    """The caller hung up before its request body arrived."""


class _BadRequest(Exception):
    """The request cannot be answered; the message is shown to the caller as OpenAI would."""

    def __init__(self, message: str, *, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def create_demo_upstream(*, chunk_delay: float = 0.0) -> ASGIApp:
    """Build the demo upstream; ``chunk_delay`` seconds separate streamed events.

    The delay makes streaming visible (and lets tests prove a proxy in front does not buffer).
    """
    if chunk_delay < 0:
        raise ValueError(f"chunk_delay must not be negative, not {chunk_delay}")
    return _DemoUpstream(chunk_delay)


class _DemoUpstream:
    def __init__(self, chunk_delay: float) -> None:
        self.chunk_delay = chunk_delay
        self._ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        exchange = _Exchange(self, receive, send)
        try:
            await exchange.answer(scope["method"], scope["path"])
        except _BadRequest as exc:
            body = openai_error_body(str(exc), type_="invalid_request_error", code=exc.code)
            await exchange.send_body(body, status=exc.status)
        except InvalidRequestBody as exc:
            body = openai_error_body(
                exc.message, type_="invalid_request_error", code="invalid_value", param=exc.param
            )
            await exchange.send_body(body, status=400)
        except _ClientGone:
            pass


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # Build the default encoding now, off the event loop, so no request waits for it.
            await asyncio.to_thread(get_encoding, DEFAULT_ENCODING)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class _Exchange:
    """One request: reads the JSON body, writes a JSON answer or an event stream."""

    def __init__(self, app: _DemoUpstream, receive: Receive, send: Send) -> None:
        self.app = app
        self.receive = receive
        self.send = send
        self.request_id = next(app._ids)

    async def answer(self, method: str, path: str) -> None:
        if path == "/v1/models" and method == "GET":
            await self.send_json(_models())
            return
        handler = _HANDLERS.get(path)
        if handler is None:
            raise _BadRequest(
                f"Unknown request URL: {method} {path}.", status=404, code="unknown_url"
            )
        if method != "POST":
            raise _BadRequest(
                f"Method {method} is not allowed on {path}.", status=405, code="method_not_allowed"
            )
        request = await self.read_json()
        model = request.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest(
                "you must provide a model parameter", code="missing_required_parameter"
            )
        await handler(self, request, model)

    async def read_json(self) -> JSONObject:
        body = b""
        more_body = True
        while more_body:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _BadRequest("We could not parse the JSON body of your request.") from None
        if not isinstance(request, dict):
            raise _BadRequest("The request body must be a JSON object.")
        return request

    async def send_json(self, payload: Any) -> None:
        await self.send_body(orjson.dumps(payload), status=200)

    async def send_body(self, body: bytes, *, status: int) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": self._headers(_JSON, (b"content-length", str(len(body)).encode())),
            }
        )
        await self.send({"type": "http.response.body", "body": body})

    async def send_events(self, events: Iterator[bytes]) -> None:
        """Stream server-sent events, pausing ``chunk_delay`` between them."""
        await self.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": self._headers(_SSE, (b"cache-control", b"no-cache")),
            }
        )
        delay = self.app.chunk_delay
        gone = asyncio.Event()
        watcher = asyncio.create_task(self._watch_disconnect(gone)) if delay else None
        try:
            for index, event in enumerate(events):
                if index and delay and await _stopped_during(gone, delay):
                    return  # the client left: stop generating, as a real upstream would
                await self.send({"type": "http.response.body", "body": event, "more_body": True})
            await self.send({"type": "http.response.body", "body": b""})
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _watch_disconnect(self, gone: asyncio.Event) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        gone.set()

    def _headers(
        self, content_type: bytes, extra: tuple[bytes, bytes]
    ) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", content_type),
            extra,
            (b"x-request-id", f"req_demo_{self.request_id}".encode()),
        ]

    def new_id(self, prefix: str) -> str:
        return f"{prefix}demo{self.request_id:08d}"


async def _stopped_during(gone: asyncio.Event, delay: float) -> bool:
    try:
        await asyncio.wait_for(gone.wait(), delay)
    except TimeoutError:
        return False
    return True


# --- the fixed reply -------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _reply(encoding_name: str, subject: str, limit: int | None) -> tuple[tuple[str, ...], int]:
    """The fixed reply about ``subject``, cut to ``limit`` tokens: its stream pieces and its count.

    The count is the cut text re-encoded, which is what a client-side count of the streamed text
    gives, so the upstream's usage and budget-guard's own count agree.
    """
    encoding = get_encoding(encoding_name)
    text = (
        f"Hello from the budget-guard demo upstream. You sent {subject}; "
        "this answer is always the same for that, so its token count is too."
    )
    tokens = encoding.encode_ordinary(text)[:limit]
    pieces = tuple(encoding.decode([token]) for token in tokens)
    return pieces, count_text(encoding, "".join(pieces))


def _inputs(prompt: Any) -> list[Any]:
    """The separate inputs in a ``prompt``/``input``: a list of strings or token arrays, or one."""
    if isinstance(prompt, list) and prompt and all(isinstance(item, str | list) for item in prompt):
        return prompt
    return [prompt]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _limit(request: JSONObject, *names: str) -> int | None:
    for name in names:
        value = request.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _finish_reason(pieces: tuple[str, ...], limit: int | None) -> str:
    return "length" if limit is not None and len(pieces) >= limit else "stop"


def _sse(payload: JSONObject, event: str | None = None) -> bytes:
    data = b"data: " + orjson.dumps(payload) + b"\n\n"
    return b"event: " + event.encode() + b"\n" + data if event else data


_DONE = b"data: [DONE]\n\n"


def _wants_usage_chunk(request: JSONObject) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


# --- endpoints ---------------------------------------------------------------------------------


def _models() -> JSONObject:
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": 0, "owned_by": "budget-guard-demo"}
            for model in DEMO_MODELS
        ],
    }


async def _chat_completions(exchange: _Exchange, request: JSONObject, model: str) -> None:
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty array.", code="invalid_value")
    encoding = encoding_for_model(model)
    prompt = count_chat_request(request, encoding)
    limit = _limit(request, "max_completion_tokens", "max_tokens")
    pieces, completion = _reply(encoding.name, _plural(len(messages), "message"), limit)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    base = {
        "id": exchange.new_id("chatcmpl-"),
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_demo",
    }
    finish_reason = _finish_reason(pieces, limit)
    if not request.get("stream"):
        message = {"role": "assistant", "content": "".join(pieces), "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        await exchange.send_json(
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        )
        return

    with_usage = _wants_usage_chunk(request)
    chunk = {**base, "object": "chat.completion.chunk"}
    if with_usage:
        chunk["usage"] = None  # OpenAI marks every chunk but the last as usage-less

    def events() -> Iterator[bytes]:
        def delta(content: JSONObject, reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": content, "logprobs": None, "finish_reason": reason}
            return _sse({**chunk, "choices": [choice]})

        yield delta({"role": "assistant", "content": "", "refusal": None})
        for piece in pieces:
            yield delta({"content": piece})
        yield delta({}, finish_reason)
        if with_usage:
            yield _sse({**chunk, "choices": [], "usage": usage})
        yield _DONE

    await exchange.send_events(events())


async def _completions(exchange: _Exchange, request: JSONObject, model: str) -> None:
    if "prompt" not in request:
        raise _BadRequest("'prompt' is a required property.", code="missing_required_parameter")
    encoding = encoding_for_model(model)
    prompt = count_completions_request(request, encoding)
    limit = _limit(request, "max_tokens") or 16  # OpenAI's documented default for completions
    pieces, completion = _reply(
        encoding.name, _plural(len(_inputs(request["prompt"])), "prompt"), limit
    )
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    base = {
        "id": exchange.new_id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
    }
    finish_reason = _finish_reason(pieces, limit)
    if not request.get("stream"):
        choice = {
            "text": "".join(pieces),
            "index": 0,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        await exchange.send_json({**base, "choices": [choice], "usage": usage})
        return

    with_usage = _wants_usage_chunk(request)

    def events() -> Iterator[bytes]:
        for piece in pieces:
            choice = {"text": piece, "index": 0, "logprobs": None, "finish_reason": None}
            yield _sse({**base, "choices": [choice]})
        last = {"text": "", "index": 0, "logprobs": None, "finish_reason": finish_reason}
        yield _sse({**base, "choices": [last]})
        if with_usage:
            yield _sse({**base, "choices": [], "usage": usage})
        yield _DONE

    await exchange.send_events(events())


async def _responses(exchange: _Exchange, request: JSONObject, model: str) -> None:
    given = request.get("input")
    if not isinstance(given, str | list):
        raise _BadRequest(
            "'input' must be a string or an array of input items.", code="invalid_value"
        )
    encoding = encoding_for_model(model)
    prompt = count_responses_request(request, encoding)
    limit = _limit(request, "max_output_tokens")
    items = 1 if isinstance(given, str) else len(given)
    pieces, completion = _reply(encoding.name, _plural(items, "input item"), limit)
    text = "".join(pieces)
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }
    incomplete = _finish_reason(pieces, limit) == "length"
    status = "incomplete" if incomplete else "completed"
    message_id = exchange.new_id("msg_")
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    item = {
        "id": message_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [part],
    }
    response = {
        "id": exchange.new_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": limit,
        "model": model,
        "output": [item],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    }
    if not request.get("stream"):
        await exchange.send_json(response)
        return

    def events() -> Iterator[bytes]:
        numbers = itertools.count()

        def event(kind: str, **fields: Any) -> bytes:
            return _sse({"type": kind, "sequence_number": next(numbers), **fields}, kind)

        started = {**response, "status": "in_progress", "output": [], "usage": None}
        started["incomplete_details"] = None
        yield event("response.created", response=started)
        yield event("response.in_progress", response=started)
        opened_item = {**item, "status": "in_progress", "content": []}
        yield event("response.output_item.added", output_index=0, item=opened_item)
        where = {"item_id": message_id, "output_index": 0, "content_index": 0}
        yield event("response.content_part.added", **where, part={**part, "text": ""})
        for piece in pieces:
            yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
        yield event("response.output_text.done", **where, text=text, logprobs=[])
        yield event("response.content_part.done", **where, part=part)
        yield event("response.output_item.done", output_index=0, item=item)
        yield event(f"response.{status}", response=response)

    await exchange.send_events(events())


def _embedding(text_key: bytes, dimensions: int) -> list[float]:
    """A unit vector that depends only on the input, so equal inputs embed equally."""
    generator = random.Random(hashlib.blake2b(text_key, digest_size=16).digest())
    vector = [generator.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = sum(value * value for value in vector) ** 0.5 or 1.0
    return [value / norm for value in vector]


async def _embeddings(exchange: _Exchange, request: JSONObject, model: str) -> None:
    if "input" not in request:
        raise _BadRequest("'input' is a required property.", code="missing_required_parameter")
    given = request["input"]
    tokens = count_embeddings_request(request, encoding_for_model(model))
    inputs = _inputs(given)
    dimensions = request.get("dimensions", _DEFAULT_EMBEDDING_DIMENSIONS)
    if not isinstance(dimensions, int) or not 1 <= dimensions <= _MAX_EMBEDDING_DIMENSIONS:
        raise _BadRequest(f"'dimensions' must be between 1 and {_MAX_EMBEDDING_DIMENSIONS}.")
    as_base64 = request.get("encoding_format") == "base64"
    data = []
    for index, value in enumerate(inputs):
        vector = _embedding(orjson.dumps(value), dimensions)
        embedding: list[float] | str = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            if as_base64
            else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    await exchange.send_json(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


_HANDLERS: dict[str, Callable[[_Exchange, JSONObject, str], Awaitable[None]]] = {
    "/v1/chat/completions": _chat_completions,
    "/v1/completions": _completions,
    "/v1/responses": _responses,
    "/v1/embeddings": _embeddings,
}
