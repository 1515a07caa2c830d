"""Asking the upstream for a stream's usage when the client did not, and hiding the answer.

A streamed Chat Completion (or legacy Completion) carries no usage unless the request sets
``stream_options.include_usage``; the guard then counts the visible text with tiktoken, and
reasoning tokens, which the upstream bills and a reasoning model may spend ten times over,
stay invisible: the budget undercounts. With ``guard.request_stream_usage`` the guard sets
that option on the way in and removes, on the way out, the one usage-only chunk it caused, so
the client reads the stream it asked for. (The upstream also adds ``"usage": null`` to every
other chunk; that is part of the documented chunk shape and SDKs ignore it.)
"""

from __future__ import annotations

import re
from typing import Any

import orjson

ASKS_FOR_USAGE = frozenset({"chat", "completions"})
"""Request kinds whose streams report usage only when asked."""

# One event ends at a blank line; CRLF is one line ending (atomic groups keep "\r\n" from
# being read as two).
_EVENT_END = re.compile(rb"(?>\r\n|\n|\r)(?>\r\n|\n|\r)")
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_MAX_HELD_BYTES = 1024 * 1024


def ask_for_usage(body: bytes) -> bytes | None:
    """``body`` with ``stream_options.include_usage`` set, or None when it needs no change
    (not a stream, already asking, or a body the upstream should see and refuse as it is)."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(request, dict) or request.get("stream") is not True:
        return None
    options = request.get("stream_options")
    if options is None:
        options = {}
    elif not isinstance(options, dict):
        return None
    if options.get("include_usage") is True:
        return None
    request["stream_options"] = {**options, "include_usage": True}
    return orjson.dumps(request)


class UsageChunkRemover:
    """Passes an event stream through unchanged but for the usage-only chunk (``choices``
    empty, ``usage`` an object). Whole events go out as soon as their blank line arrives; only
    an event's unfinished tail waits for its next bytes."""

    __slots__ = ("_held", "_passing")

    def __init__(self) -> None:
        self._held = b""
        self._passing = False  # gave up (no event end in a long run of bytes): pass all

    def feed(self, chunk: bytes, *, last: bool) -> bytes:
        if self._passing:
            return chunk
        data = self._held + chunk if self._held else chunk
        if last:
            self._held = b""
            return _without_usage_chunks(data)
        # A final CR may be the first half of a CRLF: judge it with the bytes that follow.
        limit = len(data) - 1 if data.endswith(b"\r") else len(data)
        end = 0
        for match in _EVENT_END.finditer(data, 0, limit):
            end = match.end()
        if end == 0:
            if len(data) > _MAX_HELD_BYTES:
                self._passing = True  # not an event stream we understand: hide nothing
                self._held = b""
                return data
            self._held = data
            return b""
        self._held = data[end:]
        return _without_usage_chunks(data[:end])


def _without_usage_chunks(events: bytes) -> bytes:
    if not _USAGE_OBJECT.search(events):
        return events
    kept: list[bytes] = []
    start = 0
    for match in _EVENT_END.finditer(events):
        event = events[start : match.end()]
        start = match.end()
        if not _is_usage_chunk(event):
            kept.append(event)
    tail = events[start:]
    if tail and not _is_usage_chunk(tail):
        kept.append(tail)
    return b"".join(kept)


def _is_usage_chunk(event: bytes) -> bool:
    if not _USAGE_OBJECT.search(event):
        return False
    data = [line[5:].removeprefix(b" ") for line in event.splitlines() if line.startswith(b"data:")]
    try:
        payload: Any = orjson.loads(b"\n".join(data))
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(payload, dict)
        and payload.get("choices") == []
        and isinstance(payload.get("usage"), dict)
    )
