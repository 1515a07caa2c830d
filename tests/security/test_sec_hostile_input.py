"""Named hostile requests at the whole assembled server, over raw sockets where a client library
would tidy them up: each is refused with a 4xx in its path's error shape (OpenAI's on ``/v1/``,
ServiceStack's ResponseStatus on the usage endpoint), never a 5xx, and none is charged wrongly."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.security.sec_support import (
    CHAT,
    COMPANY_A,
    COMPANY_B,
    ENDPOINT,
    ENDPOINT_BODY_CAP,
    GUARD_BODY_CAP,
    KEY_A,
    USAGE_B,
    Target,
    assert_openai_error,
    assert_refusal,
    bearer,
    guarded_server,
    raw_exchange,
    read_answer,
    request_head,
    tokens_used,
)

CHAT_BODY = orjson.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
)
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with guarded_server() as served:
        yield served
        # Whatever was thrown at it, company B was never charged.
        assert tokens_used(served.url, COMPANY_B) == USAGE_B


@pytest.fixture
def client(target: Target) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.url, timeout=15) as client:
        yield client


def send(client: httpx.Client, method: str, path: str, **options: object) -> httpx.Response:
    response = client.request(method, path, **options)  # type: ignore[arg-type]
    return response


def refused(response: httpx.Response, status: int | None = None) -> None:
    assert_refusal(
        response.request.url.path, response.status_code, response.headers, response.content
    )
    if status is not None:
        assert response.status_code == status, (response.status_code, response.text)


# --------------------------------------------------------------------------- oversized bodies


def test_declared_oversized_bodies_are_refused_before_they_are_read(target: Target) -> None:
    for path in (CHAT, ENDPOINT):
        head = request_head(
            "POST", path, target.port, {**bearer(KEY_A), **JSON}, body_length=10**12
        )
        answer = raw_exchange(target.port, head, timeout=10)  # no body is ever sent
        assert answer.status == 413, (path, answer)
        assert_refusal(path, 413, answer.headers, answer.body)


def test_oversized_bodies_that_declare_their_length_get_413(client: httpx.Client) -> None:
    for path, cap in ((CHAT, GUARD_BODY_CAP), (ENDPOINT, ENDPOINT_BODY_CAP)):
        response = send(
            client, "POST", path, content=b"x" * (cap + 1), headers={**bearer(KEY_A), **JSON}
        )
        refused(response, 413)


@pytest.mark.parametrize("path,cap", [(CHAT, GUARD_BODY_CAP), (ENDPOINT, ENDPOINT_BODY_CAP)])
def test_a_body_answered_before_it_is_read_is_not_taken_for_the_next_head(
    target: Target, path: str, cap: int
) -> None:
    """The 413 leaves on the declared length, before the body is read; the body that then
    arrives is the server's to discard, not a 16 KiB "request head" (431), and the kept-alive
    connection serves the next request."""
    body = b"x" * (cap + 1)
    head = request_head("POST", path, target.port, {**bearer(KEY_A), **JSON}, body_length=len(body))
    with socket.create_connection(("127.0.0.1", target.port), timeout=10) as sock:
        sock.sendall(head)
        assert read_answer(sock, timeout=10).status == 413
        sock.sendall(body)
        sock.sendall(request_head("GET", "/healthz", target.port))
        answer = read_answer(sock, timeout=10)
    assert answer.status == 200, answer


@pytest.mark.parametrize("path,cap", [(CHAT, GUARD_BODY_CAP), (ENDPOINT, ENDPOINT_BODY_CAP)])
def test_chunked_bodies_past_the_cap_get_413_and_the_connection_closed(
    target: Target, path: str, cap: int
) -> None:
    """A chunked body has no announced end: the server must stop reading and hang up rather
    than let the client stream into it forever."""
    headers = {**bearer(KEY_A), **JSON, "Transfer-Encoding": "chunked"}
    head = request_head("POST", path, target.port, headers)
    chunk = b"a" * 65536
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    # Twice the cap, and the chunked stream is never terminated.
    answer = raw_exchange(target.port, head, [framed] * (2 * cap // len(chunk) + 2), timeout=10)
    assert answer.status == 413, answer
    assert_refusal(path, 413, answer.headers, answer.body)
    assert answer.closed


# --------------------------------------------------------------------------- malformed bodies


DEEP = b"[" * 100_000
NESTED_IN_REQUEST = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":'
    + b"[" * 1020
    + b"]" * 1020
    + b"}]}"
)


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        DEEP[:900] + b"]" * 900,  # nesting within the parser's limit, not an object
        NESTED_IN_REQUEST,
        b'{"model":"gpt-4o-mini","messages":' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":1e400}',
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":-1e400}',
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":'
        + str(2**70).encode()
        + b"}",
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"n":1e400}',
        b'{"model":1e400,"messages":[]}',
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"caf\xc3\xa9 \xff\xfe"}]}',
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\xed\xa0\x80"}]}',
        b"\xef\xbb\xbf\xff{}",
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\\ud800"}]}',
        b"",
        b"null",
        b'"' + b"a" * 1000,
    ],
    ids=lambda body: repr(body[:24]),
)
def test_malformed_chat_bodies_get_400_in_openai_shape(client: httpx.Client, body: bytes) -> None:
    before = tokens_used(str(client.base_url), COMPANY_A)
    response = send(client, "POST", CHAT, content=body, headers={**bearer(KEY_A), **JSON})
    if response.status_code == 200:
        # Only a lone surrogate escape is valid JSON; it must then be counted like any text.
        assert body.endswith(b'\\ud800"}]}'), response.text
        assert tokens_used(str(client.base_url), COMPANY_A) > before
        return
    refused(response, 400)
    assert_openai_error(response.status_code, response.headers, response.content)
    assert tokens_used(str(client.base_url), COMPANY_A) == before


def _nested(opening: str, leaf: str, closing: str, levels: int) -> bytes:
    return (opening * levels + leaf + closing * levels).encode()


ANTHROPIC_HEAD = b'{"model":"claude-sonnet-4-20250514","max_tokens":10,"messages":[{"role":'
HOSTILE_STRUCTURES = {
    # Issue 12's case: tool_result content nested 500 levels was a RecursionError and a 500.
    "tool_result x500": (
        "/v1/messages",
        ANTHROPIC_HEAD
        + b'"user","content":['
        + _nested('{"type":"tool_result","tool_use_id":"t","content":[', '"x"', "]}", 500)
        + b"]}]}",
        "guard.max_body_depth",
    ),
    # orjson parses 1000 levels but re-serializes only 254: a tool_use input it echoed.
    "tool_use input x300": (
        "/v1/messages",
        ANTHROPIC_HEAD
        + b'"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":'
        + _nested('{"a":', "1", "}", 300)
        + b"}]}]}",
        "guard.max_body_depth",
    ),
    "tool schema x450": (
        CHAT,
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"tools":[{"type":'
        b'"function","function":{"name":"f","parameters":'
        + _nested('{"type":"object","properties":{"c":', '{"type":"string"}', "}}", 450)
        + b"}}]}",
        "guard.max_body_depth",
    ),
    "10,001 schema properties": (
        CHAT,
        orjson.dumps(
            {
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {
                                "type": "object",
                                "properties": {f"p{i}": {"type": "string"} for i in range(10_001)},
                            },
                        },
                    }
                ],
            }
        ),
        "guard.max_body_object_keys",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE_STRUCTURES))
def test_hostile_structure_in_a_counted_body_is_a_400_naming_the_limit(
    client: httpx.Client, name: str
) -> None:
    path, body, setting = HOSTILE_STRUCTURES[name]
    before = tokens_used(str(client.base_url), COMPANY_A)
    response = send(client, "POST", path, content=body, headers={**bearer(KEY_A), **JSON})
    refused(response, 400)
    error = assert_openai_error(response.status_code, response.headers, response.content)
    assert error["type"] == "invalid_request_error"
    assert setting in error["message"], error
    assert error["param"], error
    assert tokens_used(str(client.base_url), COMPANY_A) == before


@pytest.mark.parametrize(
    "body,content_type",
    [
        (b"[" * 3000, "application/json"),
        (b"[" * 3000, "text/jsv"),
        (b"{a:" * 1000, "text/jsv"),
        (b'{"tokensUsed":1e400}', "application/json"),
        (b'{"tokensUsed":-1e400}', "application/json"),
        (b'{"tokensUsed":' + str(2**70).encode() + b"}", "application/json"),
        (b'{"tokensUsed":' + str(2**63).encode() + b"}", "application/json"),
        (b"{TokensUsed:" + str(2**70).encode() + b"}", "text/jsv"),
        (b"TokensUsed=" + str(2**70).encode(), "application/x-www-form-urlencoded"),
        (b'{"tokensUsed":5,"companyId":"\xff\xfe"}', "application/json"),
        (b"{TokensUsed:5,CompanyId:\xff}", "text/jsv"),
        (b"TokensUsed=5&CompanyId=%ff%fe", "application/x-www-form-urlencoded"),
        (b'{"tokensUsed":5}', "text/plain"),
        (b'{"tokensUsed":5}', "multipart/form-data; boundary=x"),
        (b'{"tokensUsed":5}', "application/xml"),
        (b'{"tokensUsed":5}', "\x7f"),
    ],
    ids=lambda value: repr(value[:24]),
)
def test_malformed_usage_bodies_get_4xx_response_status(
    client: httpx.Client, body: bytes, content_type: str
) -> None:
    before = tokens_used(str(client.base_url), COMPANY_A)
    response = send(
        client,
        "POST",
        ENDPOINT,
        content=body,
        headers={**bearer(KEY_A), "Content-Type": content_type},
    )
    refused(response)
    assert response.status_code in (400, 413, 415), response.text
    assert tokens_used(str(client.base_url), COMPANY_A) == before


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "image/png", "\x01"]
)
def test_a_chat_body_under_another_content_type_is_charged_or_refused(
    client: httpx.Client, content_type: str | None
) -> None:
    """The guard counts the body it forwards whatever it is labelled: a wrong Content-Type is
    never a way past the meter."""
    before = tokens_used(str(client.base_url), COMPANY_A)
    headers = bearer(KEY_A) | ({"Content-Type": content_type} if content_type else {})
    response = send(client, "POST", CHAT, content=CHAT_BODY, headers=headers)
    if response.status_code >= 400:
        refused(response)
        assert tokens_used(str(client.base_url), COMPANY_A) == before
    else:
        charged = response.json()["usage"]["total_tokens"]
        assert tokens_used(str(client.base_url), COMPANY_A) == before + charged


# --------------------------------------------------------------------------- query strings


@pytest.mark.parametrize("order", ["own-first", "other-first"])
def test_duplicated_company_ids_never_charge_another_company(
    client: httpx.Client, order: str
) -> None:
    pair = [("CompanyId", str(COMPANY_A)), ("companyid", str(COMPANY_B))]
    if order == "other-first":
        pair.reverse()
    before = tokens_used(str(client.base_url), COMPANY_A)
    response = send(
        client,
        "POST",
        ENDPOINT,
        params=httpx.QueryParams(pair),
        json={"tokensUsed": 11},
        headers=bearer(KEY_A),
    )
    if response.status_code == 200:
        assert response.json()["companyId"] == COMPANY_A.hex
        assert tokens_used(str(client.base_url), COMPANY_A) == before + 11
    else:
        # ServiceStack joins repeated keys with commas: not a Guid (400), or another one (403).
        refused(response)
        assert response.status_code in (400, 403), response.text
        assert tokens_used(str(client.base_url), COMPANY_A) == before


def test_duplicated_token_counts_charge_one_of_them_once(client: httpx.Client) -> None:
    before = tokens_used(str(client.base_url), COMPANY_A)
    response = send(
        client,
        "POST",
        ENDPOINT,
        params=httpx.QueryParams([("TokensUsed", "3"), ("tokensUsed", "5"), ("TOKENSUSED", "x")]),
        json={"tokensUsed": 7},
        headers=bearer(KEY_A),
    )
    if response.status_code == 200:
        assert tokens_used(str(client.base_url), COMPANY_A) - before in (3, 5, 7)
    else:
        refused(response, 400)


@pytest.mark.parametrize(
    "query",
    [
        "format=json&format=jsv&format=xml",
        "jsconfig=TextCase:PascalCase&jsconfig=tc:cc&CompanyId=x&CompanyId=",
        "&".join(["a=1"] * 2000),  # past the endpoint's field limit
        "%ff%fe=%c0%af&CompanyId=%00",
        "CompanyId=" + "9" * 5000,
        "=&&&==&%",
    ],
    ids=lambda q: q[:30],
)
def test_hostile_query_strings_on_the_endpoint(client: httpx.Client, query: str) -> None:
    for method in ("GET", "POST"):
        response = send(
            client,
            method,
            f"{ENDPOINT}?{query}",
            json={"tokensUsed": 0} if method == "POST" else None,
            headers=bearer(KEY_A),
        )
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            refused(response)


# --------------------------------------------------------------------------- headers


INJECTIONS = [
    "a\r\nSet-Cookie: pwned=1",
    "a\nSet-Cookie: pwned=1",
    "a\rSet-Cookie: pwned=1",
    "a\x00b",
    "a\r\n\r\nGET /v1/models HTTP/1.1",
]


@pytest.mark.parametrize("path", [CHAT, ENDPOINT])
@pytest.mark.parametrize(
    "header",
    [
        "Authorization",
        "X-Api-Key",
        "Idempotency-Key",
        "Accept",
        "Content-Type",
        "x-budget-company-id",
    ],
)
def test_header_injection_never_reaches_a_response_header(
    target: Target, path: str, header: str
) -> None:
    for payload in INJECTIONS:
        value = f"Bearer {KEY_A}{payload}" if header == "Authorization" else payload
        head = request_head(
            "POST",
            path,
            target.port,
            [(header, value), ("Content-Type", "application/json")],
            body_length=len(CHAT_BODY),
        )
        answer = raw_exchange(target.port, head, [CHAT_BODY], timeout=10)
        assert answer.status is not None, (header, payload)
        assert answer.status < 500, (header, payload, answer)
        assert "set-cookie" not in answer.headers, (header, payload, answer.headers)
        assert all("pwned" not in value for value in answer.headers.values())
        if answer.headers.get("content-type", "").startswith(("application/json", "text/jsv")):
            if answer.status >= 400:
                assert_refusal(path, answer.status, answer.headers, answer.body)
        else:
            # Refused by the HTTP server itself, before the app: a bare 400 and a closed
            # connection.
            assert answer.status == 400 and answer.closed, answer


@pytest.mark.parametrize("path", [CHAT, ENDPOINT])
def test_overlong_credentials_are_401_not_500(client: httpx.Client, path: str) -> None:
    for value in (
        "Bearer " + "a" * 9000,
        "Bearer " + KEY_A + "a" * 9000,
        ("Bearer " + "é" * 3000).encode("latin-1"),
        "Bearer " + "a.b." * 2000,
        "Basic " + "a" * 9000,
    ):
        response = send(
            client, "POST", path, content=CHAT_BODY, headers={"Authorization": value, **JSON}
        )
        refused(response, 401)
    response = send(
        client, "POST", path, content=CHAT_BODY, headers={"X-Api-Key": "k" * 12000, **JSON}
    )
    refused(response, 401)


def test_a_flood_of_header_bytes_is_refused_by_the_server(target: Target) -> None:
    headers = [(f"X-Fill-{n}", "v" * 8000) for n in range(64)]
    head = request_head("GET", ENDPOINT, target.port, [*bearer(KEY_A).items(), *headers])
    answer = raw_exchange(target.port, head, timeout=10)
    assert answer.status is None or 400 <= answer.status < 500, answer
    assert answer.closed


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "path",
    [
        "/v1/../x",
        "/v1/%2e%2e/x",
        "/v1/%2E%2E/%2e%2e/admin",
        "/v1/x/../chat/completions",
        "/v1/x/%2e%2e/chat/completions",
        "/v1/./chat/completions",
        "/v1/chat/completions/.",
        "/v1/chat/completions/..",
        "/v1/x%2f..%2fchat/completions",
    ],
)
def test_dot_segments_on_the_proxy_path_are_refused_and_never_forwarded(
    target: Target, path: str
) -> None:
    """The upstream client would resolve them: the request would leave ``/v1/`` or reach a
    metered route the guard had classified as an unmetered one."""
    before = tokens_used(target.url, COMPANY_A)
    forwarded = len(target.upstream.paths)
    head = request_head(
        "POST", path, target.port, {**bearer(KEY_A), **JSON}, body_length=len(CHAT_BODY)
    )
    answer = raw_exchange(target.port, head, [CHAT_BODY], timeout=10)
    assert answer.status == 400, (path, answer)
    error = assert_openai_error(400, answer.headers, answer.body)
    assert error["code"] == "invalid_path"
    assert len(target.upstream.paths) == forwarded
    assert tokens_used(target.url, COMPANY_A) == before


@pytest.mark.parametrize(
    "path",
    [
        "/v1//chat/completions",
        "/v1/chat//completions",
        "/v1/%2e/x%2e",
        "/v1/..%2f",
        "/v1/chat%2Fcompletions",
    ],
)
def test_other_odd_proxy_paths_are_refused_and_never_forwarded(target: Target, path: str) -> None:
    """Empty segments and encoded separators are what nginx, Spring or ASP.NET behind the guard
    might read as a metered route: only the canonical path is ever forwarded."""
    before = tokens_used(target.url, COMPANY_A)
    forwarded = len(target.upstream.paths)
    head = request_head(
        "POST", path, target.port, {**bearer(KEY_A), **JSON}, body_length=len(CHAT_BODY)
    )
    answer = raw_exchange(target.port, head, [CHAT_BODY], timeout=10)
    assert answer.status == 400, (path, answer)
    assert assert_openai_error(400, answer.headers, answer.body)["code"] == "invalid_path"
    assert len(target.upstream.paths) == forwarded
    assert tokens_used(target.url, COMPANY_A) == before


@pytest.mark.parametrize("path", ["//v1/chat/completions", "/V1/chat/completions", "/v1%2f../x"])
def test_paths_outside_the_guard_reach_no_upstream(target: Target, path: str) -> None:
    forwarded = len(target.upstream.paths)
    head = request_head(
        "POST", path, target.port, {**bearer(KEY_A), **JSON}, body_length=len(CHAT_BODY)
    )
    answer = raw_exchange(target.port, head, [CHAT_BODY], timeout=10)
    assert answer.status is not None and 400 <= answer.status < 500, (path, answer)
    assert len(target.upstream.paths) == forwarded
