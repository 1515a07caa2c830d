"""The per-response meter the middleware feeds: cheap per chunk, never raises, always answers."""

from __future__ import annotations

import logging
from typing import Protocol

from budget_guard.counting.output_collector import OutputCollector
from budget_guard.counting.results import RequestTokens, TokenUsage
from budget_guard.counting.routes import EMBEDDINGS
from budget_guard.counting.usage import UsageReport
from budget_guard.failure import describe

logger = logging.getLogger(__name__)

UPSTREAM = "upstream"
COUNTED = "counted"


class BodyReader(Protocol):
    def feed(self, chunk: bytes) -> None: ...

    def close(self) -> None: ...


class ResponseMeter:
    """Measures one response as it passes; ``finish`` gives its usage at end or disconnect.

    With ``prefer_upstream`` the upstream's complete usage report wins (it sees reasoning and
    cached tokens no client-side count can). Otherwise, or when no complete report came (stream
    without ``include_usage``, cut short, upstream error), input is the upstream's figure if it
    gave one and our request count if not, and output is tiktoken over the text produced so far.
    """

    __slots__ = ("_collector", "_prefer_upstream", "_reader", "_request", "_result")

    def __init__(
        self,
        request: RequestTokens,
        reader: BodyReader | None,
        collector: OutputCollector | None,
        *,
        prefer_upstream: bool,
    ) -> None:
        self._request = request
        self._reader = reader
        self._collector = collector
        self._prefer_upstream = prefer_upstream
        self._result: TokenUsage | None = None

    def feed(self, chunk: bytes) -> None:
        reader = self._reader
        if reader is None or self._result is not None:
            return
        try:
            reader.feed(chunk)
        except Exception as error:
            logger.error(
                "metering a %s response failed (%s); keeping what was read",
                self._request.kind,
                describe(error),
            )
            self._reader = None

    @property
    def ended(self) -> bool:
        """The response told its client it is complete (a stream's terminal event). SDKs stop
        reading there and may close the connection before the body's last ASGI message, so
        usage is final at this point, not only at the end of the body."""
        collector = self._collector
        return collector is not None and collector.ended

    def reported_total(self) -> int | None:
        """The upstream's own final usage figure, for routes of no known shape; call after
        ``finish``."""
        collector = self._collector
        if collector is None or not collector.usage.final:
            return None
        return collector.usage.total_tokens

    @property
    def response_id(self) -> str | None:
        """The id of the upstream object this response created (``OutputCollector``), if any.

        Asked for once the body has ended: a small JSON body is only read at its end (see
        ``json_body``), so asking ends the reading, as ``finish`` does."""
        collector = self._collector
        if collector is None:
            return None
        self._close_reader()
        return collector.response_id

    @property
    def item_ids(self) -> tuple[str, ...]:
        """The ids of the output items this response produced (a Responses answer's), which
        are the company's as the response is. Asked for once the body has ended."""
        collector = self._collector
        if collector is None:
            return ()
        self._close_reader()
        return tuple(collector.item_ids)

    def finish(self) -> TokenUsage:
        if self._result is None:
            try:
                self._result = self._measure()
            except Exception as error:
                logger.error(
                    "metering a %s response failed at its end (%s)",
                    self._request.kind,
                    describe(error),
                )
                self._result = TokenUsage(self._request.input_tokens, 0, COUNTED)
        return self._result

    def _measure(self) -> TokenUsage:
        request = self._request
        collector = self._collector
        if collector is None:
            return TokenUsage(request.input_tokens, 0, COUNTED)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        report = collector.usage
        if not self._prefer_upstream:
            return TokenUsage(request.input_tokens, self._counted_output(collector), COUNTED)
        reported_input, reported_output = report.input_tokens, report.output_tokens
        if report.final and reported_input is not None and reported_output is not None:
            return _with_breakdown(report, reported_input, reported_output, UPSTREAM)
        input_tokens = request.input_tokens if reported_input is None else reported_input
        output_tokens = max(self._counted_output(collector), reported_output or 0)
        if reported_input is None:
            return TokenUsage(input_tokens, output_tokens, COUNTED)
        return _with_breakdown(report, input_tokens, output_tokens, COUNTED)

    def _close_reader(self) -> None:
        """End the reading for ``response_id``, which must not raise; ``finish`` then
        measures what was read."""
        reader, self._reader = self._reader, None
        if reader is None:
            return
        try:
            reader.close()
        except Exception as error:
            logger.error(
                "metering a %s response failed at its end (%s); keeping what was read",
                self._request.kind,
                describe(error),
            )

    def _counted_output(self, collector: OutputCollector) -> int:
        return 0 if self._request.kind == EMBEDDINGS else collector.counted_output_tokens()


def _with_breakdown(
    report: UsageReport, input_tokens: int, output_tokens: int, source: str
) -> TokenUsage:
    """The totals with what the report says of caches and reasoning, each bounded by the
    total it is part of (an upstream's inconsistent report never makes a part exceed it)."""
    cache_write = min(report.detail("cache_creation_input_tokens"), input_tokens)
    cache_read = min(report.detail("cache_read_input_tokens"), input_tokens - cache_write)
    cached = min(report.detail("cached_tokens"), input_tokens - cache_write - cache_read)
    return TokenUsage(
        input_tokens,
        output_tokens,
        source,
        cached_input_tokens=cached,
        cache_write_tokens=cache_write,
        cache_read_tokens=cache_read,
        reasoning_tokens=min(report.detail("reasoning_tokens"), output_tokens),
    )
