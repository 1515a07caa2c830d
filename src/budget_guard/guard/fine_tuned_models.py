"""Fine-tuned models are objects: one company's to use, list and delete.

A fine-tuned model is trained on one company's data, yet under the operator's one upstream
key every company could use it by name, read its name in ``GET /v1/models``, or delete it.
So the guard treats it like a stored file:

- **learned** only from where the upstream itself says whose it is: the answer to a
  fine-tuning job the company owns (``GET .../fine_tuning/jobs/{id}``, its ``cancel``,
  ``pause``, ``resume`` and ``checkpoints``, or the job's creation), whose ``id`` (or each
  checkpoint's ``fine_tuning_job_id``) must be that job. Never from any other answer: an
  opted-in route can answer with what a tenant wrote (a file's content), naming any model;
- **checked** wherever a request names one (``counting.references``, and the path of
  ``GET /v1/models/{model}``);
- **hidden** from a model list unless it is the company's (:class:`ModelListFilter`).

The job's result files are the company's too, learned the same way.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from starlette.types import Message, Send

from budget_guard.budget.ledger import Ledger
from budget_guard.counting.references import is_fine_tuned_model
from budget_guard.proxy.openai_errors import send_openai_error
from budget_guard.stores import StoreError
from budget_guard.stores.base import is_object_id

log = logging.getLogger("budget_guard.guard")

MAX_JOB_ANSWER_BYTES = 1 << 20
"""A job (or a page of its checkpoints) is a few KiB; a larger answer is not read, which only
denies the company its own model until it asks again."""
# What a job says it is: OpenAI's, and Mistral's (the same paths and ``ft:`` names).
_JOB_OBJECTS = frozenset({"fine_tuning.job", "job"})
# What a model list's answer is doing, as it passes.
_HOLDING, _PASSING, _ANSWERED = range(3)
MAX_MODEL_LIST_BYTES = 2 << 20
"""A model list is ~120 bytes a model (this is some 17,000); past it the list is refused
rather than shown unfiltered."""


class JobAnswer:
    """Reads the fine-tuned models (and result files) a fine-tuning job's answer names.

    ``job_id`` is the job the path named (already checked to be the company's); None when
    the request creates the job, whose answer's own id is then the company's new job."""

    __slots__ = ("_chunks", "_job_id", "_size")

    def __init__(self, job_id: str | None) -> None:
        self._job_id = job_id
        self._chunks: list[bytes] | None = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        chunks = self._chunks
        if chunks is None or not chunk:
            return
        self._size += len(chunk)
        if self._size > MAX_JOB_ANSWER_BYTES:
            self._chunks = None
            return
        chunks.append(chunk)

    def objects(self) -> tuple[str, ...]:
        """What the complete answer names as the job's; nothing if it is not a job's answer."""
        chunks = self._chunks
        if not chunks:
            return ()
        try:
            answer = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            return ()  # cut short, or not JSON: nothing is learned
        if not isinstance(answer, dict):
            return ()
        found: list[str] = []
        kind = answer.get("object")
        if kind in _JOB_OBJECTS:
            if self._job_id is not None and answer.get("id") != self._job_id:
                return ()
            model = answer.get("fine_tuned_model")
            if isinstance(model, str) and is_fine_tuned_model(model):
                found.append(model)
            files = answer.get("result_files")
            if isinstance(files, list):
                found.extend(name for name in files if isinstance(name, str))
        elif kind == "list" and self._job_id is not None:
            items = answer.get("data")
            for item in items if isinstance(items, list) else ():
                if (
                    isinstance(item, dict)
                    and item.get("object") == "fine_tuning.job.checkpoint"
                    and item.get("fine_tuning_job_id") == self._job_id
                ):
                    model = item.get("fine_tuned_model_checkpoint")
                    if isinstance(model, str) and is_fine_tuned_model(model):
                        found.append(model)
        return tuple(name for name in found if is_object_id(name))


class ModelListFilter:
    """The ``send`` of a model list: holds the answer back until it is whole, then sends it
    without the fine-tuned models that are not the company's (one store call for all of
    them). What it cannot read is not shown: a list too large, or not a JSON list, is a
    ``502``; if the store cannot say who owns them, every fine-tuned model is left out."""

    __slots__ = ("_chunks", "_company", "_ledger", "_send", "_size", "_start", "_state")

    def __init__(self, send: Send, company: uuid.UUID, ledger: Ledger) -> None:
        self._send = send
        self._company = company
        self._ledger = ledger
        self._start: Message | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._state = _HOLDING

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        state = self._state
        if state == _PASSING or kind not in ("http.response.start", "http.response.body"):
            await self._send(message)
            return
        if state == _ANSWERED:
            return  # the guard's own answer went in its place
        if kind == "http.response.start":
            if 200 <= message["status"] < 300:
                self._start = message
            else:  # an error names no model: passed on as it comes
                self._state = _PASSING
                await self._send(message)
            return
        self._chunks.append(message.get("body", b""))
        self._size += len(self._chunks[-1])
        if self._size > MAX_MODEL_LIST_BYTES:
            await self._refuse("The model list is too large to be filtered for this company.")
            return
        if message.get("more_body", False):
            return
        start = self._start
        body = await self._filtered(b"".join(self._chunks))
        if start is None or body is None:
            await self._refuse("The model list could not be read, so it is not shown.")
            return
        self._state, self._start, self._chunks = _ANSWERED, None, []
        headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    async def _filtered(self, body: bytes) -> bytes | None:
        try:
            answer: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        models = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(models, list):
            return None
        tuned = {name for name in map(_model_id, models) if name and is_fine_tuned_model(name)}
        if not tuned:
            return body  # nothing to hide: the upstream's bytes, unchanged
        keyed = [name for name in tuned if is_object_id(name)]
        owners: list[uuid.UUID | None] = []
        try:
            if keyed:
                owners = await self._ledger.object_owners(keyed)
        except StoreError as exc:
            log.warning("model list shown without fine-tuned models: usage store: %s", exc)
        # Every fine-tuned model is hidden but those the store says are the company's (none
        # when it could not say).
        own = {name for name, owner in zip(keyed, owners, strict=False) if owner == self._company}
        hidden = tuned - own
        answer["data"] = [model for model in models if _model_id(model) not in hidden]
        return orjson.dumps(answer)

    async def _refuse(self, message: str) -> None:
        self._state, self._start, self._chunks = _ANSWERED, None, []
        await send_openai_error(self._send, 502, message, type_="server_error", code="bad_gateway")


def _model_id(model: object) -> str | None:
    """A model list entry's id, if it has one."""
    if isinstance(model, dict):
        ident = model.get("id")
        if isinstance(ident, str):
            return ident
    return None
