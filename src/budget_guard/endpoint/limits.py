"""The admin limit routes beside the usage endpoint (``/assistant/ai-chat/limits``).

* ``GET ?CompanyId=`` reads a company's limit (``AiChatLimitResponse``), ``GET`` without a
  company lists the run-time overrides (``AiChatLimitsResponse``).
* ``PUT`` or ``POST`` with ``CompanyId`` and ``TokenLimit`` sets the company's override.
* ``DELETE ?CompanyId=`` clears it: the company is back on its configured limit.

Admins only: a user key is 403 even for its own company (raising one's own budget is exactly
what a tenant must not do). Same wire as the usage endpoint: JSON or JSV, camelCase unless
asked, ``ResponseStatus`` errors naming the field. Each change is logged once by the ledger,
with the admin's non-secret label, the old and the new limit.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from budget_guard.auth import Authenticator, Identity, Role
from budget_guard.budget.ledger import Ledger, LimitInfo, OverridesUnsupported
from budget_guard.eager import receive_with_deadline
from budget_guard.endpoint.app import _Query
from budget_guard.endpoint.body import (
    BodyTooLarge,
    ClientDisconnected,
    declared_too_large,
    read_capped,
)
from budget_guard.endpoint.paths import route_path
from budget_guard.endpoint.responses import Reply, error_reply, status_reply
from budget_guard.endpoint.settings import EndpointSettings
from budget_guard.failure import describe
from budget_guard.stores import StoreError
from budget_guard.wire import (
    METHOD_NOT_ALLOWED,
    REQUEST_ENTITY_TOO_LARGE,
    SERVICE_UNAVAILABLE,
    UNAUTHORIZED,
    BindingError,
    TextCase,
    WireFormat,
    encode_dto,
    negotiate,
    text_case,
)
from budget_guard.wire.errors import FORBIDDEN
from budget_guard.wire.limits_binding import LimitRequest, bind_limit_request

__all__ = ["LIMIT_MEMBERS", "LimitsEndpoint", "limits_path"]

logger = logging.getLogger("budget_guard.endpoint")

LIMIT_MEMBERS = (
    "CompanyId",
    "TokenLimit",
    "OverrideTokenLimit",
    "LimitSource",
    "PreviousOverrideTokenLimit",
    "AlertThresholds",
)
"""``AiChatLimitResponse`` in declaration order (null members are left out)."""
NOT_IMPLEMENTED = "NotImplemented"
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")


def limits_path(settings: EndpointSettings) -> str:
    """Beside the usage path: ``/assistant/ai-chat/usage`` -> ``/assistant/ai-chat/limits``."""
    return settings.path.rstrip("/").rsplit("/", 1)[0] + "/limits"


class LimitsEndpoint:
    """A pure ASGI app for :func:`limits_path` (mount it as a Starlette ``Route``)."""

    def __init__(
        self,
        ledger: Ledger,
        authenticator: Authenticator,
        *,
        settings: EndpointSettings | None = None,
    ) -> None:
        self.ledger = ledger
        self.authenticator = authenticator
        self.settings = settings or EndpointSettings()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        fmt, case = WireFormat.JSON, self.settings.text_case
        try:
            headers = Headers(scope=scope)
            query = _Query(scope.get("query_string", b""))
            fmt = negotiate(
                query_format=query.first("format"),
                path_suffix=None,
                accept=headers.get("accept"),
                content_type=headers.get("content-type"),
            )
            case = text_case(query.first("jsconfig"), self.settings.text_case)
            reply = await self._answer(scope, receive, headers, query, fmt, case)
        except ClientDisconnected:
            return
        except Exception as error:
            logger.error(
                "unexpected %s answering %s %s", describe(error), scope["method"], route_path(scope)
            )
            reply = error_reply(500, "InternalServerError", "Internal Server Error", fmt, case)
        await reply.send(send, head_only=scope["method"] == "HEAD")

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        headers: Headers,
        query: _Query,
        fmt: WireFormat,
        case: TextCase,
    ) -> Reply:
        method: str = scope["method"]
        if method not in _METHODS:
            return error_reply(
                405,
                METHOD_NOT_ALLOWED,
                f"Method '{method[:32]}' is not allowed; use {', '.join(_METHODS)}",
                fmt,
                case,
                [("allow", ", ".join(_METHODS))],
            )
        identity = await self.authenticator.authenticate(headers)
        if identity is None:
            return error_reply(
                401, UNAUTHORIZED, "Not Authenticated", fmt, case, [("www-authenticate", "Bearer")]
            )
        if identity.role is not Role.ADMIN:
            return error_reply(403, FORBIDDEN, "Only an admin may read or change limits", fmt, case)
        body = b""
        if method in ("POST", "PUT"):
            cap = self.settings.max_body_bytes
            if declared_too_large(headers, cap):
                return _too_large(cap, fmt, case)
            try:
                body = await read_capped(
                    receive_with_deadline(receive, self.settings.body_timeout_seconds), cap
                )
            except BodyTooLarge:
                return _too_large(cap, fmt, case, close=True)
            except TimeoutError:
                return error_reply(
                    408, "RequestTimeout", "The request body did not arrive in time", fmt, case,
                    [("connection", "close")],
                )  # fmt: skip
        try:
            request = bind_limit_request(
                query=query.pairs,
                body=body,
                content_type=headers.get("content-type"),
                require_company=method in ("POST", "PUT", "DELETE"),
                require_limit=method in ("POST", "PUT"),
            )
        except BindingError as error:
            return status_reply(error.status_code, error.response_status, fmt, case)
        try:
            return await self._act(method, identity, request, fmt, case)
        except OverridesUnsupported:
            return error_reply(
                501, NOT_IMPLEMENTED, "This usage store keeps no run-time limits", fmt, case
            )
        except StoreError as error:
            logger.warning("usage store failed: %s", type(error).__name__)
            return error_reply(
                503,
                SERVICE_UNAVAILABLE,
                "The usage store is unavailable; retry",
                fmt,
                case,
                [("retry-after", "1")],
            )

    async def _act(
        self,
        method: str,
        identity: Identity,
        request: LimitRequest,
        fmt: WireFormat,
        case: TextCase,
    ) -> Reply:
        ledger, company = self.ledger, request.company_id
        if company is None:  # GET without a company: the list of overrides
            overrides = await ledger.limit_overrides()
            results = [
                {"CompanyId": c, "TokenLimit": limit}
                for c, limit in sorted(overrides.items(), key=lambda item: str(item[0]))
            ]
            return _ok({"Results": results}, fmt, case)
        previous: int | None = None
        changed = method in ("POST", "PUT", "DELETE")
        if changed:
            limit = request.token_limit if method != "DELETE" else None
            previous = await ledger.set_limit(company, limit, by=identity.subject)
        info = await ledger.limit_info(company)
        return _ok(limit_members(info, ledger.thresholds, previous if changed else None), fmt, case)


def limit_members(
    info: LimitInfo, thresholds: tuple[float, ...], previous: int | None = None
) -> dict[str, Any]:
    values = (
        info.company_id,
        info.token_limit,
        info.override,
        info.source,
        previous,
        list(thresholds) or None,
    )
    return dict(zip(LIMIT_MEMBERS, values, strict=True))


def _ok(members: dict[str, Any], fmt: WireFormat, case: TextCase) -> Reply:
    return Reply(200, encode_dto(members, fmt, case), fmt.content_type)


def _too_large(cap: int, fmt: WireFormat, case: TextCase, *, close: bool = False) -> Reply:
    headers = [("connection", "close")] if close else []
    message = f"The request body is larger than {cap} bytes"
    return error_reply(413, REQUEST_ENTITY_TOO_LARGE, message, fmt, case, headers)
