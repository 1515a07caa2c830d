"""BudgetGuardMiddleware: a pure ASGI middleware that enforces the budget on the proxy path.

It wraps ``receive`` and ``send`` the way Starlette's own GZip middleware does, never
``BaseHTTPMiddleware`` (which buffers streams and hides disconnects). Per guarded request:
authenticate, read and count the body, check (or reserve) the budget, hand the body on
unchanged, let the response stream through while the meter counts it, and record the tokens
once when the response ends, however it ends.
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
from budget_guard.clock import Clock, system_clock
from budget_guard.counting import InvalidRequestBody, RequestTokens, ResponseMeter, TokenCounter
from budget_guard.eager import receive_with_deadline, run_shielded
from budget_guard.events import NO_EVENTS, GuardEvents
from budget_guard.failure import describe
from budget_guard.guard.journal import PendingUsage, UsageJournal
from budget_guard.guard.replies import budget_headers, send_budget_exceeded
from budget_guard.guard.settings import GuardSettings
from budget_guard.guard.stream_usage import ASKS_FOR_USAGE, UsageChunkRemover, ask_for_usage
from budget_guard.ledger import Ledger
from budget_guard.openai_errors import DOT_SEGMENT_MESSAGE, has_dot_segment, send_openai_error
from budget_guard.snapshot import UsageSnapshot
from budget_guard.stores import Dedupe, Reservation, StoreError, StoreUnavailable
from budget_guard.stores.base import settle_dedupe

log = logging.getLogger("budget_guard.guard")

_READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})

SNAPSHOT_CACHE_SIZE = 10_000
"""Companies whose latest snapshot one process keeps (``guard.snapshot_cache_seconds``)."""


class _ClientGone(Exception):
    pass


class _BodyRefused(Exception):
    """The body is over the cap (413) or too slow to arrive (408). ``close``: part of it is
    still unread, so the connection must close rather than wait for it."""

    def __init__(self, status: int, *, close: bool) -> None:
        super().__init__(status)
        self.status = status
        self.close = close


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
        events.watch_journal(self.journal)
        if usage_endpoint is True:
            from budget_guard.endpoint import UsageEndpoint

            usage_endpoint = UsageEndpoint(ledger, authenticator, events=events)
        self.usage_endpoint = usage_endpoint or None
        self._prefixes = self.settings.paths
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
        await self.journal.aclose()

    # -- one guarded request -----------------------------------------------------------------

    async def _guard(self, scope: Scope, receive: Receive, send: Send) -> None:
        if has_dot_segment(scope["path"]):
            self.events.rejected(None, "bad_request")
            await send_openai_error(
                send, 400, DOT_SEGMENT_MESSAGE, type_="invalid_request_error", code="invalid_path"
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
            try:
                body = await self._read_body(receive, headers)
            except _ClientGone:
                return
            except _BodyRefused as refused:
                await self._refuse_body(send, company, refused)
                return
            try:
                request = await self.counter.acount_request(scope["path"], body)
            except InvalidRequestBody as exc:
                self.events.rejected(company, "bad_request")
                await send_openai_error(
                    send,
                    400,
                    str(exc),
                    type_="invalid_request_error",
                    code="invalid_request_body",
                    param=exc.param,
                )
                return

            admission = await self._admit(company, request, scope["method"], send)
            if admission is None:
                return
        except Exception as error:
            await self._fail(scope, send, error)
            return
        snapshot, reservation = admission
        self.events.admitted(company)
        await self._forward(scope, receive, send, body, company, request, snapshot, reservation)

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

    async def _read_body(self, receive: Receive, headers: Headers) -> bytes:
        """The whole request body, read within ``body_timeout_seconds`` and never held past
        the cap. A body that passes the cap as it arrives is drained (discarded) to its end,
        so a client that sends it whole still reads a clean 413 on an open connection."""
        cap = self.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            # The server in front discards exactly the declared bytes itself.
            raise _BodyRefused(413, close=False)
        chunks: list[bytes] = []
        size = 0
        bounded = receive_with_deadline(receive, self.settings.body_timeout_seconds)
        while True:
            try:
                message = await bounded()
            except TimeoutError:
                # The server in front would wait for the rest forever: stop, and hang up.
                raise _BodyRefused(413 if size > cap else 408, close=True) from None
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > cap:
                    chunks.clear()
                else:
                    chunks.append(chunk)
            if not message.get("more_body", False):
                if size > cap:
                    raise _BodyRefused(413, close=False)
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _refuse_body(self, send: Send, company: uuid.UUID, refused: _BodyRefused) -> None:
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
        self, company: uuid.UUID, request: RequestTokens, method: str, send: Send
    ) -> tuple[UsageSnapshot | None, Reservation | None] | None:
        """Check (or, in strict mode, reserve) the budget. None: already answered."""
        counted = request.kind != "other" or method not in _READ_ONLY
        try:
            if self.settings.strict and counted:
                output = request.max_output_tokens
                if output is None:
                    output = self.settings.default_reservation
                reservation = await self.ledger.reserve(company, request.input_tokens + output)
                if not reservation.granted:
                    self.events.rejected(company, "budget")
                    await send_budget_exceeded(send, reservation.snapshot, self.clock())
                    return None
                return reservation.snapshot, reservation
            if self._snapshot_ttl:
                cached = self._recent_snapshot(company, request)
                if cached is not None:
                    return cached, None
                snapshot = await self.ledger.snapshot(company)
                self._remember(company, snapshot)
            else:
                snapshot = await self.ledger.snapshot(company)
        except StoreError as exc:
            self.events.store_failed("admit")
            if self.settings.on_store_error == "closed":
                self.events.rejected(company, "store_unavailable")
                log.error("usage store unavailable, refusing (fail-closed): %s", exc)
                await send_openai_error(
                    send,
                    503,
                    "The usage store is unavailable; nothing was sent upstream. Retry later.",
                    type_="service_unavailable",
                    code="budget_store_unavailable",
                )
                return None
            log.warning("usage store unavailable, serving (fail-open): %s", exc)
            return None, None
        if counted and not snapshot.is_within_budget:
            log.info("budget exceeded for company %s: request refused", company)
            self.events.rejected(company, "budget")
            await send_budget_exceeded(send, snapshot, self.clock())
            return None
        return snapshot, None

    def _recent_snapshot(self, company: uuid.UUID, request: RequestTokens) -> UsageSnapshot | None:
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
        output = request.max_output_tokens
        if output is None:
            output = self.settings.default_reservation
        if snapshot.tokens_remaining < request.input_tokens + output:
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
        request: RequestTokens,
        snapshot: UsageSnapshot | None,
        reservation: Reservation | None,
    ) -> None:
        body_sent = False
        status = 0
        meter: ResponseMeter | None = None
        remover: UsageChunkRemover | None = None
        extra_headers = budget_headers(snapshot)
        forwarded_at = time.perf_counter()
        # The meter reads the response as it passes, so it must not be compressed: the app
        # (or a GZip middleware inside it) sees a client that accepts identity only.
        headers = [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]
        asked = None
        if request.stream and request.kind in ASKS_FOR_USAGE and self._ask_stream_usage:
            asked = ask_for_usage(body)
            if asked is not None:
                body = asked
                headers = [(k, v) for k, v in headers if k != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))

        async def replay_receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        recorded = False

        async def record_once() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                # Shielded: a cancelled request (client gone) still gets its usage written.
                await run_shielded(self._record(company, status, meter, reservation))

        # Bytes of body still to come when the response declared its length: a client has
        # its whole answer with the last declared byte, before any final empty message.
        remaining = -1

        async def metered_send(message: Message) -> None:
            nonlocal status, meter, remaining, remover
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                content_type = None
                for name, value in message.get("headers", ()):
                    lowered = name.lower()
                    if lowered == b"content-type":
                        content_type = value.decode("latin-1")
                    elif lowered == b"content-length" and value.isdigit():
                        remaining = int(value)
                meter = self.counter.meter(request, content_type)
                if (
                    asked is not None
                    and remaining < 0
                    and content_type is not None
                    and "text/event-stream" in content_type.lower()
                ):
                    remover = UsageChunkRemover()
                self.events.upstream_answered(status, time.perf_counter() - forwarded_at)
                if extra_headers:
                    message = {**message, "headers": [*message.get("headers", ()), *extra_headers]}
            elif kind == "http.response.body" and meter is not None:
                chunk = message.get("body", b"")
                meter.feed(chunk)
                remaining -= len(chunk)
                if remaining == 0 or not message.get("more_body", False) or meter.ended:
                    # Record before the client has its whole answer (the last byte, or a
                    # stream's terminal event such as [DONE], where the OpenAI SDK stops
                    # reading), so a client that then asks for its usage sees this request.
                    await record_once()
                if remover is not None:
                    more_body = message.get("more_body", False)
                    shown = remover.feed(chunk, last=not more_body)
                    if not shown and more_body:
                        return
                    message = {**message, "body": shown}
            await send(message)

        try:
            await self.app({**scope, "headers": headers}, replay_receive, metered_send)
        finally:
            # However the response ended: the app failed, or the client went away mid-stream.
            await record_once()

    async def _record(
        self,
        company: uuid.UUID,
        status: int,
        meter: ResponseMeter | None,
        reservation: Reservation | None,
    ) -> None:
        tokens, source = 0, "counted"
        if meter is not None:
            usage = meter.finish()
            if 200 <= status < 300 or usage.source == "upstream":
                tokens, source = usage.total_tokens, usage.source
        dedupe: Dedupe | None = None
        try:
            if reservation is not None:
                # The journal replays a settle under the store's own settle key.
                dedupe = settle_dedupe(reservation, tokens, self.settings.dedupe_seconds)
                await self.ledger.settle(reservation, tokens)
            elif tokens:
                if self._dedupe_ttl:
                    dedupe = Dedupe(f"op:{uuid.uuid4().hex}", "", self._dedupe_ttl)
                result = await self.ledger.record(company, tokens, dedupe=dedupe)
                if self._snapshot_ttl:
                    self._remember(company, result.snapshot)
            else:
                return
            self.events.recorded(company, tokens, source)
        except StoreUnavailable as exc:
            log.warning("usage store unavailable; %d tokens journaled for replay: %s", tokens, exc)
            self.events.store_failed("record")
            self.events.journaled(company, tokens)
            self.journal.add(PendingUsage(company, tokens, dedupe))
        except StoreError as exc:
            self.events.store_failed("record")
            log.error("usage for company %s could not be recorded: %s", company, exc)
