"""Readers that take a response body chunk by chunk and hand what they find to the collector.

A JSON body is buffered (up to a cap) because its ``usage`` can only be read once it is whole;
past the cap only its last bytes are kept, which is where every supported API puts ``usage``.
An event stream is decoded as it passes and only the text needed for counting is kept.
"""

from __future__ import annotations

import json
import logging

import orjson

from budget_guard.counting.output_collector import OutputCollector
from budget_guard.counting.output_shapes import collect_event, collect_response
from budget_guard.counting.sse import SseDecoder

logger = logging.getLogger(__name__)

MAX_BUFFERED_JSON_BYTES = 16 * 1024 * 1024
_TAIL_BYTES = 64 * 1024
_DONE = b"[DONE]"
_USAGE_KEY = '"usage"'
_json_decoder = json.JSONDecoder()


class JsonBody:
    __slots__ = ("_cap", "_chunks", "_collector", "_overflowed", "_size", "_tail")

    def __init__(self, collector: OutputCollector, cap: int = MAX_BUFFERED_JSON_BYTES) -> None:
        self._collector = collector
        self._cap = cap
        self._chunks: list[bytes] = []
        self._size = 0
        self._overflowed = False
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        if self._overflowed:
            self._tail = _keep_tail(self._tail, chunk)
            return
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > self._cap:
            logger.info("response body over %d bytes: reading only its usage", self._cap)
            self._tail = b"".join(self._chunks)[-_TAIL_BYTES:]
            self._chunks = []
            self._overflowed = True

    def close(self) -> None:
        if self._overflowed:
            tail = self._tail
        else:
            body = b"".join(self._chunks)
            self._chunks = []
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                collect_response(self._collector, parsed)
                return
            tail = body[-_TAIL_BYTES:]
        usage = usage_in_tail(tail)
        if usage is not None:
            self._collector.usage.merge(usage, final=True)


class EventStream:
    __slots__ = ("_collector", "_decoder")

    def __init__(self, collector: OutputCollector) -> None:
        self._collector = collector
        self._decoder = SseDecoder(self._on_data)

    def feed(self, chunk: bytes) -> None:
        self._decoder.feed(chunk)

    def close(self) -> None:
        self._decoder.close()

    def _on_data(self, payload: bytes) -> None:
        if payload == _DONE:
            self._collector.ended = True
            return
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return  # a truncated or foreign event: skip it, keep the rest
        if isinstance(event, dict):
            collect_event(self._collector, event)


def usage_in_tail(tail: bytes) -> dict[str, object] | None:
    """The last ``"usage": {...}`` object found in the final bytes of a JSON body."""
    text = tail.decode("utf-8", "replace")
    position = text.rfind(_USAGE_KEY)
    while position >= 0:
        colon = text.find(":", position + len(_USAGE_KEY))
        if colon >= 0:
            start = colon + 1
            while start < len(text) and text[start] in " \t\r\n":
                start += 1
            try:
                value, _ = _json_decoder.raw_decode(text, start)
            except ValueError:
                value = None
            if isinstance(value, dict):
                return value
        position = text.rfind(_USAGE_KEY, 0, position)
    return None


def _keep_tail(tail: bytes, chunk: bytes) -> bytes:
    if len(chunk) >= _TAIL_BYTES:
        return chunk[-_TAIL_BYTES:]
    return (tail + chunk)[-_TAIL_BYTES:]
