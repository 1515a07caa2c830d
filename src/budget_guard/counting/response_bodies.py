"""Reading an event stream chunk by chunk and handing what each event says to the collector.

Events are decoded as they pass and only the text still to be counted is kept; an event too
large to buffer is read as it passes by ``large_event``. (A non-streamed JSON body is read
by ``json_body``.)
"""

from __future__ import annotations

import orjson

from budget_guard.counting.large_event import LargeEventReader
from budget_guard.counting.output_collector import OutputCollector
from budget_guard.counting.output_shapes import collect_event
from budget_guard.counting.sse import SseDecoder

_DONE = b"[DONE]"


class EventStream(SseDecoder):
    """An SSE decoder whose events go to the collector: a chunk costs one call into the
    decoder, not a wrapper's call around it."""

    __slots__ = ("_collector",)

    def __init__(self, collector: OutputCollector) -> None:
        super().__init__(self._event, large=LargeEventReader(collector))
        self._collector = collector

    def _event(self, payload: bytes) -> None:
        if payload == _DONE:
            self._collector.ended = True
            return
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return  # a truncated or foreign event: skip it, keep the rest
        if isinstance(event, dict):
            collect_event(self._collector, event)
