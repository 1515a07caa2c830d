"""Shared constants and helpers of the endpoint tests (a uniquely named module, because test
folders here are not packages and every folder may have its own ``conftest``)."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

import httpx

from budget_guard.auth import ApiKey, ApiKeyAuthenticator, Authenticator, Role
from budget_guard.endpoint import EndpointSettings
from budget_guard.stores import UsageStore
from budget_guard.wire import jsv, loads_json

PATH = "/assistant/ai-chat/usage"
COMPANY_A = UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
COMPANY_B = UUID("9b2e4c1d-0f6a-4e8b-a7c3-5d1e2f3a4b5c")
COMPANY_OPS = UUID("00000000-0000-4000-8000-0000000000ad")
USER_A_KEY = "bg-live-company-a"
USER_B_KEY = "bg-live-company-b"
ADMIN_KEY = "bg-live-operator"
TOKEN_LIMIT = 50_000
WINDOW_DAYS = 30
JSON_TYPE = "application/json; charset=utf-8"
JSV_TYPE = "text/jsv; charset=utf-8"
SUCCESS_NAMES = [
    "companyId",
    "tokensUsed",
    "tokenLimit",
    "tokensRemaining",
    "isWithinBudget",
    "windowDays",
]


def api_keys() -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(
        [
            ApiKey(USER_A_KEY, COMPANY_A, Role.USER, name="company-a"),
            ApiKey(USER_B_KEY, COMPANY_B, Role.USER, name="company-b"),
            ApiKey(ADMIN_KEY, COMPANY_OPS, Role.ADMIN, name="operator"),
        ]
    )


def bearer(key: str = USER_A_KEY, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def decode(response: httpx.Response) -> dict[str, Any]:
    """The body in the format its Content-Type names; anything else fails the test."""
    content_type = response.headers.get("content-type")
    if content_type == JSON_TYPE:
        document = loads_json(response.content)
    elif content_type == JSV_TYPE:
        document = jsv.loads(response.content.decode("utf-8"))
    else:
        raise AssertionError(f"unexpected Content-Type {content_type!r}: {response.text[:200]}")
    assert isinstance(document, dict), document
    return document


def pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def response_status(response: httpx.Response, *, case: str = "camel") -> dict[str, Any]:
    """The ResponseStatus of an error answer, checking it is the only member and well formed."""

    def n(name: str) -> str:
        return pascal(name) if case == "pascal" else name

    document = decode(response)
    assert list(document) == [n("responseStatus")], document
    status = document[n("responseStatus")]
    assert isinstance(status[n("errorCode")], str) and status[n("errorCode")]
    assert isinstance(status[n("message")], str)
    assert n("stackTrace") not in status
    for error in status.get(n("errors"), []):
        assert isinstance(error[n("errorCode")], str) and error[n("errorCode")]
        assert isinstance(error[n("fieldName")], str) and error[n("fieldName")]
        assert isinstance(error[n("message")], str)
    return status


def assert_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response_status(response)
    assert body["errorCode"] == code, body
    if field is not None:
        # The top level repeats the first field error, as ServiceStack does.
        assert body["errors"][0]["fieldName"] == field, body
        assert body["errors"][0]["errorCode"] == code, body
        assert body["message"] == body["errors"][0]["message"]
    return body


def usage(response: httpx.Response) -> dict[str, Any]:
    """A success answer's members (camelCase), checking it has exactly the DTO's members."""
    assert response.status_code == 200, (response.status_code, response.text)
    document = decode(response)
    assert list(document) == SUCCESS_NAMES, document
    return document


class Serve(Protocol):
    """The ``serve_endpoint`` fixture: start a live endpoint, get its base URL."""

    def __call__(
        self,
        *,
        settings: EndpointSettings | None = None,
        store: UsageStore | None = None,
        authenticator: Authenticator | None = None,
        token_limit: int = TOKEN_LIMIT,
        mount: str | None = None,
        bare: bool = False,
    ) -> str: ...
