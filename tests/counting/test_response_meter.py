"""Non-streamed responses: the upstream's usage when it reports one, tiktoken when it does not."""

from __future__ import annotations

import orjson
import pytest
import tiktoken

from budget_guard.counting import RequestTokens, TokenCounter, TokenUsage

CHAT_REQUEST = RequestTokens("chat", "gpt-4o", 20, False, None)


def _meter_once(
    counter: TokenCounter,
    request: RequestTokens,
    body: bytes | dict[str, object],
    content_type: str | None = "application/json",
    chunk_size: int = 7,
) -> TokenUsage:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    meter = counter.meter(request, content_type)
    for start in range(0, len(raw), chunk_size):
        meter.feed(raw[start : start + chunk_size])
    return meter.finish()


def _n(encoding: tiktoken.Encoding, text: str) -> int:
    return len(encoding.encode_ordinary(text))


CHAT_RESPONSE = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I help you today? 😊",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 19,
        "completion_tokens": 31,
        "total_tokens": 50,
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}


def test_chat_usage_reported_upstream_wins(counter: TokenCounter) -> None:
    assert _meter_once(counter, CHAT_REQUEST, CHAT_RESPONSE) == TokenUsage(19, 31, "upstream")


def test_chat_without_usage_counts_text_and_tool_calls(
    counter: TokenCounter, o200k: tiktoken.Encoding
) -> None:
    body = {key: value for key, value in CHAT_RESPONSE.items() if key != "usage"}
    expected = (
        _n(o200k, "Hello! How can I help you today? 😊")
        + _n(o200k, "get_weather")
        + _n(o200k, '{"city": "Oslo"}')
    )
    assert _meter_once(counter, CHAT_REQUEST, body) == TokenUsage(20, expected, "counted")


def test_tiktoken_can_be_made_authoritative(o200k: tiktoken.Encoding) -> None:
    counter = TokenCounter(prefer_upstream_usage=False)
    usage = _meter_once(counter, CHAT_REQUEST, CHAT_RESPONSE)
    assert usage.source == "counted"
    assert usage.input_tokens == 20
    assert usage.output_tokens == _n(o200k, "Hello! How can I help you today? 😊") + _n(
        o200k, "get_weather"
    ) + _n(o200k, '{"city": "Oslo"}')


def test_several_choices_are_all_counted(counter: TokenCounter, o200k: tiktoken.Encoding) -> None:
    body = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Yes."}},
            {"index": 1, "message": {"role": "assistant", "content": "No, never."}},
        ]
    }
    usage = _meter_once(counter, CHAT_REQUEST, body)
    assert usage.output_tokens == _n(o200k, "Yes.") + _n(o200k, "No, never.")


def test_responses_api_usage(counter: TokenCounter) -> None:
    body = {
        "object": "response",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hi"}]}],
        "usage": {"input_tokens": 36, "output_tokens": 87, "total_tokens": 123},
    }
    request = RequestTokens("responses", "gpt-4.1", 30, False, None)
    assert _meter_once(counter, request, body) == TokenUsage(36, 87, "upstream")


def test_responses_api_without_usage_counts_output_items(
    counter: TokenCounter, o200k: tiktoken.Encoding
) -> None:
    body = {
        "object": "response",
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Think."}]},
            {"type": "message", "content": [{"type": "output_text", "text": "Hi there"}]},
            {"type": "function_call", "name": "lookup", "arguments": '{"q": 1}'},
        ],
    }
    request = RequestTokens("responses", "gpt-4.1", 30, False, None)
    expected = (
        _n(o200k, "Think.") + _n(o200k, "Hi there") + _n(o200k, "lookup") + _n(o200k, '{"q": 1}')
    )
    assert _meter_once(counter, request, body) == TokenUsage(30, expected, "counted")


def test_anthropic_usage_adds_cache_tokens(counter: TokenCounter) -> None:
    body = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Hi"}],
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 200,
            "cache_read_input_tokens": 3000,
            "output_tokens": 5,
        },
    }
    request = RequestTokens("messages", "claude-sonnet-4", 12, False, 100)
    assert _meter_once(counter, request, body) == TokenUsage(
        3210, 5, "upstream", cache_write_tokens=200, cache_read_tokens=3000
    )


