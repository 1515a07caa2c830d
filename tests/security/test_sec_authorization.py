"""The authorization matrix: every route and method of the assembled server against every kind
of credential, each answered with its documented status, and not one response or log line
carrying another company's numbers or any credential.

Documented statuses (docs/usage-endpoint.md, the endpoint's OpenAPI document, the usage
page's module): a stranger (no credential, an unknown key, a JWT that is expired, signed with
another secret, signed with ``alg: none`` or another algorithm) gets 401; a user acts for its
own company and gets 403 naming another; an admin must name a company (400 on the endpoint and
the proxy path; the usage page shows a company picker instead, 200). A method the endpoint does
not serve is 405 whoever asks (the method is checked before the caller). ``/openapi.json``,
``/healthz``, ``/readyz`` and ``/metrics`` need no credential.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from budget_guard.app import build_app
from budget_guard.config import settings_from_mapping
from tests.proxy.servers import refused_url, serve
from tests.security.sec_support import (
    ADMIN_KEY,
    CHAT,
    COMPANY_A,
    COMPANY_B,
    ENDPOINT,
    ENDPOINT_PATHS,
    JWT_SECRET,
    KEY_A,
    KEY_B,
    LIMIT_B,
    OTHER_SECRET,
    UPSTREAM_KEY,
    Target,
    assert_openai_error,
    assert_response_status,
    bearer,
    captured_logs,
    config,
    guarded_server,
    jwt_token,
    tokens_used,
)

COMPANY_HEADER = "x-budget-company-id"
PAGE = ENDPOINT + "/ui"
CHAT_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there"}]}


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]
    kind: str
    """stranger | own (acts for its own company) | other (names a company it may not) |
    admin-none (admin naming no company) | admin (admin naming company B)"""
    names: uuid.UUID | None = None
    entitled_to_b: bool = False


def callers() -> list[Caller]:
    expired = jwt_token(COMPANY_A, expires_in=-3600)
    wrong_secret = jwt_token(COMPANY_B, role="admin", secret=OTHER_SECRET)
    alg_none = jwt_token(COMPANY_B, role="admin", algorithm="none")
    wrong_alg = jwt_token(COMPANY_A, algorithm="HS512")
    user_jwt = jwt_token(COMPANY_A)
    admin_jwt = jwt_token(COMPANY_OPS_JWT, role="admin")
    return [
        Caller("no credentials", {}, "stranger"),
        Caller("unknown key", bearer("bg-sec-not-a-key-000000"), "stranger"),
        Caller("unknown x-api-key", {"X-Api-Key": "bg-sec-not-a-key-111111"}, "stranger"),
        Caller("another scheme", {"Authorization": f"Basic {KEY_A}"}, "stranger"),
        Caller("expired JWT", bearer(expired), "stranger"),
        Caller("JWT signed with another secret", bearer(wrong_secret), "stranger"),
        Caller("alg none JWT", bearer(alg_none), "stranger"),
        Caller("JWT with an algorithm not configured", bearer(wrong_alg), "stranger"),
        Caller("user A key", bearer(KEY_A), "own"),
        Caller("user A key as X-Api-Key", {"X-Api-Key": KEY_A}, "own"),
        Caller("user A JWT", bearer(user_jwt), "own"),
        Caller("user A naming A", bearer(KEY_A), "own", names=COMPANY_A),
        Caller("user A naming B", bearer(KEY_A), "other", names=COMPANY_B),
        Caller("user A JWT naming B", bearer(user_jwt), "other", names=COMPANY_B),
        Caller("admin naming no company", bearer(ADMIN_KEY), "admin-none"),
        Caller("admin JWT naming no company", bearer(admin_jwt), "admin-none"),
        Caller("admin naming B", bearer(ADMIN_KEY), "admin", COMPANY_B, entitled_to_b=True),
        Caller("admin JWT naming B", bearer(admin_jwt), "admin", COMPANY_B, entitled_to_b=True),
        Caller("user B key", bearer(KEY_B), "own", entitled_to_b=True),
    ]


COMPANY_OPS_JWT = uuid.UUID("5c0ffee0-0000-4000-8000-0000000000ee")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    family: str
    """endpoint | proxy | page | public | wrong-method"""
    body: dict[str, object] | None = None


ROUTES = [
    *(Route("POST", path, "endpoint", {"tokensUsed": 0}) for path in ENDPOINT_PATHS),
    *(Route("GET", path, "endpoint") for path in ENDPOINT_PATHS),
    Route("HEAD", ENDPOINT, "endpoint"),
    Route("DELETE", ENDPOINT, "wrong-method"),
    Route("PUT", ENDPOINT + ".json", "wrong-method", {"tokensUsed": 0}),
    Route("POST", CHAT, "proxy", CHAT_BODY),
    Route("GET", "/v1/models", "proxy"),
    Route("GET", PAGE, "page"),
    Route("GET", "/openapi.json", "public"),
    Route("GET", "/healthz", "public"),
    Route("GET", "/readyz", "public"),
    Route("GET", "/metrics", "public"),
]

EXPECTED = {
    "endpoint": {"stranger": 401, "own": 200, "other": 403, "admin-none": 400, "admin": 200},
    "proxy": {"stranger": 401, "own": 200, "other": 403, "admin-none": 400, "admin": 200},
    "page": {"stranger": 401, "own": 200, "other": 403, "admin-none": 200, "admin": 200},
    "public": dict.fromkeys(("stranger", "own", "other", "admin-none", "admin"), 200),
    "wrong-method": dict.fromkeys(("stranger", "own", "other", "admin-none", "admin"), 405),
}


def forms(company: uuid.UUID) -> list[str]:
    """Every way a company id or a number could be written into an answer."""
    text = str(company)
    return [text, text.upper(), company.hex, company.hex.upper()]


def numbers(value: int) -> list[str]:
    return [str(value), f"{value:,}"]


@dataclass
class Exchange:
    caller: Caller
    route: Route
    response: httpx.Response
    b_numbers: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        headers = "\n".join(f"{k}: {v}" for k, v in self.response.headers.multi_items())
        return headers + "\n" + self.response.content.decode("utf-8", "replace")


@dataclass
class Matrix:
    target: Target
    exchanges: list[Exchange]
    logs: list[str]
    """Every log line of the run, ours and uvicorn's."""
    credentials: list[str]
    """Every key, secret and token the run used."""


