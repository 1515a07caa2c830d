"""The dispatcher's counters as Prometheus metrics (read at scrape time, nothing on the
delivery path)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from budget_guard.alerts.dispatcher import AlertDispatcher


class AlertCollector(Collector):
    def __init__(self, dispatcher: AlertDispatcher) -> None:
        self._dispatcher = dispatcher

    def collect(self) -> Iterator[Metric]:
        d = self._dispatcher
        yield CounterMetricFamily(
            "budget_guard_alerts_delivered",
            "Threshold alert deliveries a receiver accepted (2xx, or the callback returned).",
            value=d.delivered,
        )
        yield CounterMetricFamily(
            "budget_guard_alerts_dropped",
            "Threshold alert deliveries refused because this process's queue was full.",
            value=d.dropped,
        )
        yield CounterMetricFamily(
            "budget_guard_alerts_failed",
            "Threshold alert deliveries given up after alerts.max_attempts tries.",
            value=d.failed,
        )
        yield GaugeMetricFamily(
            "budget_guard_alerts_pending",
            "Threshold alert deliveries queued, being sent or waiting to retry.",
            value=d.pending,
        )
