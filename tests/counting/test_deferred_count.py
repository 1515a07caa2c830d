"""A request counted on the loop is checked at once but counted only when its count is asked
for: the same count as ``count_request`` then, and never more than the bound known before."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from budget_guard.counting import (
    InvalidRequestBody,
    RequestTokens,
    TokenCounter,
    preload_encodings,
    routes,
)


@pytest.fixture(autouse=True, scope="module")
def _encodings_built() -> None:
    """As the server has them after start-up: a first use would be counted in the pool."""
    preload_encodings()


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "f",
            "description": "d.",
            "parameters": {
                "type": "object",
                "properties": {"e": {"type": "string", "enum": ["", "x", "日本"]}},
            },
        },
    }
]
PNG_1X1 = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

BODIES = {
    "chat": (
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "name": "a", "content": "お誕生日 🎂 <|endoftext|>"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": PNG_1X1, "detail": "high"}},
                    ],
                },
            ],
            "tools": TOOLS,
        },
    ),
    "responses": (
        "/v1/responses",
        {
            "model": "gpt-4o",
            "instructions": "be brief",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "hi"},
                        {"type": "input_image", "image_url": PNG_1X1},
                    ],
                },
            ],
        },
    ),
    "completions": (
        "/v1/completions",
        {"model": "gpt-3.5-turbo-instruct", "prompt": ["a b c", [1, 2, 3]], "suffix": "z"},
    ),
    "embeddings": ("/v1/embeddings", {"model": "text-embedding-3-small", "input": [[5, 6], "x"]}),
    "messages": (
        "/v1/messages",
        {
            "model": "claude-x",
            "max_tokens": 5,
            "system": "s",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "tool_result", "tool_use_id": "t", "content": "r"},
                    ],
                },
            ],
        },
    ),
}


def _raw(body: dict[str, object]) -> bytes:
    # orjson refuses lone surrogates; the standard library writes them as JSON escapes.
    import json

    return json.dumps(body).encode()


@pytest.mark.parametrize("name", list(BODIES))
async def test_a_deferred_count_is_the_count_and_within_its_bound(
    counter: TokenCounter, name: str
) -> None:
    path, body = BODIES[name]
    raw = _raw(body)
    deferred = await counter.acount_request(path, raw)
    assert not deferred.counted, "a short body on the loop is not counted before it is needed"
    bound = deferred.input_bound
    exact = counter.count_request(path, raw).input_tokens
    assert deferred.input_tokens == exact
    assert deferred.counted
    assert exact <= bound
    assert deferred.input_bound == exact, "once counted, the bound is the count"


async def test_a_malformed_body_is_still_refused_before_it_is_forwarded(
    counter: TokenCounter,
) -> None:
    raw = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": 7}]})
    with pytest.raises(InvalidRequestBody) as caught:
        await counter.acount_request("/v1/chat/completions", raw)
    assert caught.value.param == "messages.[0].content"


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(TEXT, min_size=1, max_size=5),
    roles=st.lists(st.sampled_from(["user", "system", "assistant", "", "tool"]), min_size=5),
    model=st.sampled_from(["gpt-4o", "gpt-4", "text-davinci-003", "claude-x"]),
)
def test_the_bound_is_never_below_the_count(
    counter: TokenCounter, texts: list[str], roles: list[str], model: str
) -> None:
    messages = [{"role": role, "content": text} for role, text in zip(roles, texts, strict=False)]
    cases = [
        ("/v1/chat/completions", {"model": model, "messages": messages}),
        ("/v1/responses", {"model": model, "input": messages, "instructions": texts[0]}),
        ("/v1/completions", {"model": model, "prompt": texts}),
        ("/v1/embeddings", {"model": model, "input": texts}),
        ("/v1/messages", {"model": model, "system": texts[-1], "messages": messages}),
    ]

    async def bounds() -> list[int]:
        requests = [await counter.acount_request(p, orjson.dumps(b)) for p, b in cases]
        assert not any(request.counted for request in requests)
        return [request.input_bound for request in requests]

    for (path, body), bound in zip(cases, asyncio.run(bounds()), strict=True):
        assert counter.count_request(path, orjson.dumps(body)).input_tokens <= bound


def test_a_failing_count_charges_the_bound(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> int:
        raise RuntimeError("tokenizer state")

    request = RequestTokens(routes.CHAT, "gpt-4o", None, False, None, count=broken, bound=42)
    with caplog.at_level(logging.ERROR, "budget_guard.counting"):
        assert request.input_tokens == 42
    assert "RuntimeError" in caplog.text and "tokenizer state" not in caplog.text


def test_a_request_counted_up_front_needs_no_count_function() -> None:
    with pytest.raises(ValueError):
        RequestTokens(routes.CHAT, "gpt-4o", None, False, None)
    counted = RequestTokens(routes.CHAT, "gpt-4o", 7, False, None)
    assert counted.counted and counted.input_bound == 7
