"""Fuzzing the real ``budget-guard serve`` process over loopback: hypothesis-generated requests
at the proxy path and the usage endpoint, schemathesis driven by the OpenAPI document the
server serves, and a concurrent barrage of the heaviest hostile bodies. No answer is a 5xx,
every refusal is in its path's error shape, company B is never charged, the process's logs
hold no credential, and its peak resident memory stays bounded."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.sec_hostile import (
    PROXY_PATHS,
    HostileRequest,
    hostile_requests,
)
from tests.security.sec_process import Process, budget_guard_serve
from tests.security.sec_support import (
    ADMIN_KEY,
    CHAT,
    COMPANY_B,
    ENDPOINT,
    ENDPOINT_PATHS,
    GUARD_BODY_CAP,
    JWT_SECRET,
    KEY_A,
    KEY_B,
    UPSTREAM_KEY,
    USAGE_B,
    assert_refusal,
    bearer,
    config,
    raw_exchange,
    request_head,
    tokens_used,
)

PEAK_RSS_BOUND_MIB = 400
"""Generous, about twice what the process measures (the token encodings and the demo upstream
make most of it). A server that held what the barrage below streams at it (32 MiB chunked
uploads, eight at a time) would pass it."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    directory = tmp_path_factory.mktemp("serve")
    with budget_guard_serve(config(), directory, "--log-level", "info") as process:
        seeded = httpx.post(
            process.url + ENDPOINT,
            json={"companyId": str(COMPANY_B), "tokensUsed": USAGE_B},
            headers=bearer(ADMIN_KEY),
            timeout=15,
        )
        assert seeded.status_code == 200, seeded.text
        yield process
        # Nothing thrown at it charged company B, and it still serves.
        assert tokens_used(process.url, COMPANY_B) == USAGE_B
    log = process.log()
    assert '"logger":"uvicorn.access"' in log  # the log is real, and at info level
    for secret in (KEY_A, KEY_B, ADMIN_KEY, JWT_SECRET, UPSTREAM_KEY):
        assert secret not in log


def _send(client: httpx.Client, request: HostileRequest) -> httpx.Response:
    url = httpx.URL(request.path).copy_with(query=request.query.encode("ascii") or None)
    return client.send(
        client.build_request(request.method, url, headers=request.headers, content=request.body)
    )


def _check(response: httpx.Response, path: str) -> None:
    assert response.status_code < 500, (path, response.status_code, response.text[:300])
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert_refusal(path, response.status_code, response.headers, response.content)


FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def test_fuzzed_requests_on_the_proxy_path(server: Process) -> None:
    with httpx.Client(base_url=server.url, timeout=20) as client:

        @FUZZ
        @given(request=hostile_requests(PROXY_PATHS))
        def run(request: HostileRequest) -> None:
            _check(_send(client, request), request.path)

        run()


def test_fuzzed_requests_on_the_usage_endpoint(server: Process) -> None:
    with httpx.Client(base_url=server.url, timeout=20) as client:

        @FUZZ
        @given(request=hostile_requests(ENDPOINT_PATHS))
        def run(request: HostileRequest) -> None:
            _check(_send(client, request), request.path)

        run()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)
def test_schemathesis_from_the_served_openapi_document(
    server: Process, mode: schemathesis.GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    limits = ENDPOINT.removesuffix("/usage") + "/limits"
    assert {(op.method.upper(), op.path) for op in operations} == {
        ("GET", ENDPOINT),
        ("POST", ENDPOINT),
        ("GET", limits),
        ("PUT", limits),
        ("POST", limits),
        ("DELETE", limits),
    }
    statuses: set[int] = set()
    for operation in operations:
        # The limit routes are an admin's: a user key would only ever be refused (403).
        key = ADMIN_KEY if operation.path == limits else KEY_A
        _fuzz_operation(server.url, operation, mode, key, statuses)
    # Both kinds of data reached the server: accepted, and refused by validation.
    assert 200 in statuses and 400 in statuses, statuses


def _fuzz_operation(
    url: str,
    operation: Any,
    mode: schemathesis.GenerationMode,
    key: str,
    statuses: set[int],
) -> None:
    @settings(
        max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=url, headers=bearer(key), timeout=20)
        checks = CHECKS
        if _asks_pascal_case(case):
            # The document's response schemas describe the configured (camel) casing only;
            # PascalCase answers are checked by assert_refusal below instead.
            checks = [c for c in CHECKS if c is not response_schema_conformance]
        case.validate_response(response, checks=checks)
        statuses.add(response.status_code)
        if response.status_code >= 400:
            headers = {name: values[0] for name, values in response.headers.items()}
            assert_refusal(operation.path, response.status_code, headers, response.content)

    run()


def _asks_pascal_case(case: schemathesis.Case) -> bool:
    values = [v for k, v in (case.query or {}).items() if k.lower() == "jsconfig"]
    return any("pascal" in str(v).lower() or "tc:pc" in str(v).lower() for v in values)


def _barrage_request(port: int, index: int) -> int | None:
    """One of the heaviest hostile requests, chosen by ``index``."""
    auth = {**bearer(KEY_A), "Content-Type": "application/json"}
    kind = index % 6
    if kind == 0:  # a body exactly at the cap (read whole, then refused as not JSON)
        body = b"x" * GUARD_BODY_CAP
    elif kind == 1:  # deep nesting just under the cap
        body = b"[" * (GUARD_BODY_CAP - 1)
    elif kind == 2:  # a declared length far past the cap, nothing sent
        head = request_head("POST", CHAT, port, auth, body_length=10**12)
        return raw_exchange(port, head, timeout=20).status
    elif kind == 3:  # 32 MiB streamed past the cap, never terminated
        head = request_head("POST", CHAT, port, {**auth, "Transfer-Encoding": "chunked"})
        chunk = b"%x\r\n%s\r\n" % (65536, b"y" * 65536)
        return raw_exchange(port, head, [chunk] * 512, timeout=20).status
    elif kind == 4:  # a huge string to count (the guard must tokenize it)
        body = (
            b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"'
            + b"ab " * 300_000
            + b'"}],"max_tokens":1}'
        )
    else:  # the usage endpoint: deep nesting past its small cap
        head = request_head("POST", ENDPOINT, port, auth, body_length=100_000)
        return raw_exchange(port, head, [b"[" * 100_000], timeout=20).status
    head = request_head("POST", CHAT, port, auth, body_length=len(body))
    return raw_exchange(port, head, [body], timeout=30).status


def test_peak_memory_under_a_hostile_barrage(server: Process) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda i: _barrage_request(server.port, i), range(96)))
    assert all(status is not None and status < 500 for status in statuses), statuses
    assert {400, 413} <= set(statuses)  # (a 200 or a 429 once A is over its budget)
    peak_mib = server.status("VmHWM") / 1024
    now_mib = server.status("VmRSS") / 1024
    print(f"\nbudget-guard serve: peak RSS {peak_mib:.0f} MiB, now {now_mib:.0f} MiB")
    assert peak_mib < PEAK_RSS_BOUND_MIB
