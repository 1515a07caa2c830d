"""What the guard reads from a fine-tuning job's answer, and how it shows a model list: the
edges the proxy-level test (``tests/security``) does not reach."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import orjson
import pytest
from starlette.types import Message

from budget_guard.budget.ledger import Ledger
from budget_guard.guard.fine_tuned_models import (
    MAX_JOB_ANSWER_BYTES,
    MAX_MODEL_LIST_BYTES,
    JobAnswer,
    ModelListFilter,
)
from budget_guard.stores import MemoryStore, StoreUnavailable

COMPANY = uuid.UUID("11111111-1111-4111-8111-111111111111")
OTHER = uuid.UUID("22222222-2222-4222-8222-222222222222")
MODEL = "ft:gpt-4o-mini-2024-07-18:org::abc"


def _job(**fields: object) -> bytes:
    job = {"object": "fine_tuning.job", "id": "ftjob-1", "fine_tuned_model": MODEL}
    return orjson.dumps({**job, **fields})


def _read(job_id: str | None, *chunks: bytes) -> tuple[str, ...]:
    answer = JobAnswer(job_id)
    for chunk in chunks:
        answer.feed(chunk)
    return answer.objects()


def test_a_job_answer_names_its_model_and_result_files() -> None:
    body = _job(result_files=["file-r1"])
    assert _read("ftjob-1", body[:10], body[10:]) == (MODEL, "file-r1")
    assert _read(None, body) == (MODEL, "file-r1")  # the answer to creating it
    assert _read("ftjob-1", _job(object="job")) == (MODEL,)  # Mistral's, on the same paths
    azure = "gpt-35-turbo-0613.ft-b044a9d3cf9c4228b5d393567f693b83"
    assert _read("ftjob-1", _job(fine_tuned_model=azure)) == (azure,)


@pytest.mark.parametrize(
    "body",
    [
        _job(id="ftjob-2"),  # another job's answer
        _job(object="file"),  # not a job at all
        _job(fine_tuned_model="gpt-4o-mini"),  # not a fine-tuned model
        _job()[:-5],  # cut short
        b"[]",
        orjson.dumps(
            {
                "object": "list",
                "data": [
                    {
                        "object": "fine_tuning.job.checkpoint",
                        "fine_tuning_job_id": "ftjob-2",  # another job's checkpoints
                        "fine_tuned_model_checkpoint": MODEL + ":ckpt-step-1",
                    }
                ],
            }
        ),
    ],
)
def test_an_answer_that_is_not_this_jobs_names_nothing(body: bytes) -> None:
    assert _read("ftjob-1", body) == ()


def test_an_answer_larger_than_a_job_is_not_read() -> None:
    padding = b" " * MAX_JOB_ANSWER_BYTES
    assert _read("ftjob-1", _job(), padding) == ()


class _Client:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


async def _list(
    ledger: Ledger, *chunks: bytes, status: int = 200
) -> tuple[int, dict[bytes, bytes], bytes]:
    client = _Client()
    send = ModelListFilter(client, COMPANY, ledger)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"x-budget", b"1")]})  # fmt: skip
    for index, chunk in enumerate(chunks):
        more = index < len(chunks) - 1
        await send({"type": "http.response.body", "body": chunk, "more_body": more})
    start = client.messages[0]
    return start["status"], dict(start["headers"]), client.body


def _models(*names: str) -> bytes:
    return orjson.dumps({"object": "list", "data": [{"id": name} for name in names]})


async def test_a_model_list_shows_only_the_companys_fine_tuned_models() -> None:
    ledger = Ledger(MemoryStore())
    await ledger.remember_objects(COMPANY, [MODEL], 60)
    await ledger.remember_objects(OTHER, [MODEL + "x"], 60)
    azure = "gpt-35-turbo-0613.ft-b044a9d3cf9c4228b5d393567f693b83"
    body = _models("gpt-4o", MODEL, MODEL + "x", "ft:never-seen", azure)
    status, headers, shown = await _list(ledger, body[:7], body[7:])
    assert status == 200
    assert [model["id"] for model in orjson.loads(shown)["data"]] == ["gpt-4o", MODEL]
    assert headers[b"content-length"] == str(len(shown)).encode()
    assert headers[b"x-budget"] == b"1"


async def test_a_list_without_fine_tuned_models_is_the_upstreams_bytes() -> None:
    body = b'{"object": "list", "data": [{"id": "gpt-4o"}]}'
    assert await _list(Ledger(MemoryStore()), body) == (
        200,
        {b"content-type": b"application/json", b"x-budget": b"1",
         b"content-length": str(len(body)).encode()},
        body,
    )  # fmt: skip


async def test_an_error_answer_passes_as_it_comes() -> None:
    error = b'{"error": {"message": "no"}}'
    assert (await _list(Ledger(MemoryStore()), error, status=401))[::2] == (401, error)


@pytest.mark.parametrize("body", [b"not json", b'{"data": {}}', b"[]"])
async def test_a_list_the_guard_cannot_read_is_not_shown(body: bytes) -> None:
    status, _, shown = await _list(Ledger(MemoryStore()), body)
    assert status == 502
    assert orjson.loads(shown)["error"]["code"] == "bad_gateway"


async def test_a_list_too_large_to_filter_is_not_shown() -> None:
    big = b" " * (MAX_MODEL_LIST_BYTES // 2 + 1)
    status, _, shown = await _list(Ledger(MemoryStore()), big, big, _models(MODEL))
    assert status == 502
    assert MODEL.encode() not in shown


class _Unavailable(MemoryStore):
    async def object_owners(self, object_ids: Sequence[str]) -> list[uuid.UUID | None]:
        raise StoreUnavailable("down")


async def test_without_the_store_every_fine_tuned_model_is_left_out() -> None:
    status, _, shown = await _list(Ledger(_Unavailable()), _models("gpt-4o", MODEL))
    assert status == 200
    assert [model["id"] for model in orjson.loads(shown)["data"]] == ["gpt-4o"]


async def test_entries_that_are_not_models_pass_as_they_are() -> None:
    odd: list[object] = ["gpt-4o", {"id": ["ft:a:b::c"]}, {"id": 5}, None, {"name": MODEL}]
    body = orjson.dumps({"object": "list", "data": [*odd, {"id": MODEL}]})
    status, _, shown = await _list(Ledger(MemoryStore()), body)
    assert status == 200
    assert orjson.loads(shown)["data"] == odd
