"""Streamed (SSE) responses: the same usage however the bytes are split, partial counts when cut.

The recorded streams in ``streams/`` follow the event shapes of each API: Chat Completions with
``stream_options.include_usage``, Chat tool calls without usage, the Responses API, Anthropic
Messages and legacy Completions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from budget_guard.counting import RequestTokens, TokenCounter, TokenUsage
from budget_guard.counting.sse import SseDecoder
from budget_guard.encodings import load_shipped_encoding

STREAMS = Path(__file__).parent / "streams"
CHAT_FULL_TEXT = "Bonjour à tous 🌍! Ça va très bien, merci — 日本語も少し。"
TOOL_CALL_TEXTS = [
    "get_current_weather",
    '{"location": "São Paulo, BR", "unit": "celsius"}',
    "get_time",
    '{"tz": "America/Sao_Paulo"}',
]


def recorded_stream(name: str) -> bytes:
    return (STREAMS / name).read_bytes()


def _n(encoding: tiktoken.Encoding, text: str) -> int:
    return len(encoding.encode_ordinary(text))


def _cases() -> list[tuple[str, RequestTokens, TokenUsage]]:
    cl100k = load_shipped_encoding("cl100k_base")
    return [
        (
            "chat_with_usage.sse",
            RequestTokens("chat", "gpt-4o", 24, True, None),
            TokenUsage(24, 19, "upstream"),
        ),
        (
            "chat_tool_calls.sse",
            RequestTokens("chat", "gpt-4-0613", 80, True, None),
            TokenUsage(80, sum(_n(cl100k, text) for text in TOOL_CALL_TEXTS), "counted"),
        ),
        (
            "responses.sse",
            RequestTokens("responses", "gpt-4.1", 30, True, None),
            TokenUsage(36, 87, "upstream", reasoning_tokens=64),
        ),
        (
            "anthropic.sse",
            RequestTokens("messages", "claude-sonnet-4-20250514", 400, True, 1024),
            TokenUsage(
                472 + 100 + 2048, 89, "upstream", cache_write_tokens=100, cache_read_tokens=2048
            ),
        ),
        (
            "completions.sse",
            RequestTokens("completions", "gpt-3.5-turbo-instruct", 5, True, 16),
            TokenUsage(5, _n(cl100k, "\n\nThis is a test of streaming."), "counted"),
        ),
    ]


CASES = _cases()
CASE_IDS = [name for name, _, _ in CASES]
LINE_ENDINGS = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}


def _with_line_ending(stream: bytes, ending: bytes) -> bytes:
    return stream.replace(b"\n", ending)


def _meter(counter: TokenCounter, request: RequestTokens, pieces: Iterable[bytes]) -> TokenUsage:
    meter = counter.meter(request, "text/event-stream; charset=utf-8")
    for piece in pieces:
        meter.feed(piece)
    return meter.finish()


@dataclass(frozen=True)
class Recorded:
    stream: bytes
    request: RequestTokens
    expected: TokenUsage


@pytest.fixture(
    params=[(case, ending) for case in CASES for ending in LINE_ENDINGS],
    ids=[f"{name}-{ending}" for name, _, _ in CASES for ending in LINE_ENDINGS],
)
def recorded(request: pytest.FixtureRequest) -> Recorded:
    """Each recorded stream, with each kind of line ending."""
    (name, request_tokens, expected), ending = request.param
    stream = _with_line_ending(recorded_stream(name), LINE_ENDINGS[ending])
    return Recorded(stream, request_tokens, expected)


def test_recorded_stream_whole(counter: TokenCounter, recorded: Recorded) -> None:
    assert _meter(counter, recorded.request, [recorded.stream]) == recorded.expected


def test_recorded_stream_split_at_every_byte_offset(
    counter: TokenCounter, recorded: Recorded
) -> None:
    stream = recorded.stream
    for offset in range(len(stream) + 1):
        usage = _meter(counter, recorded.request, [stream[:offset], stream[offset:]])
        assert usage == recorded.expected, f"split at byte {offset}"


def test_usage_is_final_at_the_terminal_event(counter: TokenCounter, recorded: Recorded) -> None:
    """SDKs stop reading at [DONE] / response.completed / message_stop, so the meter must know
    the answer is whole there, with nothing but blank lines left, and no sooner."""
    stream = recorded.stream
    meter = counter.meter(recorded.request, "text/event-stream")
    for offset in range(len(stream)):
        meter.feed(stream[offset : offset + 1])
        if meter.ended:
            break
    assert meter.ended
    assert not stream[offset + 1 :].strip()
    assert meter.finish() == recorded.expected


@pytest.mark.parametrize(("name", "request_tokens", "expected"), CASES, ids=CASE_IDS)
def test_recorded_stream_one_byte_at_a_time(
    counter: TokenCounter, name: str, request_tokens: RequestTokens, expected: TokenUsage
) -> None:
    stream = _with_line_ending(recorded_stream(name), b"\r\n")
    assert _meter(counter, request_tokens, (stream[i : i + 1] for i in range(len(stream)))) == (
        expected
    )


@pytest.mark.parametrize(("name", "request_tokens", "expected"), CASES, ids=CASE_IDS)
def test_stream_cut_at_every_byte_offset_never_fails(
    counter: TokenCounter, name: str, request_tokens: RequestTokens, expected: TokenUsage
) -> None:
    stream = recorded_stream(name)
    for offset in range(len(stream)):
        usage = _meter(counter, request_tokens, [stream[:offset]])
        assert usage.source in ("upstream", "counted")
        assert 0 <= usage.output_tokens <= max(expected.output_tokens, 100)


def test_chat_stream_cut_before_its_usage_counts_the_text(
    counter: TokenCounter, o200k: tiktoken.Encoding
) -> None:
    stream = recorded_stream("chat_with_usage.sse")
    cut = stream.index(b'data: {"id":"chatcmpl-B1","object":"chat.completion.chunk"', 1500)
    request = RequestTokens("chat", "gpt-4o", 24, True, None)
    assert _meter(counter, request, [stream[:cut]]) == TokenUsage(
        24, _n(o200k, CHAT_FULL_TEXT), "counted"
    )
    first_two_deltas = stream[: stream.index(b" \xc3\xa0 tous")]  # cut inside the third event
    assert _meter(counter, request, [first_two_deltas]) == TokenUsage(
        24, _n(o200k, "Bonjour"), "counted"
    )


def test_anthropic_stream_cut_keeps_upstream_input_and_counts_output(
    counter: TokenCounter, o200k: tiktoken.Encoding
) -> None:
    stream = recorded_stream("anthropic.sse")
    cut = stream.index(b"event: content_block_stop")
    request = RequestTokens("messages", "claude-sonnet-4-20250514", 400, True, 1024)
    text = "Let me check the weather in Zürich for you — one moment."
    # The cache figures message_start reported stand, as its input does.
    assert _meter(counter, request, [stream[:cut]]) == TokenUsage(
        2620, _n(o200k, text), "counted", cache_write_tokens=100, cache_read_tokens=2048
    )


def test_responses_stream_cut_counts_the_deltas(
    counter: TokenCounter, o200k: tiktoken.Encoding
) -> None:
    stream = recorded_stream("responses.sse")
    cut = stream.index(b"event: response.output_text.done")
    request = RequestTokens("responses", "gpt-4.1", 30, True, None)
    text = "Once upon a time, a unicorn named Lumière dreamed of ✨stars✨ and fell asleep."
    assert _meter(counter, request, [stream[:cut]]) == TokenUsage(30, _n(o200k, text), "counted")


def test_tiktoken_authoritative_over_a_stream(o200k: tiktoken.Encoding) -> None:
    counter = TokenCounter(prefer_upstream_usage=False)
    request = RequestTokens("chat", "gpt-4o", 24, True, None)
    usage = _meter(counter, request, [recorded_stream("chat_with_usage.sse")])
    assert usage == TokenUsage(24, _n(o200k, CHAT_FULL_TEXT), "counted")


def test_malformed_events_are_skipped(counter: TokenCounter, o200k: tiktoken.Encoding) -> None:
    stream = b"".join(
        [
            b": comment\n\n",
            b"retry: 1000\nid: 7\nevent: odd\n\n",
            b"data: {not json}\n\n",
            b"data: [1, 2, 3]\n\n",
            b'data: "a string"\n\n',
            b"data\n\n",
            b'data:{"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n',
            b'data: {"choices":[{"index":0,"delta":{"content":5}}]}\n\n',
            b'data: {"choices":"nope","usage":"nope"}\n\n',
            b'data: {"choices":[{"index":0,\n',  # one JSON event over two data lines
            b'data: "delta":{"content":"lo world"}}]}\n\n',
            b"\xff\xfe garbage bytes \xc3\n\n",
            b'data: {"choices":[{"index":0,"delta":{"content":"!"}}]}',  # ends with no blank line
        ]
    )
    request = RequestTokens("chat", "gpt-4o", 9, True, None)
    for offset in range(len(stream) + 1):
        usage = _meter(counter, request, [stream[:offset], stream[offset:]])
        assert usage == TokenUsage(9, _n(o200k, "Hello world!"), "counted"), offset


def test_overlong_lines_are_dropped_not_buffered() -> None:
    payloads: list[bytes] = []
    decoder = SseDecoder(payloads.append, max_event_bytes=64)
    decoder.feed(b"data: first\n\n")
    decoder.feed(b"data: " + b"x" * 50)
    decoder.feed(b"y" * 50)  # past the limit: this line is dropped
    decoder.feed(b"z" * 10_000)
    decoder.feed(b"\n\ndata: after\n\n")
    decoder.close()
    assert payloads == [b"first", b"after"]


def test_long_outputs_are_counted_in_folds_without_drift(o200k: tiktoken.Encoding) -> None:
    counter = TokenCounter()
    request = RequestTokens("completions", "gpt-4o", 1, True, None)
    meter = counter.meter(request, "text/event-stream")
    words = [f" word{i % 97}" for i in range(400_000)]  # about 3 MiB of text
    for start in range(0, len(words), 50):
        delta = "".join(words[start : start + 50])
        meter.feed(b'data: {"choices":[{"index":0,"text":"' + delta.encode() + b'"}]}\n\n')
    assert meter.finish() == TokenUsage(1, _n(o200k, "".join(words)), "counted")


EVENT_CHUNKS = st.lists(
    st.sampled_from(
        [
            b"data: {}\n\n",
            b'data: {"a":1}\n\n',
            b"data:x\n\n",
            b"data: x\r\n\r\n",
            b"data: a\ndata: b\n\n",
            b": comment\n\n",
            b"data: ",
            b"part\n",
            b"\n",
            b"\r",
            b"data: " + b"y" * 70 + b"\n\n",
            b"event: e\ndata: z\n\n",
        ]
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(chunks=EVENT_CHUNKS)
def test_whole_events_are_decoded_as_their_bytes_one_at_a_time_are(chunks: list[bytes]) -> None:
    """The shortcut for a chunk that is one whole ``data:`` event gives what the general
    path gives, whatever came before it (a partial line, a pending CR, an event too large)."""
    whole: list[bytes] = []
    decoder = SseDecoder(whole.append, max_event_bytes=64)
    for chunk in chunks:
        decoder.feed(chunk)
    decoder.close()
    bytewise: list[bytes] = []
    reference = SseDecoder(bytewise.append, max_event_bytes=64)
    for byte in b"".join(chunks):
        reference.feed(bytes([byte]))
    reference.close()
    assert whole == bytewise


def test_a_responses_stream_names_the_items_it_produced(counter: TokenCounter) -> None:
    """Each item's id, from the event that adds it, the one that completes it or the final
    response (once each, in order): the company may send them back by id."""
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": []}
    message = {"type": "message", "id": "msg_1", "role": "assistant", "content": []}
    events = [
        {"type": "response.created", "response": {"id": "resp_1", "output": []}},
        {"type": "response.output_item.added", "output_index": 0, "item": reasoning},
        {"type": "response.output_item.done", "output_index": 0, "item": reasoning},
        {"type": "response.output_item.added", "output_index": 1, "item": message},
        {
            "type": "response.completed",
            "response": {
                "id": "resp_1",
                "output": [reasoning, message, {"type": "message", "id": "msg_2"}],
                "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
            },
        },
    ]
    stream = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in events)
    request = RequestTokens("responses", "gpt-4.1", 5, True, None)
    meter = counter.meter(request, "text/event-stream")
    for start in range(0, len(stream), 9):
        meter.feed(stream[start : start + 9])
    assert meter.item_ids == ("rs_1", "msg_1", "msg_2")
    assert meter.response_id == "resp_1"


def test_a_chat_stream_names_its_audio_answer(counter: TokenCounter) -> None:
    chunks = [
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        {
            "id": "chatcmpl-1",
            "choices": [{"index": 0, "delta": {"audio": {"id": "audio_1", "data": "AAAA"}}}],
        },
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"audio": {"data": "BBBB"}}}]},
    ]
    stream = b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks)
    meter = counter.meter(RequestTokens("chat", "gpt-4o", 5, True, None), "text/event-stream")
    meter.feed(stream + b"data: [DONE]\n\n")
    assert meter.item_ids == ("audio_1",)


def test_an_anthropic_stream_names_its_code_execution_container(counter: TokenCounter) -> None:
    events = [
        {"type": "message_start", "message": {"id": "msg_01", "container": None, "usage": {}}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "container": {"id": "container_1"}},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_stop"},
    ]
    stream = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in events)
    request = RequestTokens("messages", "claude-sonnet-4-5", 5, True, None)
    meter = counter.meter(request, "text/event-stream")
    meter.feed(stream)
    assert meter.item_ids == ("container_1",)


def test_a_responses_stream_names_the_files_its_citations_name(counter: TokenCounter) -> None:
    citation = {"type": "container_file_citation", "file_id": "cfile_1", "container_id": "cntr_1"}
    message = {
        "type": "message",
        "id": "msg_1",
        "content": [{"type": "output_text", "text": "x", "annotations": [citation]}],
    }
    events = [
        {"type": "response.created", "response": {"id": "resp_1"}},
        {"type": "response.output_text.annotation.added", "annotation": citation},
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": "response.output_text.annotation.added", "annotation": {"type": "url_citation"}},
    ]
    stream = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in events)
    meter = counter.meter(RequestTokens("responses", "gpt-4.1", 5, True, None), "text/event-stream")
    meter.feed(stream)
    assert meter.item_ids == ("cfile_1", "cntr_1", "msg_1")
