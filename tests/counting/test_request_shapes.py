"""Input tokens for every request shape, and 400-ready errors for bodies of the wrong shape."""

from __future__ import annotations

import base64
import struct
import zlib

import orjson
import pytest
import tiktoken

from budget_guard.counting import InvalidRequestBody, RequestTokens, TokenCounter


def _count(counter: TokenCounter, path: str, **body: object) -> RequestTokens:
    return counter.count_request(path, orjson.dumps(body))


def _n(encoding: tiktoken.Encoding, text: str) -> int:
    return len(encoding.encode_ordinary(text))


def _png_data_url(width: int, height: int) -> str:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    png = (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()


# --- Chat Completions --------------------------------------------------------------------------


def test_chat_content_parts_count_like_the_same_text(
    counter: TokenCounter, o200k: tiktoken.Encoding
) -> None:
    as_string = _count(
        counter,
        "/v1/chat/completions",
        model="gpt-4o",
        messages=[{"role": "user", "content": "Hello there"}],
    )
    as_parts = _count(
        counter,
        "/v1/chat/completions",
        model="gpt-4o",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}],
    )
    assert as_string.input_tokens == as_parts.input_tokens == 3 + 1 + _n(o200k, "Hello there") + 3


def test_chat_images_follow_the_tile_rule(counter: TokenCounter) -> None:
    def image_tokens(image_url: object) -> int:
        base = _count(
            counter,
            "/v1/chat/completions",
            model="gpt-4o",
            messages=[{"role": "user", "content": []}],
        )
        with_image = _count(
            counter,
            "/v1/chat/completions",
            model="gpt-4o",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": image_url}]}],
        )
        return with_image.input_tokens - base.input_tokens

    assert image_tokens({"url": "https://example.com/cat.png", "detail": "low"}) == 85
    # Size unknown: the documented 1024x1024 example, 4 tiles.
    assert image_tokens({"url": "https://example.com/cat.png"}) == 765
    # Inline images are measured from their header: 2048x4096 scales to 768x1536, 6 tiles.
    assert image_tokens({"url": _png_data_url(2048, 4096), "detail": "high"}) == 1105
    assert image_tokens({"url": _png_data_url(500, 300), "detail": "auto"}) == 85 + 170
    assert image_tokens(_png_data_url(1024, 1024)) == 765


def test_chat_assistant_tool_calls_and_tool_results_count_their_text(
    counter: TokenCounter, o200k: tiktoken.Encoding
) -> None:
    arguments = '{"location": "Paris, FR"}'
    counted = _count(
        counter,
        "/v1/chat/completions",
        model="gpt-4o",
        messages=[
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18°C and sunny"},
        ],
    )
    expected = (
        (3 + _n(o200k, "assistant") + _n(o200k, "get_weather") + _n(o200k, arguments))
        + (3 + _n(o200k, "tool") + _n(o200k, "18°C and sunny"))
        + 3
    )
    assert counted.input_tokens == expected


def test_chat_reports_stream_and_output_cap(counter: TokenCounter) -> None:
    counted = _count(
        counter,
        "/v1/chat/completions",
        model="gpt-4o-2024-08-06",
        messages=[],
        stream=True,
        max_tokens=50,
        max_completion_tokens=100,
    )
    assert counted == RequestTokens("chat", "gpt-4o-2024-08-06", 3, True, 100)


def test_special_token_text_in_user_content_is_plain_text(
    counter: TokenCounter, cl100k: tiktoken.Encoding
) -> None:
    text = "Explain what <|endoftext|> and <|fim_prefix|> mean."
    counted = _count(
        counter, "/v1/chat/completions", model="gpt-4", messages=[{"role": "user", "content": text}]
    )
    assert counted.input_tokens == 3 + 1 + _n(cl100k, text) + 3


def test_large_prompt_is_counted_exactly(counter: TokenCounter, o200k: tiktoken.Encoding) -> None:
    text = "The quick brown fox jumps over the lazy dog. Ünïcödé ✓ 数字 12345\n" * 20_000
    counted = _count(
        counter,
        "/v1/chat/completions",
        model="gpt-4o",
        messages=[{"role": "user", "content": text}],
    )
    assert counted.input_tokens == 3 + 1 + len(o200k.encode_ordinary(text)) + 3


# --- Responses API -----------------------------------------------------------------------------


