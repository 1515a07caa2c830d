"""Prometheus metrics: what the guard did, how the store and the upstream answered.

Each :class:`PrometheusEvents` owns a private ``CollectorRegistry`` rather than the
process-global one, so several apps in one process (and the tests) never collide over metric
names, and a host app that has its own ``/metrics`` can merge ours explicitly.

Company ids are label values only when the operator asks for them (``company_labels``):
every company would otherwise become a time series of its own.

With several worker processes (``budget-guard serve --workers N``) each scrape reaches one
worker, so a worker's own numbers would jump between scrapes and seem to reset. The command
then sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start: prometheus_client keeps every
counter and histogram in a file per process there, and :meth:`PrometheusEvents.exposition`
sums them all (prometheus_client's multiprocess mode), so any worker answers for the server.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from time import perf_counter
from typing import Any, TypeVar
from uuid import UUID

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from budget_guard.budget.ledger import Ledger
from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.events import GuardEvents
from budget_guard.guard.journal import UsageJournal
from budget_guard.stores.base import (
    Breakdown,
    Dedupe,
    RecordResult,
    Reservation,
    StoreError,
    UsageStore,
)

__all__ = ["InstrumentedStore", "PrometheusEvents", "instrument_ledger"]

T = TypeVar("T")

STORE_SECONDS_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""A Redis round trip on a LAN is ~0.1–1 ms; the client library's defaults start at 5 ms."""

UPSTREAM_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Time to first byte of a chat model: tens of milliseconds to minutes for long reasoning."""

SOURCES = ("upstream", "counted", "explicit")
REJECT_REASONS = (
    "budget",
    "unauthenticated",
    "forbidden",
    "bad_request",
    "too_large",
    "store_unavailable",
)
NO_COMPANY = "none"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _Children:
    """A metric's labelled children, each looked up once. ``labels()`` validates its values
    and takes the metric's lock on every call, a few microseconds on each request; the
    children never change once made. Only for label sets that are small and fixed (never
    company ids: those stay with the metric, which already holds every child)."""

    __slots__ = ("_made", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._made: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._made.get(values)
        if child is None:
            child = self._made[values] = self._metric.labels(*values)
        return child


class PrometheusEvents(GuardEvents):
    """The guard's events as Prometheus series; pass it as ``events=`` to the middleware."""

    def __init__(
        self, *, registry: CollectorRegistry | None = None, company_labels: bool = False
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.company_labels = company_labels
        company = ("company",) if company_labels else ()
        r = self.registry
        self._tokens = Counter(
            "budget_guard_tokens_recorded",
            "Tokens written to the usage store, by where the number came from: the upstream's "
            "reported usage, counted by the guard, or sent explicitly to the usage endpoint.",
            ("source", *company),
            registry=r,
        )
        self._admitted = Counter(
            "budget_guard_requests_admitted",
            "Guarded requests let through to the upstream.",
            company,
            registry=r,
        )
        self._rejected = Counter(
            "budget_guard_requests_rejected",
            "Guarded requests answered by the guard itself, by reason.",
            ("reason", *company),
            registry=r,
        )
        self._journaled = Counter(
            "budget_guard_tokens_journaled",
            "Tokens kept in the fail-open journal because the store was down.",
            registry=r,
        )
        self._request_store_failures = Counter(
            "budget_guard_request_store_failures",
            "Guarded requests that met a store failure, by stage (admit: served fail-open or "
            "refused fail-closed; record: usage journaled or lost).",
            ("stage",),
            registry=r,
        )
        self._store_seconds = Histogram(
            "budget_guard_store_operation_seconds",
            "Latency of usage store operations, failures included.",
            ("operation",),
            buckets=STORE_SECONDS_BUCKETS,
            registry=r,
        )
        self._store_errors = Counter(
            "budget_guard_store_errors",
            "Usage store operations that failed, by operation and error class.",
            ("operation", "error"),
            registry=r,
        )
        self._upstream_seconds = Histogram(
            "budget_guard_upstream_response_seconds",
            "Time from forwarding a guarded request to the upstream's first response byte, by "
            "status class (2xx, 4xx, 5xx...).",
            ("status_class",),
            buckets=UPSTREAM_SECONDS_BUCKETS,
            registry=r,
        )
        self._tokens_by_source = _Children(self._tokens)
        self._rejected_by_reason = _Children(self._rejected)
        self._store_failures_by_stage = _Children(self._request_store_failures)
        self._store_seconds_by_operation = _Children(self._store_seconds)
        self._store_errors_by_kind = _Children(self._store_errors)
        self._upstream_seconds_by_class = _Children(self._upstream_seconds)
        self._upstream_seconds_by_status: dict[int, Any] = {}
        self._journal_collector = _JournalCollector()
        r.register(self._journal_collector)
        if not company_labels:
            # Touch the fixed series so they read 0 from the first scrape (a rate() over a
            # series that appears mid-way misses its first increments).
            for source in SOURCES:
                self._tokens_by_source(source)
            for reason in REJECT_REASONS:
                self._rejected_by_reason(reason)

    # -- GuardEvents -------------------------------------------------------------------------

    def admitted(self, company_id: UUID) -> None:
        if self.company_labels:
            self._admitted.labels(str(company_id)).inc()
        else:
            self._admitted.inc()

    def rejected(self, company_id: UUID | None, reason: str) -> None:
        if self.company_labels:
            company = str(company_id) if company_id is not None else NO_COMPANY
            self._rejected.labels(reason, company).inc()
        else:
            self._rejected_by_reason(reason).inc()

    def recorded(self, company_id: UUID, tokens: int, source: str) -> None:
        if self.company_labels:
            self._tokens.labels(source, str(company_id)).inc(tokens)
        else:
            self._tokens_by_source(source).inc(tokens)

    def journaled(self, company_id: UUID, tokens: int) -> None:
        self._journaled.inc(tokens)

    def store_failed(self, operation: str) -> None:
        self._store_failures_by_stage(operation).inc()

    def upstream_answered(self, status: int, seconds: float) -> None:
        child = self._upstream_seconds_by_status.get(status)
        if child is None:  # a status class's child, kept per status: no label built per call
            child = self._upstream_seconds_by_class(f"{status // 100}xx")
            if 100 <= status <= 599:
                self._upstream_seconds_by_status[status] = child
        child.observe(seconds)

    # -- wiring ------------------------------------------------------------------------------

    def watch_journal(self, journal: UsageJournal | None) -> None:
        """Report this fail-open journal's depth on every scrape (the middleware's
        ``journal``); the latest call wins, so rebuilding a middleware stack is harmless."""
        self._journal_collector.journal = journal

    def observe_store(self, operation: str, seconds: float, error: str | None = None) -> None:
        self._store_seconds_by_operation(operation).observe(seconds)
        if error is not None:
            self.observe_store_error(operation, error)

    def store_seconds(self, operation: str) -> Any:
        """The histogram child ``operation``'s latency goes into, to keep and call directly."""
        return self._store_seconds_by_operation(operation)

    def observe_store_error(self, operation: str, error: str) -> None:
        self._store_errors_by_kind(operation, error).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format: with ``PROMETHEUS_MULTIPROC_DIR`` set,
        every process's counters and histograms summed (the journal gauges are this
        worker's: each worker has its own journal)."""
        directory = os.environ.get(MULTIPROC_ENV)
        if not directory:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        registry.register(self._journal_collector)
        return generate_latest(registry)

    async def endpoint(self, request: Request) -> Response:
        """A Starlette endpoint serving :meth:`exposition`."""
        return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)