def call(client: httpx.Client, route: Route, caller: Caller) -> httpx.Response:
    headers = dict(caller.headers)
    params: dict[str, str] = {}
    if caller.names is not None:
        if route.family == "proxy":
            headers[COMPANY_HEADER] = str(caller.names)
        else:
            params["CompanyId"] = str(caller.names)
    return client.request(route.method, route.path, headers=headers, params=params, json=route.body)


@pytest.fixture(scope="module")
def matrix() -> Iterator[Matrix]:
    """Every route x every caller, once, with the logs of all of it."""
    everyone = callers()
    credentials = sorted(
        {KEY_A, KEY_B, ADMIN_KEY, JWT_SECRET, OTHER_SECRET, UPSTREAM_KEY}
        | {value.split(" ", 1)[-1] for c in everyone for value in c.headers.values()}
    )
    exchanges: list[Exchange] = []
    with guarded_server() as target, captured_logs() as logs:
        b_numbers = {str(LIMIT_B), f"{LIMIT_B:,}"}

        def note_b() -> None:
            used = tokens_used(target.url, COMPANY_B)
            for value in (used, LIMIT_B - used):
                b_numbers.update(numbers(value))

        note_b()
        with httpx.Client(base_url=target.url, timeout=15) as client:
            for route in ROUTES:
                for caller in everyone:
                    response = call(client, route, caller)
                    if caller.entitled_to_b:
                        note_b()
                    exchanges.append(Exchange(caller, route, response))
        for exchange in exchanges:
            exchange.b_numbers = sorted(b_numbers)
        yield Matrix(target, exchanges, logs, credentials)