def test_responses_string_input_and_instructions(
    counter: TokenCounter, o200k: tiktoken.Encoding
) -> None:
    counted = _count(
        counter,
        "/v1/responses",
        model="gpt-4.1",
        instructions="Talk like a pirate.",
        input="Are semicolons optional in JavaScript?",
        max_output_tokens=200,
        stream=True,
    )
    expected = (
        (3 + _n(o200k, "developer") + _n(o200k, "Talk like a pirate."))
        + (3 + _n(o200k, "user") + _n(o200k, "Are semicolons optional in JavaScript?"))
        + 3
    )
    assert counted == RequestTokens("responses", "gpt-4.1", expected, True, 200)


def test_responses_item_list(counter: TokenCounter, o200k: tiktoken.Encoding) -> None:
    counted = _count(
        counter,
        "/v1/responses",
        model="gpt-4o",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is in this image?"},
                    {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                ],
            },
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "lookup",
                "arguments": '{"q": "cat"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "A cat."},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "A cat."}],
            },
        ],
        tools=[
            {
                "type": "function",
                "name": "lookup",
                "description": "Look up",
                "parameters": {"type": "object", "properties": {}},
            },
            {"type": "web_search"},
        ],
    )
    expected = (
        (3 + _n(o200k, "user") + _n(o200k, "What is in this image?") + 85)
        + (_n(o200k, "lookup") + _n(o200k, '{"q": "cat"}'))
        + _n(o200k, "A cat.")
        + (3 + _n(o200k, "assistant") + _n(o200k, "A cat."))
        + 3
        + (7 + _n(o200k, "lookup:Look up") + 12)
    )
    assert counted.input_tokens == expected


# --- Legacy completions and embeddings ---------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected", "outputs"),
    [
        ("Say this is a test", 5, 1),  # OpenAI's API reference example reports 5 prompt tokens
        (["Say this", "is a test"], 2 + 3, 2),  # a completion for each prompt
        ([1, 2, 3, 4], 4, 1),
        ([[1, 2], [3, 4, 5]], 5, 2),
        ([], 0, 1),
    ],
)
def test_completions_prompt_shapes(
    counter: TokenCounter, prompt: object, expected: int, outputs: int
) -> None:
    counted = _count(
        counter, "/v1/completions", model="gpt-3.5-turbo-instruct", prompt=prompt, max_tokens=7
    )
    assert counted == RequestTokens(
        "completions", "gpt-3.5-turbo-instruct", expected, False, 7, choices=outputs
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("The food was delicious and the waiter...", 8),  # API reference example: 8
        (["The food", "was delicious"], 2 + 2),
        ([[1, 2, 3], [4]], 4),
        ([9, 9, 9], 3),
    ],
)
def test_embeddings_input_shapes(counter: TokenCounter, value: object, expected: int) -> None:
    counted = _count(
        counter, "/v1/embeddings", model="text-embedding-3-small", input=value, stream=True
    )
    assert counted == RequestTokens("embeddings", "text-embedding-3-small", expected, False, None)


# --- Anthropic Messages (estimate) -------------------------------------------------------------


def test_anthropic_messages_estimate(counter: TokenCounter, o200k: tiktoken.Encoding) -> None:
    counted = _count(
        counter,
        "/v1/messages",
        model="claude-sonnet-4-20250514",
        max_tokens=1024,
        system=[{"type": "text", "text": "You are terse."}],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "18C"}],
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                ],
            },
        ],
    )
    expected = (
        (3 + _n(o200k, "system") + _n(o200k, "You are terse."))
        + (3 + _n(o200k, "user") + _n(o200k, "Weather in Paris?"))
        + (3 + _n(o200k, "assistant") + _n(o200k, "get_weather") + _n(o200k, '{"city":"Paris"}'))
        + (3 + _n(o200k, "user") + _n(o200k, "18C") + 1600)
        + 3
    )
    assert counted == RequestTokens("messages", "claude-sonnet-4-20250514", expected, False, 1024)


def test_anthropic_inline_image_uses_its_size(counter: TokenCounter) -> None:
    data = _png_data_url(1000, 750).partition(",")[2]

    def with_images(*blocks: object) -> int:
        return _count(
            counter,
            "/v1/messages",
            model="claude-3-5-haiku",
            messages=[{"role": "user", "content": list(blocks)}],
        ).input_tokens

    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    assert with_images(image) - with_images() == 1000  # 1000 * 750 / 750


