"""Which ids in a request body name upstream objects (each must be the calling company's):
where an upstream looks objects up, and not where the client keeps its own data."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from budget_guard.counting import TokenCounter
from budget_guard.counting.errors import InvalidRequestBody
from budget_guard.counting.references import (
    MAX_REFERENCES,
    TooManyReferences,
    may_refer,
    object_references,
)


def _refs(body: dict[str, Any]) -> tuple[str, ...]:
    raw = orjson.dumps(body)
    found = object_references(orjson.loads(raw))
    assert may_refer(raw) or not found  # the pre-scan never skips a body that names one
    return found


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {
                "model": "o4-mini",
                "input": [
                    {"type": "reasoning", "id": "rs_1", "summary": []},
                    {"type": "message", "id": "msg_1", "role": "assistant", "content": []},
                    {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f"},
                    {"type": "function_call_output", "call_id": "call_1", "output": "42"},
                    {"role": "user", "content": "and then?"},
                ],
            },
            ("rs_1", "msg_1", "fc_1"),
            id="responses-input-items-sent-back",
        ),
        pytest.param(
            {"model": "o4-mini", "input": [{"type": "item_reference", "id": "msg_2"}]},
            ("msg_2",),
            id="item-reference",
        ),
        pytest.param(
            {"items": [{"type": "message", "id": "msg_3", "role": "user", "content": []}]},
            ("msg_3",),
            id="conversation-items",
        ),
        pytest.param(
            {"model": "gpt-4o-mini", "training_file": "file-t", "validation_file": "file-v"},
            ("file-t", "file-v"),
            id="fine-tuning-files",
        ),
        pytest.param(
            {"data_source": {"type": "jsonl", "source": {"type": "file_id", "id": "file-e"}}},
            ("file-e",),
            id="eval-run-source",
        ),
        pytest.param(
            {
                "model": "gpt-4o-audio-preview",
                "audio": {"voice": "alloy", "format": "wav"},
                "messages": [
                    {"role": "assistant", "audio": {"id": "audio_1"}},
                    {"role": "user", "content": "again"},
                ],
            },
            ("audio_1",),
            id="a-previous-audio-answer",
        ),
        pytest.param(
            {
                "model": "gpt-4.1",
                "input": [
                    {
                        "type": "mcp_approval_response",
                        "approval_request_id": "mcpr_1",
                        "approve": True,
                    }
                ],
            },
            ("mcpr_1",),
            id="an-mcp-approval",
        ),
        pytest.param(
            {
                "model": "gpt-4.1",
                "prompt": {
                    "id": "pmpt_1",
                    "variables": {"doc": {"type": "input_file", "file_id": "file-p"}},
                },
            },
            ("file-p",),
            id="prompt-variables-are-read-by-the-upstream",
        ),
    ],
)
def test_where_an_upstream_looks_objects_up(
    body: dict[str, Any], expected: tuple[str, ...]
) -> None:
    assert _refs(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {
                "model": "gpt-4.1",
                "input": "hi",
                "metadata": {"conversation_id": "ticket-7", "thread_id": "slack-42"},
            },
            id="metadata",
        ),
        pytest.param(
            {
                "model": "claude-sonnet-4-5",
                "max_tokens": 100,
                "messages": [
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "type": "tool_use",
                                "id": "toolu_1",
                                "name": "read",
                                "input": {"file_id": "local-1", "items": [{"id": "x"}]},
                            }
                        ],
                    },
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}],
                    },
                ],
            },
            id="a-tool-calls-input",
        ),
        pytest.param(
            {
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "read",
                            "parameters": {
                                "type": "object",
                                "properties": {
                                    "file_id": {"type": "string", "default": "file-d"},
                                    "thread_id": {"enum": ["a"], "examples": ["t-1"]},
                                },
                                "x-owner": {"file_id": "file-x"},
                            },
                        },
                    }
                ],
            },
            id="a-schemas-names-and-values",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi", "id": "m1"}]},
            id="an-id-outside-a-top-level-item-list",
        ),
    ],
)
def test_the_clients_own_data_names_no_object(body: dict[str, Any]) -> None:
    assert _refs(body) == ()


def test_a_variant_of_a_data_key_is_not_taken_for_it() -> None:
    """An upstream that reads "Metadata" as metadata reads no references in it either; one
    that does not might: the guard checks what it cannot be sure of."""
    assert _refs({"input": "x", "Metadata": {"file_id": "file-m"}}) == ("file-m",)


def test_a_long_conversation_sent_back_item_by_item_is_within_the_bound() -> None:
    items = [{"type": "reasoning", "id": f"rs_{n}", "summary": []} for n in range(1000)]
    assert len(_refs({"model": "o4-mini", "input": items})) == 1000
    too_many = [{"type": "item_reference", "id": f"msg_{n}"} for n in range(MAX_REFERENCES + 1)]
    with pytest.raises(TooManyReferences):
        object_references({"input": too_many})


def test_a_type_that_is_not_a_string_is_no_reference() -> None:
    """A nullable field's schema says ``"type": ["string", "null"]``: no object, no error."""
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function"}]},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "parameters": {"properties": {"u": {"type": ["string", "null"]}}},
                },
            }
        ],
        "x": {"type": {"item_reference": 1}, "id": "nothing"},
    }
    assert _refs(body) == ()


