"""A fake OpenAI-compatible upstream that remembers everything that reached it.

The tenant-attack tests ask one question of every trick: did the request reach the upstream,
and if it did, was it charged? So this upstream records each request (method, path, headers,
body) and answers like OpenAI would: chats and responses with their ``usage``, stored objects
with fresh ids, images with gpt-image-1's ``usage``, and a plain 200 for anything else, so a
route the guard wrongly forwards looks like a success.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from budget_guard.counting import TokenCounter

_COUNTER = TokenCounter()

COMPLETION_TOKENS = 7
"""Tokens of each chat choice, unless ``max_tokens`` cuts it shorter: the upstream honours
``n`` and ``max_tokens`` as OpenAI does, and reports the prompt as tiktoken counts it."""
WRITTEN = {
    "id": "resp_unowned",
    "output": [{"type": "message", "id": "file-unowned", "container_id": "cntr_unowned"}],
    "choices": [{"message": {"audio": {"id": "vs_unowned"}}}],
    "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
}
"""A body shaped like a model's answer, naming ids nobody owns (as a tenant's file could)."""
IMAGE_USAGE = {"input_tokens": 50, "output_tokens": 4_160, "total_tokens": 4_210}
SLOW_MODEL = "slow-model"
"""A chat naming this model is answered only after ``SLOW_SECONDS``."""
SLOW_SECONDS = 2.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class TenantUpstream:
    seen: list[Seen] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    models: list[str] = field(default_factory=list)
    """The fine-tuned models of the organisation (every company's jobs')."""

    def paths(self) -> list[str]:
        return [f"{s.method} {s.path}" for s in self.seen]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.seen.append(Seen(method, path, headers, body))
        request = orjson.loads(body) if body.startswith(b"{") else {}
        if path == "/v1/chat/completions":
            if request.get("model") == SLOW_MODEL:
                await asyncio.sleep(SLOW_SECONDS)
            usage = _usage(body, request)
            if request.get("stream"):
                await self._stream(send, usage)
                return
            await _json(send, _chat(usage))
        elif path == "/v1/responses" and method == "POST":
            number = next(self._ids)
            response = {
                "id": f"resp_{number}",
                "object": "response",
                "output": [  # items a later request may send back by id, as OpenAI's are
                    {"type": "reasoning", "id": f"rs_{number}", "summary": []},
                    {
                        "type": "message",
                        "id": f"msg_{number}",
                        "role": "assistant",
                        "content": [
                            {"type": "output_text", "text": "ok", "annotations": [_cited(number)]}
                        ],
                    },
                ],
                "usage": {"input_tokens": _prompt("responses", body), "output_tokens": 3},
            }
            if request.get("stream"):
                await _responses_stream(send, response)
            else:
                await _json(send, response)
        elif path == "/v1/written":  # an answer the tenant wrote: a file's content, say
            await _json(send, WRITTEN)
        elif path == "/v1/files" and method == "POST":
            await _json(send, {"id": f"file-{next(self._ids)}", "object": "file"})
        elif path.startswith("/v1/files/") and path.endswith("/content") and self.models:
            # A file a tenant wrote, shaped like a job naming the newest model: its content.
            await _json(send, _job("ftjob-1", self.models[-1]))
        elif path.startswith(("/v1/fine_tuning/", "/v1/models")):
            await _json(send, self._fine_tuning(method, path))
        elif path == "/v1/images/generations":
            await _json(send, {"data": [{"b64_json": "AAAA"}], "usage": IMAGE_USAGE})
        else:
            await _json(send, {"ok": True, "path": path})

    def _fine_tuning(self, method: str, path: str) -> dict[str, Any]:
        """Fine-tuning as OpenAI answers it: a job is created without a model and has one
        when asked about later; every model of the organisation is in the model list."""
        parts = path.split("/")
        if path == "/v1/fine_tuning/jobs" and method == "POST":
            job = f"ftjob-{next(self._ids)}"
            self.models.append(f"ft:gpt-4o-mini-2024-07-18:org-operator::{job[6:]}")
            return _job(job, None)
        if path == "/v1/models":
            listed = ["gpt-4o-mini", *self.models, *(m + ":ckpt-step-1" for m in self.models)]
            return {"object": "list", "data": [_model(name) for name in listed]}
        if path.startswith("/v1/models/"):
            return _model(path.removeprefix("/v1/models/"))
        job = parts[4]
        model = f"ft:gpt-4o-mini-2024-07-18:org-operator::{job[6:]}"
        if path.endswith("/checkpoints"):
            checkpoint = {
                "object": "fine_tuning.job.checkpoint",
                "id": f"ftckpt_{job[6:]}",
                "fine_tuned_model_checkpoint": model + ":ckpt-step-1",
                "fine_tuning_job_id": job,
            }
            return {"object": "list", "data": [checkpoint], "has_more": False}
        return _job(job, model)

    async def _stream(self, send: Send, usage: dict[str, int]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for word in ("one", " two", " three", " four", " five", " six", " seven"):
            chunk = {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": word}}]}
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + orjson.dumps(chunk) + b"\n\n",
                    "more_body": True,
                }
            )
            await asyncio.sleep(0.15)
        last = {"id": "chatcmpl-1", "choices": [], "usage": usage}
        tail = b"data: " + orjson.dumps(last) + b"\n\ndata: [DONE]\n\n"
        await send({"type": "http.response.body", "body": tail, "more_body": False})


def _cited(number: int) -> dict[str, object]:
    """A file the answer's code interpreter wrote, as its message cites it."""
    return {
        "type": "container_file_citation",
        "container_id": f"cntr_{number}",
        "file_id": f"cfile_{number}",
        "filename": "plot.png",
        "start_index": 0,
        "end_index": 2,
    }


async def _responses_stream(send: Send, response: dict[str, Any]) -> None:
    """The Responses API's events: the items' ids come in ``output_item`` events."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {**response, "output": [], "usage": None}}
    ]
    for index, item in enumerate(response["output"]):
        events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": response})
    for event in events:
        data = b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        await send({"type": "http.response.body", "body": data, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _prompt(kind: str, body: bytes) -> int:
    return _COUNTER.count_request("", body, kind=kind).input_tokens


def _usage(body: bytes, request: dict[str, Any]) -> dict[str, int]:
    prompt = _prompt("chat", body)
    cap = request.get("max_tokens") or COMPLETION_TOKENS
    completion = min(cap, COMPLETION_TOKENS) * (request.get("n") or 1)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chat(usage: dict[str, int]) -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        "usage": usage,
    }


ACCOUNT_HEADERS = [
    (b"openai-organization", b"org-operator-secret"),
    (b"openai-project", b"proj_operator"),
    (b"x-ratelimit-remaining-requests", b"4999"),
    (b"x-ratelimit-remaining-tokens", b"1999000"),
]
"""What OpenAI tells the key's owner on every answer: the organisation, and the shared key's
rate-limit counters (which move with every company's traffic)."""


def _job(job: str, model: str | None) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job",
        "id": job,
        "model": "gpt-4o-mini-2024-07-18",
        "status": "running" if model is None else "succeeded",
        "fine_tuned_model": model,
        "result_files": [] if model is None else [f"file-result-{job[6:]}"],
    }


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1, "owned_by": "org-operator"}


async def _json(send: Send, document: object, status: int = 200) -> None:
    body = orjson.dumps(document)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *ACCOUNT_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
