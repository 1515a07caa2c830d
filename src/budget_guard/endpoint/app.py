"""``POST /assistant/ai-chat/usage`` (and ``GET``) as a pure ASGI app.

The steps, in order, and why:

1. The format and casing are settled first, so that every answer after it, errors included,
   is in the format and casing the client asked for.
2. The method is checked before anything costly (405 with ``Allow``).
3. The caller is authenticated before a byte of the body is read: strangers' bodies are never
   parsed (401).
4. The body is read with a cap (413), then bound and validated (400 / 415).
5. The company is resolved by the one authorization rule (403, or 400 for an admin who named
   no company), then the ledger records (POST) or reads (GET). Store failures are 503 and
   record nothing, a reused idempotency key is 422, a new key from a company that holds its
   bound of live keys is 429, a total beyond Int64 is 400.

Anything else is a bug: it is logged (exception type and stack frames; never its message,
headers, body or query) and answered 500 with an ``InternalServerError`` ResponseStatus and no
detail.
"""

from __future__ import annotations

import logging
import math
from urllib.parse import parse_qsl
from uuid import UUID

import orjson
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from budget_guard.auth import (
    Authenticator,
    CompanyRequired,
    Forbidden,
    Identity,
    resolve_company,
)
from budget_guard.budget.ledger import Ledger
from budget_guard.eager import receive_with_deadline
from budget_guard.endpoint.body import (
    BodyTooLarge,
    ClientDisconnected,
    declared_too_large,
    read_capped,
)
from budget_guard.endpoint.idempotency import (
    IDEMPOTENCY_HEADER,
    InvalidIdempotencyKey,
    read_idempotency_key,
    record_once,
)
from budget_guard.endpoint.openapi import openapi_document
from budget_guard.endpoint.paths import PathKind, PathTable, Target, route_path
from budget_guard.endpoint.responses import (
    Reply,
    error_reply,
    field_error_reply,
    status_reply,
    usage_reply,
)
from budget_guard.endpoint.settings import EndpointSettings
from budget_guard.events import NO_EVENTS, GuardEvents
from budget_guard.failure import describe
from budget_guard.stores import (
    IdempotencyConflict,
    IdempotencyKeysExhausted,
    StoreError,
    UsageOverflow,
)
from budget_guard.wire import (
    COMPANY_ID,
    IDEMPOTENCY_KEY_REUSED,
    IDEMPOTENCY_KEYS_EXHAUSTED,
    METHOD_NOT_ALLOWED,
    NOT_EMPTY,
    REQUEST_ENTITY_TOO_LARGE,
    SERVICE_UNAVAILABLE,
    TOKENS_USED,
    UNAUTHORIZED,
    BindingError,
    FieldError,
    TextCase,
    WireFormat,
    bind_record_request,
    negotiate,
    text_case,
)
from budget_guard.wire.errors import BAD_REQUEST, FORBIDDEN

__all__ = [
    "INTERNAL_SERVER_ERROR",
    "NOT_FOUND",
    "OVERFLOW_EXCEPTION",
    "REQUEST_TIMEOUT",
    "UsageEndpoint",
]

logger = logging.getLogger("budget_guard.endpoint")

INTERNAL_SERVER_ERROR = "InternalServerError"
NOT_FOUND = "NotFound"
#: .NET's name for checked arithmetic that leaves the type's range, as ServiceStack reports it.
OVERFLOW_EXCEPTION = "OverflowException"
#: The body did not arrive within ``body_timeout_seconds`` (HTTP 408).
REQUEST_TIMEOUT = "RequestTimeout"

_USAGE_METHODS = ("GET", "HEAD", "POST")
_OPENAPI_METHODS = ("GET", "HEAD")
_MAX_QUERY_FIELDS = 1000


class _Query:
    """The query string, parsed once. ``format`` and ``jsconfig`` are found whatever their
    casing, as ServiceStack reads its reserved query names."""

    def __init__(self, raw: bytes) -> None:
        self.valid = True
        try:
            self.pairs = parse_qsl(
                raw.decode("latin-1"), keep_blank_values=True, max_num_fields=_MAX_QUERY_FIELDS
            )
        except ValueError:  # too many fields
            self.valid = False
            self.pairs = []

    def first(self, name: str) -> str | None:
        for key, value in self.pairs:
            if key.lower() == name:
                return value
        return None


_REJECTION_REASONS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    408: "bad_request",
    413: "too_large",
    415: "bad_request",
    422: "bad_request",
    429: "store_full",
    503: "store_unavailable",
}
"""The ``requests_rejected_total`` reason of each refusal the endpoint answers."""