class _JournalCollector(Collector):
    """Reads the journal at scrape time: a gauge that is never stale and costs the request
    path nothing."""

    def __init__(self) -> None:
        self.journal: UsageJournal | None = None

    def collect(self) -> Iterator[Metric]:
        journal = self.journal
        entries = GaugeMetricFamily(
            "budget_guard_journal_entries",
            "Usage entries waiting in the fail-open journal for the store to come back.",
        )
        pending = GaugeMetricFamily(
            "budget_guard_journal_pending_tokens",
            "Tokens waiting in the fail-open journal.",
        )
        replayed = CounterMetricFamily(
            "budget_guard_journal_replayed_entries",
            "Journal entries written to the store after it came back.",
        )
        dropped = CounterMetricFamily(
            "budget_guard_journal_dropped_tokens",
            "Tokens the journal could not keep (it was full) or the store refused on replay: "
            "usage that was served but never charged.",
        )
        entries.add_metric([], len(journal) if journal is not None else 0)
        pending.add_metric([], journal.pending_tokens if journal is not None else 0)
        replayed.add_metric([], journal.replayed_entries if journal is not None else 0)
        dropped.add_metric([], journal.dropped_tokens if journal is not None else 0)
        yield from (entries, pending, replayed, dropped)


class InstrumentedStore:
    """A usage store that times every call into ``metrics`` and counts its errors, without
    touching the store's own code. Anything else is delegated unchanged.

    The calls every request makes (``read``, ``record``; ``reserve`` and ``settle`` in strict
    mode) are timed inline into histogram children looked up once: through a generic wrapper
    (a closure, a second coroutine, a label lookup) timing cost a request on the memory store
    as much as a tenth of the guard's own work."""

    def __init__(self, store: UsageStore, metrics: PrometheusEvents) -> None:
        self.inner = store
        self.window = store.window
        self.remote = store.remote
        self._metrics = metrics
        seconds = metrics.store_seconds
        self._read_seconds = seconds("read")
        self._record_seconds = seconds("record")
        self._reserve_seconds = seconds("reserve")
        self._settle_seconds = seconds("settle")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _timed(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = perf_counter()
        error: str | None = None
        try:
            return await call()
        except StoreError as exc:
            error = type(exc).__name__
            raise
        finally:
            self._metrics.observe_store(operation, perf_counter() - started, error)

    def _failed(self, operation: str, error: StoreError) -> None:
        self._metrics.observe_store_error(operation, type(error).__name__)

    async def record(
        self,
        company_id: UUID,
        tokens: int,
        limit: int,
        *,
        dedupe: Dedupe | None = None,
        breakdown: Breakdown | None = None,
    ) -> RecordResult:
        started = perf_counter()
        try:
            return await self.inner.record(
                company_id, tokens, limit, dedupe=dedupe, breakdown=breakdown
            )
        except StoreError as exc:
            self._failed("record", exc)
            raise
        finally:
            self._record_seconds.observe(perf_counter() - started)

    async def read(self, company_id: UUID, limit: int) -> UsageSnapshot:
        started = perf_counter()
        try:
            return await self.inner.read(company_id, limit)
        except StoreError as exc:
            self._failed("read", exc)
            raise
        finally:
            self._read_seconds.observe(perf_counter() - started)

    async def reserve(self, company_id: UUID, tokens: int, limit: int) -> Reservation:
        started = perf_counter()
        try:
            return await self.inner.reserve(company_id, tokens, limit)
        except StoreError as exc:
            self._failed("reserve", exc)
            raise
        finally:
            self._reserve_seconds.observe(perf_counter() - started)

    async def settle(
        self,
        reservation: Reservation,
        actual: int,
        limit: int,
        *,
        breakdown: Breakdown | None = None,
    ) -> UsageSnapshot:
        started = perf_counter()
        try:
            return await self.inner.settle(reservation, actual, limit, breakdown=breakdown)
        except StoreError as exc:
            self._failed("settle", exc)
            raise
        finally:
            self._settle_seconds.observe(perf_counter() - started)

    async def release(self, reservation: Reservation, limit: int) -> UsageSnapshot:
        return await self._timed("release", lambda: self.inner.release(reservation, limit))

    async def extend(self, reservation: Reservation, limit: int) -> bool:
        return await self._timed("extend", lambda: self.inner.extend(reservation, limit))

    async def buckets(self, company_id: UUID) -> list[tuple[float, int]]:
        return await self._timed("buckets", lambda: self.inner.buckets(company_id))

    async def breakdown(self, company_id: UUID) -> dict[str, int]:
        return await self._timed("breakdown", lambda: self.inner.breakdown(company_id))

    async def remember_object(self, company_id: UUID, object_id: str, ttl: float) -> None:
        await self._timed(
            "remember_object", lambda: self.inner.remember_object(company_id, object_id, ttl)
        )

    async def object_owner(self, object_id: str) -> UUID | None:
        return await self._timed("object_owner", lambda: self.inner.object_owner(object_id))

    async def remember_objects(
        self, company_id: UUID, object_ids: Sequence[str], ttl: float
    ) -> None:
        await self._timed(
            "remember_objects",
            lambda: self.inner.remember_objects(company_id, object_ids, ttl),
        )

    async def object_owners(self, object_ids: Sequence[str]) -> list[UUID | None]:
        return await self._timed("object_owners", lambda: self.inner.object_owners(object_ids))

    async def limit_override(self, company_id: UUID) -> int | None:
        return await self._timed(
            "limit_override",
            lambda: self.inner.limit_override(company_id),  # type: ignore[attr-defined]
        )

    async def set_limit_override(self, company_id: UUID, limit: int | None) -> int | None:
        return await self._timed(
            "set_limit_override",
            lambda: self.inner.set_limit_override(company_id, limit),  # type: ignore[attr-defined]
        )

    async def limit_overrides(self) -> dict[UUID, int]:
        return await self._timed(
            "limit_overrides",
            self.inner.limit_overrides,  # type: ignore[attr-defined]
        )

    async def ping(self) -> None:
        await self._timed("ping", self.inner.ping)

    async def aclose(self) -> None:
        await self.inner.aclose()


def instrument_ledger(ledger: Ledger, metrics: PrometheusEvents) -> Ledger:
    """The same ledger (store, policy) with its store calls measured into ``metrics``."""
    if isinstance(ledger.store, InstrumentedStore):
        return ledger
    instrumented = Ledger(
        InstrumentedStore(ledger.store, metrics), ledger.policy, weights=ledger.weights
    )
    instrumented.thresholds = ledger.thresholds  # the store itself is shared, and watched
    return instrumented
