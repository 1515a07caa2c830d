"""A stream event too large to buffer (``sse.MAX_EVENT_BYTES``), read as it passes for what
decides the charge: its ``type``, its ``usage`` and the id of what it created.

Such an event is a Responses API ``response.completed`` carrying a very long answer or
generated images, or an Anthropic ``message_start`` of the same kind: its usage is the one that
matters, and it sits at a fixed path (``usage``, ``response.usage``, ``message.usage``). The
text in such an event is not counted (it was counted from the deltas before it, or the
upstream's usage stands); a stream whose only text came in one is charged its prompt. The
walker skips the rest without holding it, so this costs no more memory than a small event.
"""

from __future__ import annotations

from typing import Any

import orjson

from budget_guard.counting.json_walker import SKIP, WALK, JsonWalker, PathKey, ShortValue, Sink
from budget_guard.counting.output_collector import MAX_RESPONSE_ID_CHARS, OutputCollector
from budget_guard.counting.output_shapes import collect_event

_MAX_USAGE_CHARS = 64 * 1024
_MAX_TYPE_CHARS = 64
_OBJECTS = ("response", "message")  # what an event carries its created object's usage in
_ID_HOLDERS = (*_OBJECTS, "item")  # and its id, or an output item's (an image's, say)


class LargeEventReader:
    """An ``sse.LargeEvent`` and the ``json_walker.Router`` that reads it."""

    __slots__ = ("_collector", "_found", "_walker")

    def __init__(self, collector: OutputCollector) -> None:
        self._collector = collector
        self._walker: JsonWalker | None = None
        self._found: dict[PathKey, str] = {}

    def start(self) -> None:
        self._walker = JsonWalker(self)
        self._found = {}

    def write(self, data: bytes) -> None:
        if self._walker is not None:
            self._walker.feed(data)

    def end(self) -> None:
        walker, self._walker = self._walker, None
        if walker is None:
            return
        walker.close()
        if walker.complete:  # a cut event is skipped, as a small one that does not parse
            collect_event(self._collector, self._event())

    def container(self, path: PathKey, is_object: bool) -> str | Sink:
        if path == () or (len(path) == 1 and path[0] in _ID_HOLDERS):
            return WALK
        if path in (("usage",), ("response", "usage"), ("message", "usage")):
            return ShortValue(_MAX_USAGE_CHARS, lambda raw: self._keep(path, raw))
        return SKIP

    def string(self, path: PathKey) -> Sink | None:
        if path == ("type",):
            return ShortValue(_MAX_TYPE_CHARS, lambda text: self._keep(path, text))
        if path == ("id",) or (len(path) == 2 and path[0] in _ID_HOLDERS and path[1] == "id"):
            return ShortValue(MAX_RESPONSE_ID_CHARS, lambda text: self._keep(path, text))
        return None

    def closed(self, path: PathKey) -> None:
        pass

    def _keep(self, path: PathKey, value: str | None) -> None:
        if value is not None:
            self._found[path] = value

    def _event(self) -> dict[str, Any]:
        """The event with only what was kept, in the shape ``collect_event`` reads."""
        event: dict[str, Any] = {}
        for path, value in self._found.items():
            if path[-1] == "usage":
                try:
                    parsed: Any = orjson.loads(value)
                except orjson.JSONDecodeError:
                    continue
            else:
                parsed = value
            target = event
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = parsed
        return event
