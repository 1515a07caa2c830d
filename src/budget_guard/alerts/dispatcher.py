"""Delivering threshold events: a bounded queue per process, drained in the background.

The store tells :meth:`AlertDispatcher.offer` (a plain function: it only enqueues), so a
guarded request never waits for, fails on, or is changed by a delivery. Each delivery is
tried until it succeeds or ``max_attempts`` is spent, with exponential backoff (doubling, at
most a minute). A delivery waiting to retry still holds its place in the queue's bound, and
does not hold up any other delivery: a receiver that is down loses nothing the queue can
hold; what it cannot hold is logged and counted (:attr:`dropped`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

import httpx

from budget_guard.alerts.events import ThresholdCrossed
from budget_guard.alerts.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.failure import describe

log = logging.getLogger("budget_guard.alerts")

AlertCallback = Callable[[ThresholdCrossed], Awaitable[None]]
"""A library user's receiver: raising counts as a failed attempt (it is retried)."""

MAX_BACKOFF_SECONDS = 60.0


@dataclass
class _Delivery:
    event: ThresholdCrossed
    target: str | AlertCallback
    attempt: int = 0


class AlertDispatcher:
    """Use as ``async with AlertDispatcher(...) as alerts:`` (or ``start`` / ``aclose``) and
    pass :meth:`offer` as the store's threshold sink (``ledger.watch_thresholds``)."""

    def __init__(
        self,
        *,
        webhooks: Sequence[str] = (),
        secret: str = "",
        callback: AlertCallback | None = None,
        queue_size: int = 10_000,
        max_attempts: int = 20,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 5.0,
        senders: int = 4,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if webhooks and not secret:
            raise ValueError("webhooks are signed: a secret is required")
        self._targets: list[str | AlertCallback] = [*webhooks]
        if callback is not None:
            self._targets.append(callback)
        self._secret = secret
        self._bound = queue_size
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds
        self._senders = senders
        self._client = client
        self._own_client = client is None
        self._clock = clock
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue()
        self._pending = 0  # queued + being sent + waiting to retry
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self.delivered = 0
        self.dropped = 0
        """Deliveries refused because the queue was full (each logged)."""
        self.failed = 0
        """Deliveries given up after ``max_attempts`` (each logged)."""

    @property
    def pending(self) -> int:
        return self._pending

    async def __aenter__(self) -> AlertDispatcher:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self._tasks:
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        self._tasks = [
            asyncio.create_task(self._send_forever(), name=f"budget-guard-alerts-{i}")
            for i in range(self._senders)
        ]

    async def aclose(self, drain_seconds: float = 2.0) -> None:
        """Give what is queued ``drain_seconds`` to go out, then stop."""
        if self._tasks and self._pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), drain_seconds)
        for timer in self._timers:
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def offer(self, company_id: UUID, threshold: float, snap: UsageSnapshot) -> None:
        """The store's threshold sink: builds the event and enqueues one delivery per
        target. Never blocks and never raises."""
        event = ThresholdCrossed.from_snapshot(company_id, threshold, snap, self._clock())
        for target in self._targets:
            if self._pending >= self._bound:
                self.dropped += 1
                log.error(
                    "alert queue full: event dropped",
                    extra={"event_id": event.event_id, "company_id": str(company_id)},
                )
                continue
            self._pending += 1
            self._queue.put_nowait(_Delivery(event, target))

    async def _send_forever(self) -> None:
        while True:
            delivery = await self._queue.get()
            delivery.attempt += 1
            try:
                await self._send(delivery)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._retry_or_give_up(delivery, describe(error))
            else:
                self._pending -= 1
                self.delivered += 1
            finally:
                self._queue.task_done()

    async def _send(self, delivery: _Delivery) -> None:
        target = delivery.target
        if not isinstance(target, str):
            await target(delivery.event)
            return
        assert self._client is not None
        body = delivery.event.body()
        stamp = int(self._clock())
        response = await self._client.post(
            target,
            content=body,
            headers={
                "content-type": "application/json",
                "user-agent": "budget-guard-alerts",
                EVENT_ID_HEADER: delivery.event.event_id,
                TIMESTAMP_HEADER: str(stamp),
                SIGNATURE_HEADER: sign(self._secret, stamp, body),
            },
            timeout=self._timeout,
        )
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"receiver answered HTTP {response.status_code}")

    def _retry_or_give_up(self, delivery: _Delivery, reason: str) -> None:
        fields = {
            "event_id": delivery.event.event_id,
            "company_id": str(delivery.event.company_id),
            "attempt": delivery.attempt,
            "reason": reason,
        }
        if delivery.attempt >= self._max_attempts:
            self._pending -= 1
            self.failed += 1
            log.error("alert delivery given up", extra=fields)
            return
        delay = min(MAX_BACKOFF_SECONDS, self._backoff * 2 ** (delivery.attempt - 1))
        log.warning("alert delivery failed; retrying in %.1fs", delay, extra=fields)
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle

        def requeue() -> None:
            self._timers.discard(timer)
            self._queue.put_nowait(delivery)

        timer = loop.call_later(delay, requeue)
        self._timers.add(timer)