# --- Routes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/v1/chat/completions", "chat"),
        ("/openai/v1/chat/completions", "chat"),
        ("/v1/chat/completions/", "chat"),
        ("/v1/completions", "completions"),
        ("/v1/embeddings?x=1", "embeddings"),
        ("/v1/responses", "responses"),
        ("/v1/messages", "messages"),
        ("/openai/deployments/my-gpt4o/chat/completions", "chat"),
        ("/v1/models", "other"),
        ("/v1/threads/thread_1/messages", "other"),
        ("/v1/responses/resp_1", "other"),
        ("/assistant/ai-chat/usage", "other"),
    ],
)
def test_routes(counter: TokenCounter, path: str, kind: str) -> None:
    body = b'{"model": "gpt-4o", "messages": [], "input": "x", "prompt": "x"}'
    assert counter.count_request(path, body).kind == kind


def test_unknown_routes_are_not_parsed(counter: TokenCounter) -> None:
    assert counter.count_request("/v1/files", b"\x00 not json") == RequestTokens(
        "other", None, 0, False, None
    )


def test_azure_deployment_name_stands_for_a_missing_model(counter: TokenCounter) -> None:
    counted = counter.count_request(
        "/openai/deployments/gpt-4o-prod/chat/completions", b'{"messages": []}'
    )
    assert counted.model == "gpt-4o-prod"


# --- Invalid bodies ----------------------------------------------------------------------------


CHAT = "/v1/chat/completions"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (CHAT, b"{not json", None),
        (CHAT, b"", None),
        (CHAT, b'["a list"]', None),
        (CHAT, b'{"messages": "hi"}', "messages"),
        (CHAT, b'{"messages": ["hi"]}', "messages.[0]"),
        (CHAT, b'{"messages": [{"content": {"a": 1}}]}', "messages.[0].content"),
        (CHAT, b'{"messages": [{"content": ["x"]}]}', "messages.[0].content.[0]"),
        (
            CHAT,
            b'{"messages": [{"content": [{"type": "text", "text": 5}]}]}',
            "messages.[0].content.[0].text",
        ),
        (CHAT, b'{"messages": [{"role": 7}]}', "messages.[0].role"),
        (CHAT, b'{"messages": [{"tool_calls": {}}]}', "messages.[0].tool_calls"),
        (CHAT, b'{"model": 4, "messages": []}', "model"),
        (CHAT, b'{"messages": [], "stream": "yes"}', "stream"),
        (CHAT, b'{"messages": [], "max_tokens": 1.5}', "max_tokens"),
        (CHAT, b'{"messages": [], "tools": {}}', "tools"),
        ("/v1/responses", b'{"input": 42}', "input"),
        ("/v1/responses", b'{"input": [{"role": "user", "content": 3}]}', "input.[0].content"),
        # A type that is not a string names its field (found by a red-team pass: it was a 500).
        ("/v1/responses", b'{"input": [{"type": {}}]}', "input.[0].type"),
        (
            "/v1/responses",
            b'{"input": [{"type": "reasoning", "summary": [{"type": []}]}]}',
            "input.[0].summary.[0].type",
        ),
        (CHAT, b'{"messages": [{"content": [{"type": {}}]}]}', "messages.[0].content.[0].type"),
        ("/v1/completions", b'{"prompt": [true]}', "prompt.[0]"),
        ("/v1/embeddings", b'{"input": {"text": "x"}}', "input"),
        ("/v1/messages", b'{"messages": [{"content": 1}]}', "messages.[0].content"),
        ("/v1/messages", b'{"system": 3, "messages": []}', "system"),
    ],
)
def test_invalid_bodies_name_the_field(
    counter: TokenCounter, path: str, body: bytes, param: str | None
) -> None:
    with pytest.raises(InvalidRequestBody) as raised:
        counter.count_request(path, body)
    assert isinstance(raised.value, ValueError)
    assert raised.value.param == param
    if param is not None:
        assert f"'{param}'" in raised.value.message


def test_an_azure_deployment_is_the_model_whatever_the_body_says() -> None:
    """Azure serves the deployment the path names and ignores the body's model, so that is
    the model counted (and weighed): a body cannot make an expensive deployment look cheap."""
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    request = TokenCounter().count_request(
        "/openai/deployments/o1-pro/chat/completions", body, kind="chat"
    )
    assert request.model == "o1-pro"