def test_every_route_and_credential_gets_its_documented_status(
    matrix: Matrix,
) -> None:
    wrong = [
        (e.route.method, e.route.path, e.caller.name, e.response.status_code)
        for e in matrix.exchanges
        if e.response.status_code != EXPECTED[e.route.family][e.caller.kind]
    ]
    assert not wrong, wrong
    assert len(matrix.exchanges) == len(ROUTES) * len(callers())


def test_every_refusal_is_in_its_paths_error_shape(
    matrix: Matrix,
) -> None:
    for e in matrix.exchanges:
        status = e.response.status_code
        if status < 400 or e.route.method == "HEAD":
            continue
        if e.route.family == "proxy":
            assert_openai_error(status, e.response.headers, e.response.content)
        elif e.route.family in ("endpoint", "wrong-method"):
            assert_response_status(status, e.response.headers, e.response.content)
            if status == 401:
                assert e.response.headers["www-authenticate"] == "Bearer"
        else:
            assert e.response.headers["content-type"].startswith("text/html"), e.text


def test_no_answer_carries_another_companys_numbers(
    matrix: Matrix,
) -> None:
    checked = 0
    for e in matrix.exchanges:
        if e.caller.entitled_to_b or e.route.path == "/metrics":
            continue  # /metrics is the operator's aggregate, checked below
        text = e.text
        for needle in [*forms(COMPANY_B), *e.b_numbers]:
            assert needle not in text, (e.route, e.caller.name, needle, text[:500])
        checked += 1
    assert checked > 300


def test_metrics_name_no_company_and_no_credential(
    matrix: Matrix,
) -> None:
    for e in matrix.exchanges:
        if e.route.path == "/metrics":
            for company in (COMPANY_A, COMPANY_B):
                for needle in forms(company):
                    assert needle not in e.text


def test_no_answer_carries_a_credential(
    matrix: Matrix,
) -> None:
    for e in matrix.exchanges:
        text = e.text
        for secret in matrix.credentials:
            assert secret not in text, (e.route, e.caller.name)


def test_no_log_line_carries_a_credential(
    matrix: Matrix,
) -> None:
    # The capture saw the traffic: an access line and a guard refusal at least.
    assert any("/v1/chat/completions" in line and "uvicorn.access" in line for line in matrix.logs)
    assert any("request rejected" in line for line in matrix.logs)
    for line in matrix.logs:
        for secret in matrix.credentials:
            assert secret not in line, line[:500]


def test_the_upstream_gets_only_its_own_key(
    matrix: Matrix,
) -> None:
    assert matrix.target.upstream.credentials
    assert set(matrix.target.upstream.credentials) == {f"Bearer {UPSTREAM_KEY}"}


def test_a_request_named_for_another_company_charges_nobody(
    matrix: Matrix,
) -> None:
    before_a = tokens_used(matrix.target.url, COMPANY_A)
    before_b = tokens_used(matrix.target.url, COMPANY_B)
    response = httpx.post(
        matrix.target.url + CHAT,
        json=CHAT_BODY,
        headers={**bearer(KEY_A), COMPANY_HEADER: str(COMPANY_B)},
    )
    assert response.status_code == 403
    record = httpx.post(
        matrix.target.url + ENDPOINT,
        params={"CompanyId": str(COMPANY_B)},
        json={"tokensUsed": 500},
        headers=bearer(KEY_A),
    )
    assert record.status_code == 403
    assert tokens_used(matrix.target.url, COMPANY_A) == before_a
    assert tokens_used(matrix.target.url, COMPANY_B) == before_b


def test_an_unreachable_upstream_logs_no_key() -> None:
    """The upstream's failure is logged (502): the line names the request, never a key."""
    with captured_logs() as logs:
        app = build_app(settings_from_mapping(config()), upstream_url=refused_url())
        with serve(app) as url:
            response = httpx.post(url + CHAT, json=CHAT_BODY, headers=bearer(KEY_A), timeout=15)
    assert response.status_code == 502
    assert_openai_error(502, response.headers, response.content)
    assert UPSTREAM_KEY not in response.text
    assert any("502" in line for line in logs)
    for line in logs:
        for secret in (UPSTREAM_KEY, KEY_A, JWT_SECRET):
            assert secret not in line, line[:500]
