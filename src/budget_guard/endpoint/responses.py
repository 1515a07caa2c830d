"""Whole responses as values, built before anything is sent.

Building the body first means an exception can still be turned into a proper error response:
nothing half-written ever reaches the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.types import Send

from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.wire import (
    FieldError,
    ResponseStatus,
    TextCase,
    WireFormat,
    error_body,
    error_status,
    usage_body,
)

__all__ = ["Reply", "error_reply", "field_error_reply", "status_reply", "usage_reply"]


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, send: Send, *, head_only: bool = False) -> None:
        headers = [
            (b"content-type", self.content_type.encode("latin-1")),
            (b"content-length", str(len(self.body)).encode("latin-1")),
            (b"cache-control", b"no-store"),
            (b"vary", b"Accept"),
            *((name.encode("latin-1"), value.encode("latin-1")) for name, value in self.headers),
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head_only else self.body})


def usage_reply(
    snapshot: UsageSnapshot,
    fmt: WireFormat,
    case: TextCase,
    headers: list[tuple[str, str]] | None = None,
) -> Reply:
    body = usage_body(
        company_id=snapshot.company_id,
        tokens_used=snapshot.tokens_used,
        token_limit=snapshot.token_limit,
        tokens_remaining=snapshot.tokens_remaining,
        is_within_budget=snapshot.is_within_budget,
        window_days=snapshot.window_days,
        fmt=fmt,
        case=case,
    )
    return Reply(200, body, fmt.content_type, headers or [])


def error_reply(
    status: int,
    error_code: str,
    message: str,
    fmt: WireFormat,
    case: TextCase,
    headers: list[tuple[str, str]] | None = None,
) -> Reply:
    return status_reply(status, error_status(status, error_code, message), fmt, case, headers)


def status_reply(
    status: int,
    response_status: ResponseStatus,
    fmt: WireFormat,
    case: TextCase,
    headers: list[tuple[str, str]] | None = None,
) -> Reply:
    return Reply(status, error_body(response_status, fmt, case), fmt.content_type, headers or [])


def field_error_reply(status: int, error: FieldError, fmt: WireFormat, case: TextCase) -> Reply:
    """A validation-style error: the top level repeats the one field error, as ServiceStack."""
    response_status = ResponseStatus(
        error_code=error.error_code, message=error.message, errors=[error]
    )
    return status_reply(status, response_status, fmt, case)
