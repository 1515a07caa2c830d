"""Asking for a stream's usage and hiding the usage chunk: what the upstream and the client see."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from budget_guard.guard.stream_usage import UsageChunkRemover, ask_for_usage

STREAMS = Path(__file__).parent.parent / "counting" / "streams"
WITH_USAGE = (STREAMS / "chat_with_usage.sse").read_bytes()
ENDINGS = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}


def _events(stream: bytes) -> list[bytes]:
    return [event + b"\n\n" for event in stream.split(b"\n\n") if event]


def _usage_event(stream: bytes) -> bytes:
    (usage,) = [e for e in _events(stream) if b'"choices":[]' in e]
    return usage


def _through(remover: UsageChunkRemover, pieces: list[bytes]) -> bytes:
    out = b"".join(remover.feed(piece, last=False) for piece in pieces)
    return out + remover.feed(b"", last=True)


def test_the_option_is_added_and_nothing_else_changes() -> None:
    body = orjson.dumps(
        {"model": "o3", "stream": True, "messages": [{"role": "user", "content": "é 🌍"}]}
    )
    asked = orjson.loads(ask_for_usage(body) or b"")
    assert asked.pop("stream_options") == {"include_usage": True}
    assert asked == orjson.loads(body)


def test_other_stream_options_are_kept() -> None:
    body = b'{"stream": true, "stream_options": {"include_obfuscation": false}}'
    assert orjson.loads(ask_for_usage(body) or b"")["stream_options"] == {
        "include_obfuscation": False,
        "include_usage": True,
    }


@pytest.mark.parametrize(
    "body",
    [
        b'{"stream": false, "messages": []}',
        b'{"messages": []}',
        b'{"stream": true, "stream_options": {"include_usage": true}}',
        b'{"stream": true, "stream_options": "bad"}',  # the upstream refuses it, not us
        b"[1, 2]",
        b"not json",
    ],
)
def test_bodies_that_need_no_change_are_left_alone(body: bytes) -> None:
    assert ask_for_usage(body) is None


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_only_the_usage_chunk_is_removed_however_the_bytes_are_split(ending: bytes) -> None:
    stream = WITH_USAGE.replace(b"\n", ending)
    expected = WITH_USAGE.replace(_usage_event(WITH_USAGE), b"").replace(b"\n", ending)
    assert expected != stream
    assert _through(UsageChunkRemover(), [stream]) == expected
    for offset in range(0, len(stream), 7):
        pieces = [stream[:offset], stream[offset:]]
        assert _through(UsageChunkRemover(), pieces) == expected
    one_byte_at_a_time = [stream[i : i + 1] for i in range(len(stream))]
    assert _through(UsageChunkRemover(), one_byte_at_a_time) == expected


def test_whole_events_are_not_held_back() -> None:
    remover = UsageChunkRemover()
    first, second = _events(WITH_USAGE)[:2]
    assert remover.feed(first + second[:10], last=False) == first
    assert remover.feed(second[10:], last=False) == second


def test_a_chunk_with_choices_and_usage_is_kept() -> None:
    """Some servers put usage on the last content chunk: it carries text, so it stays."""
    event = (
        b'data: {"choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"total_tokens":3}}\n\n'
    )
    assert _through(UsageChunkRemover(), [event, b"data: [DONE]\n\n"]) == (
        event + b"data: [DONE]\n\n"
    )


def test_a_stream_without_event_ends_passes_through() -> None:
    remover = UsageChunkRemover()
    blob = b"x" * (2 * 1024 * 1024)
    assert remover.feed(blob, last=False) == blob
    assert remover.feed(b'data: {"choices":[],"usage":{}}\n\n', last=True).startswith(b"data")