@pytest.mark.parametrize(
    "usage",
    [
        {  # Chat Completions
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 256},
        },
        {  # Responses
            "input_tokens": 1200,
            "output_tokens": 300,
            "input_tokens_details": {"cached_tokens": 1024},
            "output_tokens_details": {"reasoning_tokens": 256},
        },
    ],
)
def test_openai_usage_keeps_cached_and_reasoning_tokens(
    counter: TokenCounter, usage: dict[str, object]
) -> None:
    kind = "chat" if "prompt_tokens" in usage else "responses"
    body = {"object": "chat.completion", "choices": [], "output": [], "usage": usage}
    request = RequestTokens(kind, "o3", 12, False, 100)
    assert _meter_once(counter, request, body) == TokenUsage(
        1200, 300, "upstream", cached_input_tokens=1024, reasoning_tokens=256
    )


def test_a_detail_larger_than_its_total_is_bounded_by_it(counter: TokenCounter) -> None:
    body = {
        "choices": [],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 99},
            "completion_tokens_details": {"reasoning_tokens": 99},
        },
    }
    usage = _meter_once(counter, RequestTokens("chat", "o3", 12, False, 100), body)
    assert (usage.cached_input_tokens, usage.reasoning_tokens) == (10, 5)
    assert usage.uncached_input_tokens == 0


def test_anthropic_without_usage_counts_blocks(
    counter: TokenCounter, o200k: tiktoken.Encoding
) -> None:
    body = {
        "type": "message",
        "content": [
            {"type": "thinking", "thinking": "Hmm."},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "t", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
    }
    request = RequestTokens("messages", "claude-sonnet-4", 12, False, 100)
    expected = (
        _n(o200k, "Hmm.")
        + _n(o200k, "Checking.")
        + _n(o200k, "get_weather")
        + _n(o200k, '{"city":"Oslo"}')
    )
    assert _meter_once(counter, request, body) == TokenUsage(12, expected, "counted")


def test_embeddings_have_no_output(counter: TokenCounter) -> None:
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    request = RequestTokens("embeddings", "text-embedding-3-small", 8, False, None)
    assert _meter_once(counter, request, body) == TokenUsage(8, 0, "upstream")
    del body["usage"]
    assert _meter_once(counter, request, body) == TokenUsage(8, 0, "counted")


def test_body_over_the_buffer_cap_still_yields_its_usage(counter: TokenCounter) -> None:
    vectors = [
        {"object": "embedding", "index": i, "embedding": [0.0123456789] * 1536} for i in range(1200)
    ]
    body = orjson.dumps(
        {"object": "list", "data": vectors, "usage": {"prompt_tokens": 4321, "total_tokens": 4321}}
    )
    assert len(body) > 16 * 1024 * 1024
    request = RequestTokens("embeddings", "text-embedding-3-small", 4000, False, None)
    assert _meter_once(counter, request, body, chunk_size=65536) == TokenUsage(4321, 0, "upstream")


def test_error_and_truncated_bodies_count_only_the_request(counter: TokenCounter) -> None:
    error = {"error": {"message": "Rate limit", "type": "rate_limit_error", "param": None}}
    assert _meter_once(counter, CHAT_REQUEST, error) == TokenUsage(20, 0, "counted")
    truncated = orjson.dumps(CHAT_RESPONSE)[:60]
    assert _meter_once(counter, CHAT_REQUEST, truncated) == TokenUsage(20, 0, "counted")
    assert _meter_once(counter, CHAT_REQUEST, b"<html>502 Bad Gateway</html>", "text/html") == (
        TokenUsage(20, 0, "counted")
    )


def test_other_routes_cost_nothing(counter: TokenCounter) -> None:
    other = counter.count_request("/v1/models", b"")
    assert _meter_once(counter, other, {"usage": {"prompt_tokens": 5}}) == TokenUsage(
        0, 0, "counted"
    )


def test_meter_never_raises_and_finish_is_stable(counter: TokenCounter) -> None:
    meter = counter.meter(CHAT_REQUEST, "application/json")
    meter.feed(orjson.dumps(CHAT_RESPONSE)[:10])
    meter.feed("not bytes")  # type: ignore[arg-type]
    meter.feed(b"more")
    first = meter.finish()
    meter.feed(b"after the end")
    assert first == meter.finish() == TokenUsage(20, 0, "counted")


@pytest.mark.parametrize(("stream", "content_type"), [(True, None), (False, "text/event-stream")])
def test_stream_detection(counter: TokenCounter, stream: bool, content_type: str | None) -> None:
    request = RequestTokens("chat", "gpt-4o", 20, stream, None)
    sse = b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}\n\n'
    assert _meter_once(counter, request, sse, content_type) == TokenUsage(3, 4, "upstream")


def test_total_tokens() -> None:
    assert TokenUsage(3, 4, "upstream").total_tokens == 7
