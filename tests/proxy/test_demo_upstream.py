"""The demo upstream speaks OpenAI's wire format with deterministic text and real usage."""

from __future__ import annotations

import base64
import struct
from typing import Any

import httpx
import openai
import orjson
import pytest

from budget_guard.counting.chat_request import count_chat_request
from budget_guard.counting.encoding_lookup import count_text, encoding_for_model
from budget_guard.counting.prompt_request import count_embeddings_request
from budget_guard.counting.responses_request import count_responses_request

CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "name": "ada", "content": [{"type": "text", "text": "Count me."}]},
        {"role": "user", "content": "And me."},
    ],
}


@pytest.fixture
def client(demo_upstream_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{demo_upstream_url}/v1", api_key="none", max_retries=0)


def _events(body: bytes) -> list[Any]:
    return [
        orjson.loads(line[len(b"data: ") :])
        for line in body.splitlines()
        if line.startswith(b"data: ") and line != b"data: [DONE]"
    ]


def test_chat_usage_is_what_the_counting_rules_give(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(**CHAT)
    encoding = encoding_for_model("gpt-4o-mini")
    text = answer.choices[0].message.content or ""
    assert "You sent 3 messages" in text
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == count_chat_request(CHAT, encoding)
    assert answer.usage.completion_tokens == count_text(encoding, text)
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert answer.choices[0].finish_reason == "stop"
    assert client.chat.completions.create(**CHAT).choices[0].message.content == text


def test_the_model_chooses_the_encoding(client: openai.OpenAI) -> None:
    for model in ("gpt-4", "gpt-4o"):
        answer = client.chat.completions.create(**{**CHAT, "model": model})
        assert answer.usage is not None
        assert answer.usage.prompt_tokens == count_chat_request(CHAT, encoding_for_model(model))


def test_chat_stream_has_a_usage_chunk_only_when_asked(demo_upstream_url: str) -> None:
    url = f"{demo_upstream_url}/v1/chat/completions"
    plain = httpx.post(url, json={**CHAT, "stream": True})
    assert plain.headers["content-type"] == "text/event-stream"
    assert plain.content.endswith(b"data: [DONE]\n\n")
    assert all("usage" not in event for event in _events(plain.content))

    asked = httpx.post(
        url, json={**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    )
    events = _events(asked.content)
    assert [event["usage"] for event in events[:-1]] == [None] * (len(events) - 1)
    assert events[-1]["choices"] == []
    direct = httpx.post(url, json=CHAT).json()
    assert events[-1]["usage"] == direct["usage"]
    streamed = "".join(event["choices"][0]["delta"].get("content", "") for event in events[:-1])
    assert streamed == direct["choices"][0]["message"]["content"]


def test_max_tokens_cuts_the_reply(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(**CHAT, max_completion_tokens=5)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 5


def test_responses_usage_and_completed_event(client: openai.OpenAI, demo_upstream_url: str) -> None:
    request: dict[str, Any] = {
        "model": "gpt-4o",
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi there"}]}],
    }
    answer = client.responses.create(**request)
    assert answer.status == "completed"
    assert "You sent 1 input item" in answer.output_text
    assert answer.usage is not None
    assert answer.usage.input_tokens == count_responses_request(
        request, encoding_for_model("gpt-4o")
    )
    assert answer.usage.output_tokens == count_text(
        encoding_for_model("gpt-4o"), answer.output_text
    )

    streamed = httpx.post(f"{demo_upstream_url}/v1/responses", json={**request, "stream": True})
    events = _events(streamed.content)
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"] == answer.usage.model_dump(exclude_none=True)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))


def test_legacy_completions_count_token_id_prompts_as_given(client: openai.OpenAI) -> None:
    answer = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=[[1, 2, 3], [4]])
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == 4
    assert "You sent 2 prompts" in "".join(choice.text for choice in answer.choices)


def test_embeddings_are_deterministic_unit_vectors_in_both_formats(
    client: openai.OpenAI, demo_upstream_url: str
) -> None:
    request = {"model": "text-embedding-3-small", "input": ["alpha", "beta gamma"]}
    first = client.embeddings.create(**request)  # the SDK asks for base64 and decodes it
    second = client.embeddings.create(**request)
    assert [item.embedding for item in first.data] == [item.embedding for item in second.data]
    assert first.data[0].embedding != first.data[1].embedding
    assert all(len(item.embedding) == 8 for item in first.data)
    assert sum(value * value for value in first.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    expected_tokens = count_embeddings_request(
        request, encoding_for_model("text-embedding-3-small")
    )
    assert first.usage.prompt_tokens == first.usage.total_tokens == expected_tokens

    floats = httpx.post(
        f"{demo_upstream_url}/v1/embeddings", json={**request, "encoding_format": "float"}
    ).json()
    packed = httpx.post(
        f"{demo_upstream_url}/v1/embeddings", json={**request, "encoding_format": "base64"}
    ).json()
    decoded = struct.unpack("<8f", base64.b64decode(packed["data"][0]["embedding"]))
    assert decoded == pytest.approx(floats["data"][0]["embedding"], abs=1e-6)


def test_models_are_listed(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == [
        "gpt-4o-mini",
        "gpt-4o",
        "text-embedding-3-small",
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/chat/completions", b"{not json", 400, None),
        ("POST", "/v1/chat/completions", b'{"messages": []}', 400, "missing_required_parameter"),
        ("POST", "/v1/chat/completions", b'{"model": "m", "messages": "hi"}', 400, "invalid_value"),
        ("GET", "/v1/chat/completions", b"", 405, "method_not_allowed"),
        ("POST", "/v1/images/generations", b"{}", 404, "unknown_url"),
    ],
)
def test_bad_requests_get_openai_errors(
    demo_upstream_url: str, method: str, path: str, body: bytes, status: int, code: str | None
) -> None:
    response = httpx.request(method, f"{demo_upstream_url}{path}", content=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code
    assert error["message"]
