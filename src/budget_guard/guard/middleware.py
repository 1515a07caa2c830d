"""BudgetGuardMiddleware: a pure ASGI middleware that enforces the budget on the proxy path.

Per guarded request, in order: a canonical path, an authenticated caller and its company, a
route the policy allows (``guard/routes.py``), the body read and counted, every upstream
object it names owned by the company, the budget checked (or reserved, in strict mode).
Only then is the request handed to the app, as a :class:`GuardedExchange`
(``guard/exchange.py``) that meters the response and records its cost exactly once. Never
``BaseHTTPMiddleware``, which buffers streams and hides disconnects.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import anyio
from cachetools import LRUCache
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from budget_guard.auth import (
    Authenticator,
    CompanyRequired,
    Forbidden,
    Identity,
    resolve_company,
)
from budget_guard.auth.guids import parse_guid
from budget_guard.budget.clock import Clock, system_clock
from budget_guard.budget.ledger import Ledger
from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.counting import InvalidRequestBody, RequestTokens, TokenCounter
from budget_guard.events import NO_EVENTS, GuardEvents
from budget_guard.failure import describe
from budget_guard.guard.charging import reservation as reservation_for
from budget_guard.guard.exchange import GuardedExchange
from budget_guard.guard.fine_tuned_models import JobAnswer, ModelListFilter
from budget_guard.guard.journal import PendingUsage, UsageJournal
from budget_guard.guard.outage_log import OutageLog
from budget_guard.guard.paths import non_canonical
from budget_guard.guard.query import QueryRefused, check_query
from budget_guard.guard.replies import send_budget_exceeded
from budget_guard.guard.request_body import BodyRefused, ClientGone, read_body
from budget_guard.guard.routes import (
    FREE,
    METERED,
    Route,
    RouteMatch,
    RoutePolicy,
    RouteRefused,
)
from budget_guard.guard.settings import GuardSettings
from budget_guard.guard.stream_usage import ASKS_FOR_USAGE, ask_for_usage
from budget_guard.proxy.openai_errors import send_openai_error
from budget_guard.stores import Dedupe, Reservation, StoreError, StoreFull, StoreUnavailable
from budget_guard.stores.base import Breakdown, is_object_id, settle_dedupe

log = logging.getLogger("budget_guard.guard")

SNAPSHOT_CACHE_SIZE = 10_000
"""Companies whose latest snapshot one process keeps (``guard.snapshot_cache_seconds``)."""
OWNER_LOOKUP_BATCH = 64
"""Ids looked up per store call when a request names objects (a long conversation sent back
item by item names hundreds)."""


class BudgetGuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        ledger: Ledger,
        authenticator: Authenticator,
        settings: GuardSettings | None = None,
        counter: TokenCounter | None = None,
        usage_endpoint: Any = True,
        clock: Clock = system_clock,
        events: GuardEvents = NO_EVENTS,
    ) -> None:
        """``usage_endpoint``: True mounts the documented usage endpoint on its default path
        (sharing this ledger and these authenticators), False leaves it to the app, or pass
        a configured :class:`~budget_guard.endpoint.UsageEndpoint`."""
        self.app = app
        self.ledger = ledger
        self.authenticator = authenticator
        self.settings = settings or GuardSettings()
        self.counter = counter or TokenCounter(
            default_encoding=self.settings.default_encoding,
            prefer_upstream_usage=self.settings.prefer_upstream_usage,
            body_limits=self.settings.body_limits(),
        )
        self.clock = clock
        self.events = events
        self.journal = UsageJournal(ledger, max_entries=self.settings.journal_size)
        self.outage_log = OutageLog(log)
        """Store-outage lines, one of a kind per 10 s: an outage is every request's news."""
        events.watch_journal(self.journal)
        if usage_endpoint is True:
            from budget_guard.endpoint import UsageEndpoint

            usage_endpoint = UsageEndpoint(ledger, authenticator, events=events)
        self.usage_endpoint = usage_endpoint or None
        self._prefixes = self.settings.paths
        self.routes = RoutePolicy(self.settings.paths, self.settings.routes)
        self.reservation_ttl: float | None = getattr(ledger.store, "reservation_ttl", None)
        """Seconds a strict-mode hold lives unless extended (None: a store that cannot)."""
        self._ask_stream_usage = self.settings.request_stream_usage
        remote = getattr(ledger.store, "remote", False)
        self._dedupe_ttl = self.settings.dedupe_seconds if remote else 0.0
        # An in-process store answers a read in microseconds and is exact: nothing to save.
        self._snapshot_ttl = (
            self.settings.snapshot_cache_seconds if remote and not self.settings.strict else 0.0
        )
        self._snapshots: LRUCache[uuid.UUID, tuple[float, UsageSnapshot]] = LRUCache(
            maxsize=SNAPSHOT_CACHE_SIZE
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if self.usage_endpoint is not None and self.usage_endpoint.matches_scope(scope):
                await self.usage_endpoint(scope, receive, send)
                return
            if path.startswith(self._prefixes):
                await self._guard(scope, receive, send)
                return
        elif scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        elif scope["type"] == "websocket" and scope["path"].startswith(self._prefixes):
            # A socket (the Realtime API's) carries usage the guard cannot meter: refused
            # before the app, with "policy violation", rather than forwarded uncharged.
            self.events.rejected(None, "route")
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                from budget_guard.counting import preload_encodings

                await anyio.to_thread.run_sync(preload_encodings)
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
            return message

        return wrapped

    async def aclose(self) -> None:
        """Replay what the journal holds before the process goes (called at shutdown)."""
        self.outage_log.flush()
        await self.journal.aclose()

    # -- one guarded request -----------------------------------------------------------------

    async def _guard(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = non_canonical(scope)
        if problem is not None:
            self.events.rejected(None, "bad_request")
            await send_openai_error(
                send, 400, problem, type_="invalid_request_error", code="invalid_path"
            )
            return
        # Up to admission the guard answers for itself: an unexpected failure here (a host's
        # auth hook raising, say) is an OpenAI-shaped 500 with nothing sent upstream. Once
        # forwarded, the app's own errors are the app's.
        try:
            headers = Headers(scope=scope)
            identity = await self.authenticator.authenticate(headers)
            if identity is None:
                self.events.rejected(None, "unauthenticated")
                await send_openai_error(
                    send,
                    401,
                    "Missing or invalid API key. Send it as 'Authorization: Bearer <key>'.",
                    type_="invalid_request_error",
                    code="invalid_api_key",
                )
                return
            company = await self._company(identity, headers, send)
            if company is None:
                return
            match = self.routes.match(scope["method"], scope["path"])
            if isinstance(match, RouteRefused):
                self.events.rejected(company, "route")
                await send_openai_error(
                    send,
                    match.status,
                    match.message,
                    type_="invalid_request_error",
                    code="route_not_allowed",
                )
                return
            query = scope.get("query_string", b"")
            if query:
                try:
                    check_query(query, match.route)
                except QueryRefused as refused:
                    await self._bad_request(send, company, refused, "invalid_query")
                    return
            try:
                body = await read_body(
                    receive,
                    headers,
                    cap=self.settings.max_body_bytes,
                    seconds=self.settings.body_timeout_seconds,
                )
            except ClientGone:
                return
            except BodyRefused as refused:
                await self._refuse_body(send, company, refused)
                return
            route = match.route
            try:
                request = await self._count(scope["path"], route, body, headers.get("content-type"))
            except InvalidRequestBody as exc:
                await self._bad_request(send, company, exc, "invalid_request_body")
                return
            if request.background:
                self.events.rejected(company, "bad_request")
                await send_openai_error(
                    send,
                    400,
                    "Background responses are not accepted here: their output is generated "
                    "after the request ends, where the budget guard cannot charge it.",
                    type_="invalid_request_error",
                    code="unsupported_parameter",
                    param="background",
                )
                return
            if not await self._owns_objects(company, match, request, send):
                return
            admission = await self._admit(company, route, request, send)
            if admission is None:
                return
        except Exception as error:
            await self._fail(scope, send, error)
            return
        snapshot, reservation = admission
        self.events.admitted(company)
        await self._forward(
            scope, receive, send, body, company, match, request, snapshot, reservation
        )

    async def _bad_request(
        self, send: Send, company: uuid.UUID, refused: QueryRefused | InvalidRequestBody, code: str
    ) -> None:
        self.events.rejected(company, "bad_request")
        await send_openai_error(
            send, 400, str(refused), type_="invalid_request_error", code=code, param=refused.param
        )

    async def _count(
        self, path: str, route: Route, body: bytes, content_type: str | None
    ) -> RequestTokens:
        if route.charge == METERED:
            return await self.counter.acount_request(path, body, kind=route.kind)
        return await self.counter.acount_other(body, content_type)

    async def _owns_objects(
        self, company: uuid.UUID, match: RouteMatch, request: RequestTokens, send: Send
    ) -> bool:
        """Whether every upstream object the request names (in its path or its body) is one
        the company created through the guard. Anything else is answered as not found: the
        guard tells no company whether another company's object exists."""
        ids = match.object_ids + request.references
        if not ids:
            return True
        # Not an id the guard could ever have remembered: nobody's (and not asked about).
        keyed = [object_id for object_id in ids if is_object_id(object_id)]
        found: dict[str, uuid.UUID | None] = {}
        try:
            # A store call per OWNER_LOOKUP_BATCH ids, stopping at the first batch with one
            # that is not the company's: a body of thousands of made-up ids (refused, and
            # never charged) costs one batch, not thousands of lookups.
            for start in range(0, len(keyed), OWNER_LOOKUP_BATCH):
                batch = keyed[start : start + OWNER_LOOKUP_BATCH]
                owners = await self.ledger.object_owners(batch)
                found.update(zip(batch, owners, strict=True))
                if any(owner != company for owner in owners):
                    break
        except StoreError as exc:
            # Unverifiable is refused whatever on_store_error says: serving it could hand one
            # company another's object.
            self.events.store_failed("object_owner")
            self.events.rejected(company, "store_unavailable")
            self.outage_log.log(
                logging.ERROR,
                "owner",
                "usage store unavailable, cannot check an object's owner: %s",
                exc,
            )
            await _send_store_unavailable(send)
            return False
        for object_id in ids:
            if found.get(object_id) != company:
                self.events.rejected(company, "not_found")
                await send_openai_error(
                    send,
                    404,
                    f"No such object: {object_id[:64]!r}.",
                    type_="invalid_request_error",
                    code="object_not_found",
                )
                return False
        return True

    async def _fail(self, scope: Scope, send: Send, error: Exception) -> None:
        log.error(
            "unexpected %s guarding %s %s; nothing was sent upstream",
            describe(error),
            scope["method"],
            scope["path"],
        )
        await send_openai_error(
            send,
            500,
            "The budget guard failed on this request; nothing was sent upstream.",
            type_="server_error",
            code="internal_error",
        )

    async def _company(self, identity: Identity, headers: Headers, send: Send) -> uuid.UUID | None:
        header = self.settings.company_header
        named = headers.get(header)
        requested = None
        if named is not None:
            requested = parse_guid(named)
            if requested is None:
                await send_openai_error(
                    send,
                    400,
                    f"{header} must be a company Guid.",
                    type_="invalid_request_error",
                    code="invalid_company_id",
                    param=header,
                )
                return None
        try:
            return resolve_company(identity, requested)
        except Forbidden:
            self.events.rejected(identity.company_id, "forbidden")
            await send_openai_error(
                send,
                403,
                "This key may only spend its own company's budget.",
                type_="permission_denied",
                code="forbidden",
                param=header,
            )
        except CompanyRequired:
            self.events.rejected(identity.company_id, "bad_request")
            await send_openai_error(
                send,
                400,
                f"An admin key must name the company to charge in the {header} header.",
                type_="invalid_request_error",
                code="company_required",
                param=header,
            )
        return None

    async def _refuse_body(self, send: Send, company: uuid.UUID, refused: BodyRefused) -> None:
        headers = [(b"connection", b"close")] if refused.close else []
        if refused.status == 413:
            self.events.rejected(company, "too_large")
            message = f"Request body is larger than {self.settings.max_body_bytes} bytes."
            code = "request_too_large"
        else:
            self.events.rejected(company, "bad_request")
            timeout = self.settings.body_timeout_seconds
            message = f"The request body did not arrive within {timeout:g} seconds."
            code = "request_timeout"
        await send_openai_error(
            send,
            refused.status,
            message,
            type_="invalid_request_error",
            code=code,
            headers=headers,
        )

    async def _admit(
        self, company: uuid.UUID, route: Route, request: RequestTokens, send: Send
    ) -> tuple[UsageSnapshot | None, Reservation | None] | None:
        """Check (or, in strict mode, reserve) the budget. None: already answered."""
        if route.charge == FREE:
            # Nothing to hold or refuse; the snapshot only feeds the budget headers.
            try:
                return await self.ledger.snapshot(company), None
            except StoreError:
                return None, None
        try:
            if self.settings.strict:
                hold = self._hold(route, request)
                reservation = await self.ledger.reserve(company, hold)
                if not reservation.granted and not request.counted:
                    # Refused on the bound: near the limit, the exact count may still fit.
                    exact = self._hold(route, request, exact=True)
                    if exact < hold:
                        reservation = await self.ledger.reserve(company, exact)
                if not reservation.granted:
                    self.events.rejected(company, "budget")
                    await send_budget_exceeded(send, reservation.snapshot, self.clock())
                    return None
                return reservation.snapshot, reservation
            if self._snapshot_ttl:
                cached = self._recent_snapshot(company, route, request)
                if cached is not None:
                    return cached, None
                snapshot = await self.ledger.snapshot(company)
                self._remember(company, snapshot)
            else:
                snapshot = await self.ledger.snapshot(company)
        except StoreFull as exc:
            # Not an outage: serving would mean serving for free, whatever on_store_error says.
            self.events.rejected(company, "store_full")
            self.outage_log.log(logging.ERROR, "full", "%s; company %s refused", exc, company)
            await send_openai_error(
                send,
                503,
                "The budget store has no room for this company; nothing was sent upstream.",
                type_="service_unavailable",
                code="budget_store_full",
            )
            return None
        except StoreError as exc:
            self.events.store_failed("admit")
            if self.settings.on_store_error == "closed":
                self.events.rejected(company, "store_unavailable")
                self.outage_log.log(
                    logging.ERROR,
                    "admit",
                    "usage store unavailable, refusing (fail-closed): %s",
                    exc,
                )
                await _send_store_unavailable(send)
                return None
            self.outage_log.log(
                logging.WARNING, "admit", "usage store unavailable, serving (fail-open): %s", exc
            )
            return None, None
        if not snapshot.is_within_budget:
            self.events.rejected(company, "budget")  # its one log line, and the metric
            await send_budget_exceeded(send, snapshot, self.clock())
            return None
        return snapshot, None

    def _hold(self, route: Route, request: RequestTokens, *, exact: bool = False) -> int:
        """The most ``request`` can cost (strict mode's hold, the snapshot cache's check)."""
        return reservation_for(
            route,
            request,
            self.settings.default_reservation,
            self.ledger.weights,
            self.settings.reference_reservation,
            exact=exact,
        )

    def _recent_snapshot(
        self, company: uuid.UUID, route: Route, request: RequestTokens
    ) -> UsageSnapshot | None:
        """The snapshot this process saw for ``company`` within ``snapshot_cache_seconds``, if
        it leaves room for this request's whole estimate (input + max output, as strict mode
        would reserve): then no read could refuse it unless other workers spent that room in
        the meantime. A company near or over its limit is always read afresh, so a 429 is only
        ever decided on the store's answer."""
        entry = self._snapshots.get(company)
        if entry is None:
            return None
        seen, snapshot = entry
        if time.monotonic() - seen > self._snapshot_ttl or not snapshot.is_within_budget:
            return None
        if snapshot.tokens_remaining < self._hold(route, request):
            return None
        return snapshot

    def _remember(self, company: uuid.UUID, snapshot: UsageSnapshot) -> None:
        """Keep the store's latest answer for ``company``. Replies to concurrent calls can be
        handled out of order: a fresh entry showing more usage is kept (erring towards the
        limit) and left to expire at its own time."""
        now = time.monotonic()
        entry = self._snapshots.get(company)
        if (
            entry is not None
            and now - entry[0] <= self._snapshot_ttl
            and entry[1].tokens_used > snapshot.tokens_used
        ):
            return
        self._snapshots[company] = (now, snapshot)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes,
        company: uuid.UUID,
        match: RouteMatch,
        request: RequestTokens,
        snapshot: UsageSnapshot | None,
        reservation: Reservation | None,
    ) -> None:
        route = match.route
        if route.lists_models:
            send = ModelListFilter(send, company, self.ledger)
        # The meter reads the response as it passes, so it must not be compressed: the app
        # (or a GZip middleware inside it) sees a client that accepts identity only.
        # An Idempotency-Key goes upstream prefixed with the company: every company shares
        # the operator's key, so two companies choosing the same key must not get each
        # other's stored answer, while a company's own retries still match.
        prefix = company.hex.encode() + b"-"
        headers = [
            (k, prefix + v) if k == b"idempotency-key" else (k, v)
            for k, v in scope["headers"]
            if k != b"accept-encoding"
        ]
        asked = None
        if request.stream and request.kind in ASKS_FOR_USAGE and self._ask_stream_usage:
            asked = ask_for_usage(body)
            if asked is not None:
                body = asked
                headers = [(k, v) for k, v in headers if k != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
        exchange = GuardedExchange(
            self,
            receive,
            send,
            body,
            company=company,
            route=route,
            request=request,
            snapshot=snapshot,
            reservation=reservation,
            asked_for_usage=asked is not None,
            job=_job_answer(match),
        )
        await exchange.run(self.app, {**scope, "headers": headers})

    async def record(
        self,
        exchange: GuardedExchange,
        tokens: int,
        source: str,
        created: tuple[str, ...],
        breakdown: Breakdown | None = None,
    ) -> None:
        """Write what ``exchange`` cost (once, shielded, by the exchange itself), and the
        objects it created as the company's; a store outage journals the usage for replay."""
        company, reservation = exchange.company, exchange.reservation
        if created:
            await self._remember_objects(company, created)
        dedupe: Dedupe | None = None
        try:
            if reservation is not None:
                # The journal replays a settle under the store's own settle key.
                dedupe = settle_dedupe(reservation, tokens, self.settings.dedupe_seconds)
                await self.ledger.settle(reservation, tokens, breakdown=breakdown)
            elif tokens:
                if self._dedupe_ttl:
                    dedupe = Dedupe(f"op:{uuid.uuid4().hex}", "", self._dedupe_ttl)
                result = await self.ledger.record(
                    company, tokens, dedupe=dedupe, breakdown=breakdown
                )
                if self._snapshot_ttl:
                    self._remember(company, result.snapshot)
            else:
                return
            self.events.recorded(company, tokens, source)
        except StoreUnavailable as exc:
            self.outage_log.log(
                logging.WARNING,
                "journal",
                "usage store unavailable; %d tokens journaled for replay: %s",
                tokens,
                exc,
            )
            self.events.store_failed("record")
            self.events.journaled(company, tokens)
            self.journal.add(PendingUsage(company, tokens, dedupe, breakdown))
        except StoreError as exc:
            self.events.store_failed("record")
            log.error("usage for company %s could not be recorded: %s", company, exc)

    async def _remember_objects(self, company: uuid.UUID, created: tuple[str, ...]) -> None:
        """One store call for the response and its items. An id the store could not key
        (the upstream's to choose) is left out: forgetting one only denies the company its
        own object later, never a leak."""
        object_ids = [object_id for object_id in created if is_object_id(object_id)]
        try:
            await self.ledger.remember_objects(company, object_ids, self.settings.object_seconds)
        except (StoreError, ValueError) as exc:
            self.events.store_failed("remember_object")
            log.warning("the objects company %s created could not be remembered: %s", company, exc)


def _job_answer(match: RouteMatch) -> JobAnswer | None:
    """A reader of a fine-tuning job's answer, bound to the job its path named (checked to be
    the company's: a job route's one placeholder), or to none when the request creates it."""
    if not match.route.job_answer:
        return None
    return JobAnswer(match.object_ids[0] if match.object_ids else None)


async def _send_store_unavailable(send: Send) -> None:
    await send_openai_error(
        send,
        503,
        "The usage store is unavailable; nothing was sent upstream. Retry later.",
        type_="service_unavailable",
        code="budget_store_unavailable",
    )