def test_a_client_chosen_response_id_is_refused(counter: TokenCounter) -> None:
    """vLLM stores a response under a ``request_id`` the client picks, replacing what was
    there: another company's conversation. OpenAI has no such field; the guard refuses it,
    and a variant some upstream would read as it."""
    for key in ("request_id", "requestId", "Request_Id"):
        body = orjson.dumps({"model": "gpt-4o", "input": "hi", key: "resp_someone"})
        with pytest.raises(InvalidRequestBody) as refused:
            counter.count_request("/v1/responses", body)
        assert refused.value.param == key


FINE_TUNED = "ft:gpt-4o-mini-2024-07-18:acme::9zFkq3Ja"


@pytest.mark.parametrize(
    "model",
    [
        FINE_TUNED,
        FINE_TUNED + ":ckpt-step-88",  # a checkpoint is a model too
        "FT:gpt-4o-mini-2024-07-18:acme::9zFkq3Ja",  # an upstream that reads names loosely
        "openai/" + FINE_TUNED,  # a router (LiteLLM) sends it on without its prefix
        " " + FINE_TUNED,
        "davinci:ft-acme-2023-03-01-12-00-00",  # OpenAI's legacy form
        "gpt-35-turbo-0613.ft-b044a9d3cf9c4228b5d393567f693b83",  # Azure's
        "gpt-4o-mini|" + FINE_TUNED,  # wherever a name could start
    ],
)
def test_a_fine_tuned_model_is_an_object(model: str) -> None:
    assert _refs({"model": model, "messages": []}) == (model,)
    assert _refs({"Model": model, "input": "hi"}) == (model,)  # read as loosely as keys are
    nested = {"data_source": {"type": "responses", "model": model}}  # an eval run's sampling
    assert _refs(nested) == (model,)


@pytest.mark.parametrize(
    "model", ["gpt-4o-mini", "microsoft:phi-4", "claude-sonnet-4-5", "loft:v1", "ft-model"]
)
def test_a_model_that_is_not_fine_tuned_names_no_object(model: str) -> None:
    assert _refs({"model": model, "messages": []}) == ()


def test_a_fine_tuned_name_in_the_clients_own_data_names_no_object() -> None:
    assert _refs({"model": "gpt-4o", "metadata": {"model": FINE_TUNED}}) == ()


def test_the_pre_scan_sees_a_fine_tuned_model_however_the_key_is_written() -> None:
    for key in ("model", "Model", "mo_del", "MODEL"):
        assert may_refer(orjson.dumps({key: FINE_TUNED}))
        assert may_refer(f'{{"{key}" :\n "{FINE_TUNED}"}}'.encode())
    assert may_refer(b'{"model": "x\\"ft:y"}')
    assert not may_refer(b'{"model": "gpt-4o-mini", "messages": []}')
