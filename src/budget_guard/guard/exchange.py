"""One forwarded request, from the body handed on to the usage recorded.

Like Starlette's ``GZipResponder``, the per-request state lives in one object that wraps the
app's ``receive`` and ``send``:

- ``receive`` replays the body the guard read, then hides the client's disconnect from the
  app until the response has ended: the upstream bills a generation whether or not the
  client waited for it, so the app keeps reading it to its end (a client that leaves before
  the first byte pays like one that stayed), bounded by ``guard.abandoned_seconds``;
- ``send`` meters the response as it passes, adds the budget headers, and records the cost
  just before the client has its whole answer (the last byte, or a stream's terminal event,
  where the SDKs stop reading), so a client that then reads its usage sees this request;
- the cost is recorded exactly once however the exchange ends, shielded from cancellation.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.counting import RequestTokens, ResponseMeter
from budget_guard.eager import run_shielded
from budget_guard.guard.charging import breakdown_of, charge
from budget_guard.guard.fine_tuned_models import JobAnswer
from budget_guard.guard.replies import budget_headers
from budget_guard.guard.routes import METERED, USAGE, Route
from budget_guard.guard.stream_usage import UsageChunkRemover
from budget_guard.proxy.upstream import UPSTREAM_MAY_BILL
from budget_guard.stores import Reservation, StoreError

if TYPE_CHECKING:
    from budget_guard.guard.middleware import BudgetGuardMiddleware

log = logging.getLogger("budget_guard.guard")


class GuardedExchange:
    __slots__ = (
        "_asked_for_usage",
        "_body",
        "_cancelling",
        "_client_gone",
        "_deadline",
        "_ended",
        "_expired",
        "_extending",
        "_forwarded_at",
        "_guard",
        "_headers",
        "_job",
        "_meter",
        "_receive",
        "_recorded",
        "_remaining",
        "_remover",
        "_renewal",
        "_send",
        "_status",
        "_task",
        "company",
        "request",
        "reservation",
        "route",
    )

    def __init__(
        self,
        guard: BudgetGuardMiddleware,
        receive: Receive,
        send: Send,
        body: bytes,
        *,
        company: uuid.UUID,
        route: Route,
        request: RequestTokens,
        snapshot: UsageSnapshot | None,
        reservation: Reservation | None,
        asked_for_usage: bool,
        job: JobAnswer | None = None,
    ) -> None:
        self._guard = guard
        self._job = job
        self._receive = receive
        self._send = send
        self._body: bytes | None = body
        self.company = company
        self.route = route
        self.request = request
        self.reservation = reservation
        self._asked_for_usage = asked_for_usage
        self._headers = budget_headers(snapshot)
        self._status = 0
        self._meter: ResponseMeter | None = None
        self._remover: UsageChunkRemover | None = None
        # Bytes of body still to come when the response declared its length: a client has
        # its whole answer with the last declared byte, before any final empty message.
        self._remaining = -1
        self._recorded = False
        self._client_gone = False
        self._ended: anyio.Event | None = None  # made only once a client leaves early
        # The abandoned-client deadline: armed only once the client leaves (a timer that
        # cancels the task running the app), so an exchange whose client stays pays nothing
        # for it; asyncio.timeout(None) cost ~2 us on every request.
        self._task: asyncio.Task[object] | None = None  # running the app; None once it ended
        self._deadline: asyncio.TimerHandle | None = None
        self._expired = False  # the deadline cancelled the task
        self._cancelling = 0  # the task's cancel requests when the app started
        self._forwarded_at = time.perf_counter()
        self._renewal: asyncio.TimerHandle | None = None
        self._extending: asyncio.Task[None] | None = None  # held: a loop keeps weak refs

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        if self.reservation is not None:
            self._keep_holding()
        task = self._task = asyncio.current_task()
        if task is not None:
            # Cancels asked for before the app ran are not the deadline's (as asyncio.timeout
            # counts them on entry): one that arrives later is never absorbed with it.
            self._cancelling = task.cancelling()
        try:
            await app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            if not self._absorb_deadline(task):
                raise  # not the abandoned deadline's alone
        finally:
            # However it ended: answered, failed, cut off, or abandoned past the deadline.
            self._task = None  # exited: no deadline left to set or to hold off
            self._disarm()
            if self._expired:  # the app ended some other way after the deadline fired
                self._absorb_deadline(task)
            self._end()
            if self._renewal is not None:
                self._renewal.cancel()
            await self._record_once()

    # -- strict mode: the hold outlives the request ----------------------------------------

    def _keep_holding(self) -> None:
        """Extend the reservation every third of its TTL while the request runs: an LLM
        answer can stream for longer than any TTL, and a hold that lapsed mid-request would
        let other requests spend what this one is about to be charged. A timer, not a task,
        so the usual request (done long before) costs nothing."""
        ttl = self._guard.reservation_ttl
        if ttl:
            self._renewal = asyncio.get_running_loop().call_later(ttl / 3, self._start_extend)

    def _start_extend(self) -> None:
        self._extending = asyncio.get_running_loop().create_task(self._extend())

    async def _extend(self) -> None:
        reservation = self.reservation
        if self._recorded or reservation is None:
            return
        try:
            kept = await self._guard.ledger.extend(reservation)
        except StoreError as exc:
            kept = True  # try again at the next turn; the hold has a TTL's margin left
            log.warning("could not extend a reservation of company %s: %s", self.company, exc)
        if self._recorded:
            return
        if not kept:
            log.warning("a reservation of company %s lapsed while its request ran", self.company)
            return
        self._keep_holding()

    # -- receive ---------------------------------------------------------------------------

    async def receive(self) -> Message:
        body = self._body
        if body is not None:
            self._body = None
            return {"type": "http.request", "body": body, "more_body": False}
        message = await self._receive()
        if message["type"] == "http.disconnect" and not self._recorded:
            # Hold the news back from the app until the response has ended: an app that
            # heard it would stop reading an upstream answer that is billed all the same.
            self._left()
            ended = self._ended
            if ended is not None:
                await ended.wait()
        return message

    def _left(self) -> None:
        if self._client_gone:
            return
        self._client_gone = True
        if self._ended is None:
            self._ended = anyio.Event()
        if self._task is not None and self._deadline is None:
            self._arm(asyncio.get_running_loop().time() + self._guard.settings.abandoned_seconds)

    def _arm(self, when: float) -> None:
        self._deadline = asyncio.get_running_loop().call_at(when, self._abandon)

    def _disarm(self) -> float | None:
        """Stop the deadline's timer; when it was due, if it was set."""
        deadline = self._deadline
        if deadline is None:
            return None
        self._deadline = None
        deadline.cancel()
        return deadline.when()

    def _abandon(self) -> None:
        """The deadline: the app is cancelled (what it read so far is charged)."""
        self._deadline = None
        task = self._task
        if task is None:
            return
        self._expired = True
        task.cancel()

    def _absorb_deadline(self, task: asyncio.Task[object] | None) -> bool:
        """Take back the deadline's cancel request (as ``asyncio.timeout`` does on exit);
        True when no other cancellation was asked for meanwhile."""
        if not self._expired or task is None:
            return False
        self._expired = False
        return task.uncancel() <= self._cancelling

    def _end(self) -> None:
        ended = self._ended
        if ended is not None:
            ended.set()

    # -- send ------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            message = self._start(message)
        elif kind == "http.response.body":
            if self._job is not None:
                self._job.feed(message.get("body", b""))
            meter = self._meter
            if meter is not None:
                chunk = message.get("body", b"")
                more_body = message.get("more_body", False)
                meter.feed(chunk)
                self._remaining -= len(chunk)
                if self._remaining == 0 or not more_body or meter.ended:
                    await self._record_once()
                remover = self._remover
                if remover is not None:
                    shown = remover.feed(chunk, last=not more_body)
                    if not shown and more_body:
                        return
                    message = {**message, "body": shown}
            if not message.get("more_body", False):
                self._end()
        if self._client_gone:
            return  # nobody is listening; the response is still read to its end and metered
        try:
            await self._send(message)
        except OSError:
            # Servers other than uvicorn raise once the client has gone: keep metering.
            self._left()

    def _start(self, message: Message) -> Message:
        self._status = status = message["status"]
        content_type = None
        may_bill = False
        for name, value in message.get("headers", ()):
            lowered = name.lower()
            if lowered == b"content-type":
                content_type = value.decode("latin-1")
            elif lowered == b"content-length" and value.isdigit():
                self._remaining = int(value)
            elif lowered == UPSTREAM_MAY_BILL:
                may_bill = True
        if may_bill:
            # The proxy gave up on an upstream that may have answered, and billed, anyway:
            # charged as an exchange that never got its answer (the counted prompt).
            self._status = 0
            message = {
                **message,
                "headers": [
                    (k, v) for k, v in message["headers"] if k.lower() != UPSTREAM_MAY_BILL
                ],
            }
        guard = self._guard
        route = self.route
        self._meter = guard.counter.meter(
            self.request, content_type, read_other=route.creates or route.charge == USAGE
        )
        if (
            self._asked_for_usage
            and self._remaining < 0
            and content_type is not None
            and "text/event-stream" in content_type.lower()
        ):
            self._remover = UsageChunkRemover()
        guard.events.upstream_answered(status, time.perf_counter() - self._forwarded_at)
        if self._headers:
            message = {**message, "headers": [*message.get("headers", ()), *self._headers]}
        return message

    # -- record ----------------------------------------------------------------------------

    async def _record_once(self) -> None:
        if self._recorded:
            return
        self._recorded = True
        tokens, source = charge(
            self.route, self.request, self._meter, self._status, self._guard.ledger.weights
        )
        created: tuple[str, ...] = ()
        meter = self._meter
        if meter is not None and 200 <= self._status < 300:
            # What the answer produced (a Responses item, a Chat audio answer) and, on a
            # route that creates one, the response: a later request may name any of them.
            # Only a model's answer on a built-in route names items: an opted-in route may
            # answer with what a tenant wrote (a file's content), ids of its choosing.
            created = meter.item_ids if self.route.charge == METERED else ()
            response_id = meter.response_id if self.route.creates else None
            if response_id is not None:
                created = (response_id, *created)
            if self._job is not None:
                # A fine-tuning job's answer: its models and result files, as the job is.
                created = (*created, *self._job.objects())
        kinds = breakdown_of(self.route, self.request, meter, source) if tokens else None
        # Shielded: a cancelled request (abandoned past its deadline) still gets recorded.
        # The deadline's cancel is asyncio's own, which goes through an anyio shield: it is
        # held off while the usage is written, and set again after (firing at once if it
        # passed). (A disconnect during the write sets no deadline: ``_left`` runs only
        # before the recording starts, or after it returns.)
        when = self._disarm()
        try:
            await run_shielded(self._guard.record(self, tokens, source, created, kinds))
        finally:
            if when is not None and self._task is not None:
                self._arm(when)
