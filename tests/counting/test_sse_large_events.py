"""An event too large to buffer (a ``data:`` line of megabytes) is read as it passes, for its
type, usage and id; its text is not counted, and the meter never charges less than the prompt."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest
import tiktoken

from budget_guard.counting import RequestTokens, TokenCounter, TokenUsage
from budget_guard.counting.sse import MAX_EVENT_BYTES, SseDecoder

RESPONSES = RequestTokens("responses", "gpt-4.1", 30, True, None)
CHAT = RequestTokens("chat", "gpt-4o", 24, True, None)


def _event(payload: dict[str, object], ending: bytes = b"\n") -> bytes:
    return b"data: " + orjson.dumps(payload) + ending + ending


def _completed(text: str) -> dict[str, object]:
    return {
        "type": "response.completed",
        "response": {
            "id": "resp_big",
            "object": "response",
            "output": [{"type": "message", "content": [{"type": "output_text", "text": text}]}],
            "usage": {"input_tokens": 31, "output_tokens": 700_001, "total_tokens": 700_032},
        },
    }


def _meter(counter: TokenCounter, request: RequestTokens, stream: bytes, size: int) -> object:
    meter = counter.meter(request, "text/event-stream")
    for start in range(0, len(stream), size):
        meter.feed(stream[start : start + size])
    return meter


class Sink:
    def __init__(self) -> None:
        self.events: list[bytes] = []
        self._open: list[bytes] | None = None

    def start(self) -> None:
        self._open = []

    def write(self, data: bytes) -> None:
        assert self._open is not None
        self._open.append(data)

    def end(self) -> None:
        assert self._open is not None
        self.events.append(b"".join(self._open))
        self._open = None


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("size", [1, 7, 64, 1000])
def test_an_event_past_the_bound_is_handed_over_whole_and_in_order(
    ending: bytes, size: int
) -> None:
    payloads: list[bytes] = []
    sink = Sink()
    decoder = SseDecoder(payloads.append, max_event_bytes=64, large=sink)
    big = b"x" * 150
    stream = ending.join(
        [
            b"data: small",
            b"",
            b": a comment",
            b"data: first line",
            b"data: " + big,
            b"data:" + big + b"!",
            b"",
            b"data: after",
            b"",
            b"",
        ]
    )
    for start in range(0, len(stream), size):
        decoder.feed(stream[start : start + size])
    decoder.close()
    assert payloads == [b"small", b"after"]
    assert sink.events == [b"first line\n" + big + b"\n" + big + b"!"]


def test_a_huge_completed_event_still_gives_its_usage_and_id(counter: TokenCounter) -> None:
    text = "word " * 1_000_000  # 5 MB of output inside the one event
    stream = _event({"type": "response.created", "response": {"id": "resp_big"}}) + _event(
        _completed(text)
    )
    assert len(stream) > 4 * MAX_EVENT_BYTES
    for size in (65536, 4093):
        meter = _meter(counter, RESPONSES, stream, size)
        assert meter.ended  # the terminal event was recognised
        assert meter.finish() == TokenUsage(31, 700_001, "upstream")
        assert meter.response_id == "resp_big"


def test_the_huge_event_is_not_held(counter: TokenCounter) -> None:
    """Every chunk is a fresh copy made under tracemalloc, so what the decoder keeps of them
    (up to the bound, before it knows the event is large) counts; the 5 MB event does not."""
    stream = memoryview(_event(_completed("word " * 1_000_000)))
    meter = counter.meter(RESPONSES, "text/event-stream")
    tracemalloc.start()
    try:
        for start in range(0, len(stream), 65536):
            meter.feed(bytes(stream[start : start + 65536]))
        usage = meter.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert usage == TokenUsage(31, 700_001, "upstream")
    assert peak < 2 * MAX_EVENT_BYTES, peak


def test_text_in_a_huge_event_without_usage_falls_back_to_the_prompt(
    counter: TokenCounter, o200k: tiktoken.Encoding
) -> None:
    delta = {"id": "chatcmpl-big", "choices": [{"index": 0, "delta": {"content": "Hello"}}]}
    huge = {"id": "chatcmpl-big", "choices": [{"index": 0, "delta": {"content": "z" * 3_000_000}}]}
    stream = _event(delta) + _event(huge) + _event(delta) + b"data: [DONE]\n\n"
    meter = _meter(counter, CHAT, stream, 65536)
    assert meter.ended
    usage = meter.finish()
    assert usage == TokenUsage(24, len(o200k.encode_ordinary("HelloHello")), "counted")
    assert usage.total_tokens >= CHAT.input_tokens
    assert meter.response_id == "chatcmpl-big"


def test_a_huge_event_cut_short_is_skipped(counter: TokenCounter) -> None:
    stream = _event(_completed("word " * 400_000))
    meter = _meter(counter, RESPONSES, stream[: len(stream) - 200], 65536)
    assert meter.finish() == TokenUsage(30, 0, "counted")


def test_a_huge_item_event_still_names_its_item(counter: TokenCounter) -> None:
    """An image's ``output_item.done`` carries megabytes of base64: its id is still read, so
    the company may send the item back."""
    item = {"type": "image_generation_call", "id": "ig_big", "result": "A" * (4 * MAX_EVENT_BYTES)}
    small = {**item, "result": None}
    stream = (
        _event({"type": "response.created", "response": {"id": "resp_img"}})
        + _event({"type": "response.output_item.added", "output_index": 0, "item": small})
        + _event({"type": "response.output_item.done", "output_index": 0, "item": item})
        + _event(
            {"type": "response.output_item.done", "output_index": 1, "item": {**item, "id": "ig_2"}}
        )
    )
    for size in (65536, 4093):
        meter = _meter(counter, RESPONSES, stream, size)
        assert meter.item_ids == ("ig_big", "ig_2")
        assert meter.response_id == "resp_img"