class UsageEndpoint:
    """The usage endpoint: mount :meth:`routes` into a Starlette/FastAPI app, or call it as an
    ASGI app for any path :meth:`matches` accepts (what the budget middleware does)."""

    def __init__(
        self,
        ledger: Ledger,
        authenticator: Authenticator,
        *,
        settings: EndpointSettings | None = None,
        events: GuardEvents = NO_EVENTS,
        limits_path: str | None = None,
    ) -> None:
        """``limits_path``: where the admin limit routes are served, if they are, so that
        the OpenAPI document lists them too."""
        self.ledger = ledger
        self.authenticator = authenticator
        self.settings = settings or EndpointSettings()
        self.events = events
        self._paths = PathTable(self.settings)
        document = openapi_document(self.settings)
        if limits_path is not None:
            from budget_guard.endpoint.limits_openapi import add_limit_routes

            add_limit_routes(document, self.settings, limits_path)
        self._openapi_body = orjson.dumps(document)

    def __repr__(self) -> str:
        return f"UsageEndpoint(path={self.settings.path!r}, enabled={self.settings.enabled})"

    def matches(self, path: str) -> bool:
        """Whether ``path`` (the route path: the scope's path without its ``root_path``) is
        one this endpoint answers. Always false when the endpoint is disabled."""
        return self._paths.lookup(path) is not None

    def matches_scope(self, scope: Scope) -> bool:
        """:meth:`matches` for an HTTP scope, with the ``root_path`` prefix (a mount, or
        uvicorn's ``--root-path`` behind a proxy) taken off the path as Starlette does."""
        return scope.get("type") == "http" and self.matches(route_path(scope))

    def routes(self) -> list[BaseRoute]:
        """One route per served path, each handing the request to this ASGI app (which answers
        every method itself, so a wrong method gets a ResponseStatus 405, not a plain one)."""
        return [
            Route(path, endpoint=self, name=f"budget_guard:{path}") for path in self._paths.paths
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        head_only = scope["method"] == "HEAD"
        fmt, case = WireFormat.JSON, self.settings.text_case
        try:
            target = self._paths.lookup(route_path(scope))
            headers = Headers(scope=scope)
            query = _Query(scope.get("query_string", b""))
            fmt, case = self._negotiate(target, headers, query)
            reply = await self._answer(target, scope, receive, headers, query, fmt, case)
        except ClientDisconnected:
            return
        except Exception as error:
            # Type and place only: an exception's message may quote a header or a body (a
            # host's session hook, say), and nothing a client sent may reach the log.
            logger.error(
                "unexpected %s answering %s %s",
                describe(error),
                scope["method"],
                scope.get("path", ""),
            )
            reply = error_reply(500, INTERNAL_SERVER_ERROR, "Internal Server Error", fmt, case)
        reason = _REJECTION_REASONS.get(reply.status)
        if reason is not None:
            # Every refusal counted (and logged once), like the proxy path's.
            self.events.rejected(None, reason)
        await reply.send(send, head_only=head_only)

    def _negotiate(
        self, target: Target | None, headers: Headers, query: _Query
    ) -> tuple[WireFormat, TextCase]:
        fmt = negotiate(
            query_format=query.first("format"),
            path_suffix=target.forced_format.value if target and target.forced_format else None,
            accept=headers.get("accept"),
            content_type=headers.get("content-type"),
        )
        return fmt, text_case(query.first("jsconfig"), self.settings.text_case)

    async def _answer(
        self,
        target: Target | None,
        scope: Scope,
        receive: Receive,
        headers: Headers,
        query: _Query,
        fmt: WireFormat,
        case: TextCase,
    ) -> Reply:
        method: str = scope["method"]
        if target is None:
            return error_reply(404, NOT_FOUND, "Not Found", fmt, case)
        allowed = _OPENAPI_METHODS if target.kind is PathKind.OPENAPI else _USAGE_METHODS
        if method not in allowed:
            return error_reply(
                405,
                METHOD_NOT_ALLOWED,
                f"Method '{method[:32]}' is not allowed; use {', '.join(allowed)}",
                fmt,
                case,
                [("allow", ", ".join(allowed))],
            )
        if target.kind is PathKind.OPENAPI:
            return Reply(200, self._openapi_body, "application/json; charset=utf-8")

        identity = await self.authenticator.authenticate(headers)
        if identity is None:
            return error_reply(
                401, UNAUTHORIZED, "Not Authenticated", fmt, case, [("www-authenticate", "Bearer")]
            )
        if not query.valid:
            return error_reply(400, BAD_REQUEST, "Too many query string fields", fmt, case)
        if method == "POST":
            return await self._record(identity, receive, headers, query, fmt, case)
        return await self._read(identity, query, fmt, case)

    async def _record(
        self,
        identity: Identity,
        receive: Receive,
        headers: Headers,
        query: _Query,
        fmt: WireFormat,
        case: TextCase,
    ) -> Reply:
        limit = self.settings.max_body_bytes
        if declared_too_large(headers, limit):
            # Refused before a byte is read. The connection stays open: the server discards
            # the announced bytes as they arrive, so the client reads a clean 413 instead of
            # a reset from a socket closed under its upload.
            return self._too_large(limit, fmt, case, [])
        timeout = self.settings.body_timeout_seconds
        try:
            body = await read_capped(receive_with_deadline(receive, timeout), limit)
        except BodyTooLarge:
            # A streamed body has no announced end: stop reading and close the connection
            # so the client cannot keep streaming into it.
            return self._too_large(limit, fmt, case, [("connection", "close")])
        except TimeoutError:
            # The server in front would wait for the rest forever; the rest is never read.
            message = f"The request body did not arrive within {timeout:g} seconds"
            return error_reply(408, REQUEST_TIMEOUT, message, fmt, case, [("connection", "close")])
        try:
            request = bind_record_request(
                query=query.pairs, body=body, content_type=headers.get("content-type")
            )
            key = read_idempotency_key(headers.getlist(IDEMPOTENCY_HEADER))
        except BindingError as error:
            return status_reply(error.status_code, error.response_status, fmt, case)
        except InvalidIdempotencyKey as error:
            return error_reply(400, BAD_REQUEST, str(error), fmt, case)
        company = _resolve(identity, request.company_id, fmt, case)
        if isinstance(company, Reply):
            return company
        try:
            result = await record_once(self.ledger, identity, company, request.tokens_used, key)
            if not result.replayed and request.tokens_used:
                self.events.recorded(company, request.tokens_used, "explicit")
        except IdempotencyConflict:
            return error_reply(
                422,
                IDEMPOTENCY_KEY_REUSED,
                "The Idempotency-Key was already used for a different request",
                fmt,
                case,
            )
        except IdempotencyKeysExhausted as error:
            return _keys_exhausted(error, fmt, case)
        except UsageOverflow:
            return field_error_reply(
                400,
                FieldError(
                    OVERFLOW_EXCEPTION,
                    TOKENS_USED,
                    "'Tokens Used' would take the company's usage beyond the Int64 maximum.",
                ),
                fmt,
                case,
            )
        except StoreError as error:
            return _unavailable(error, fmt, case)
        replayed = [("idempotent-replayed", "true")] if result.replayed else []
        return usage_reply(result.snapshot, fmt, case, replayed)

    @staticmethod
    def _too_large(
        limit: int, fmt: WireFormat, case: TextCase, headers: list[tuple[str, str]]
    ) -> Reply:
        message = f"The request body is larger than {limit} bytes"
        return error_reply(413, REQUEST_ENTITY_TOO_LARGE, message, fmt, case, headers)

    async def _read(
        self, identity: Identity, query: _Query, fmt: WireFormat, case: TextCase
    ) -> Reply:
        try:
            request = bind_record_request(
                query=query.pairs, body=b"", content_type=None, require_tokens=False
            )
        except BindingError as error:
            return status_reply(error.status_code, error.response_status, fmt, case)
        company = _resolve(identity, request.company_id, fmt, case)
        if isinstance(company, Reply):
            return company
        try:
            snapshot = await self.ledger.snapshot(company)
        except StoreError as error:
            return _unavailable(error, fmt, case)
        return usage_reply(snapshot, fmt, case)


def _resolve(
    identity: Identity, requested: UUID | None, fmt: WireFormat, case: TextCase
) -> UUID | Reply:
    """The company to act for, or the 403 / 400 reply that refuses it."""
    try:
        return resolve_company(identity, requested)
    except Forbidden:
        return error_reply(403, FORBIDDEN, "Not allowed to act for another company", fmt, case)
    except CompanyRequired:
        return field_error_reply(
            400,
            FieldError(
                NOT_EMPTY, COMPANY_ID, "'Company Id' must not be empty for an admin caller."
            ),
            fmt,
            case,
        )


def _keys_exhausted(error: IdempotencyKeysExhausted, fmt: WireFormat, case: TextCase) -> Reply:
    """429: this company (only) holds its bound of live Idempotency-Keys; nothing recorded.
    A retry with a key it already holds is still answered, and so is a record without one."""
    logger.warning("idempotency keys refused: %s", error)
    headers = []
    if error.retry_after is not None:
        headers.append(("retry-after", str(max(1, math.ceil(error.retry_after)))))
    return error_reply(
        429,
        IDEMPOTENCY_KEYS_EXHAUSTED,
        f"This company already holds {error.bound} live Idempotency-Keys, the most allowed;"
        " nothing was recorded. Retry once its oldest key lapses (Retry-After), or send the"
        " usage without an Idempotency-Key.",
        fmt,
        case,
        headers,
    )


def _unavailable(error: StoreError, fmt: WireFormat, case: TextCase) -> Reply:
    # The store's message may name hosts; it goes to the log, not to the client.
    logger.warning("usage store failed: %s", type(error).__name__)
    return error_reply(
        503,
        SERVICE_UNAVAILABLE,
        "The usage store is unavailable. Retry with the same Idempotency-Key to be counted once.",
        fmt,
        case,
        [("retry-after", "1")],
    )


async def _lifespan(receive: Receive, send: Send) -> None:
    """Served on its own the endpoint owns nothing to start or stop; answer the protocol."""
    while True:
        message: Message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
