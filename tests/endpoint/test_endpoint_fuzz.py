"""No input makes the live endpoint answer anything but a well-formed error DTO.

Each generated request carries one fault that must be refused (no credentials, a wrong method,
a body over the cap, an unsupported Content-Type, a body that does not parse, a malformed field
in the query, an admin naming no company) plus random noise around it: raw query strings,
``format`` / ``jsconfig`` values, ``Accept`` and other headers, bodies. Every answer must be a
4xx with exactly the fault's status, in the negotiated format and casing, and nothing may be
recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import httpx
import pytest
from endpoint_support import ADMIN_KEY, PATH, USER_A_KEY, Serve, bearer, response_status, usage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.security.sec_support import refused_by_http_parser

from budget_guard.endpoint import EndpointSettings
from budget_guard.wire import (
    INT64_MAX,
    JSON_MEDIA_TYPES,
    JSV_MEDIA_TYPES,
    JsonDecodeError,
    JsvDecodeError,
    TextCase,
    WireFormat,
    jsv,
    loads_json,
    media_type,
    negotiate,
    text_case,
)

CAP = 512
FORM = "application/x-www-form-urlencoded"
VISIBLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
HEADER_VALUE = st.text(VISIBLE, min_size=1, max_size=40)


@dataclass
class Case:
    method: str
    expected_status: int
    headers: dict[str, str] = field(default_factory=dict)
    params: list[tuple[str, str]] = field(default_factory=list)
    raw_query: str = ""
    body: bytes = b""
    suffix: str = ""


# ----------------------------------------------------------------------------- noise


def _not_guid_like(text: str) -> bool:
    return re.search(r"[0-9a-fA-F]{8}", text) is None


def _is_valid_tokens(text: str) -> bool:
    stripped = text.strip(" \t\r\n")
    return bool(re.fullmatch(r"[+-]?[0-9]+", stripped)) and 0 <= int(stripped) <= INT64_MAX


bad_tokens = st.one_of(
    st.integers(max_value=-1).map(str),
    st.integers(min_value=INT64_MAX + 1).map(str),
    st.sampled_from(["1.5", "1e3", "true", "0x10", "[1]", "{}", "١٢"]),
    st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "" and not _is_valid_tokens(s)),
)
bad_company = st.text(min_size=1, max_size=40).filter(
    lambda s: s.strip() != "" and _not_guid_like(s)
)
noise_params = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["format", "Format", "FORMAT"]),
            st.sampled_from(["json", "jsv", "xml", "", "JSV", " json "]) | st.text(max_size=8),
        ),
        st.tuples(
            st.sampled_from(["jsconfig", "JsConfig"]),
            st.sampled_from(["TextCase:PascalCase", "tc:pc", "TextCase:CamelCase", "epcn", ""])
            | st.text(max_size=20),
        ),
        st.tuples(st.sampled_from(["tokensUsed", "TokensUsed", "tokens_used"]), bad_tokens),
        st.tuples(st.sampled_from(["companyId", "COMPANYID", "company_id"]), bad_company),
        st.tuples(st.text(max_size=10), st.text(max_size=20)),
    ),
    max_size=4,
)
raw_query = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"), max_size=40
)
accept = st.one_of(
    st.none(),
    st.sampled_from(
        ["text/jsv", "application/json", "*/*", "text/html", "application/jsv;q=0.5, text/json"]
    ),
    HEADER_VALUE,
)
extra_headers = st.dictionaries(
    st.from_regex(r"X-[A-Za-z]{1,10}", fullmatch=True), HEADER_VALUE, max_size=3
)
suffix = st.sampled_from(["", ".json", ".jsv"])
any_body = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.binary(min_size=64, max_size=CAP),
)
json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)


def _parses_to_object(body: bytes, content_type: str) -> bool:
    if not body.strip(b" \t\r\n"):
        return True  # no body at all: not a body fault
    try:
        if media_type(content_type) in JSV_MEDIA_TYPES:
            document = jsv.loads(body.decode("utf-8-sig"))
        else:
            document = loads_json(body)
    except (JsonDecodeError, JsvDecodeError, UnicodeDecodeError):
        return False
    return isinstance(document, dict)


# ----------------------------------------------------------------------------- faults


@st.composite
def unauthenticated(draw: st.DrawFn) -> Case:
    headers: dict[str, str] = {}
    for name in draw(st.sets(st.sampled_from(["Authorization", "X-Api-Key"]))):
        value = draw(
            st.one_of(HEADER_VALUE, HEADER_VALUE.map(lambda v: "Bearer " + v)).filter(
                lambda v: USER_A_KEY not in v and ADMIN_KEY not in v
            )
        )
        headers[name] = value
    method = draw(st.sampled_from(["GET", "POST"]))
    body = draw(any_body) if method == "POST" else b""
    if body:
        headers["Content-Type"] = draw(HEADER_VALUE)
    return Case(method, 401, headers, body=body)


KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"})


@st.composite
def wrong_method(draw: st.DrawFn) -> Case:
    method = draw(
        st.sampled_from(["PUT", "DELETE", "PATCH", "OPTIONS"])
        | st.from_regex(r"[A-Z]{3,10}", fullmatch=True).filter(
            lambda m: m not in ("GET", "POST", "HEAD", "CONNECT")
        )
    )
    return Case(method, 405, bearer(), body=draw(any_body))


@st.composite
def too_large(draw: st.DrawFn) -> Case:
    body = draw(st.binary(min_size=CAP + 1, max_size=CAP + 300))
    headers = bearer(**{"Content-Type": draw(st.sampled_from(["application/json", "text/jsv"]))})
    return Case("POST", 413, headers, body=body)


@st.composite
def unsupported_type(draw: st.DrawFn) -> Case:
    content_type = draw(
        HEADER_VALUE.filter(
            lambda v: media_type(v) not in (*JSON_MEDIA_TYPES, *JSV_MEDIA_TYPES, FORM, "")
        )
    )
    body = draw(any_body.filter(lambda b: b.strip(b" \t\r\n") != b""))
    return Case("POST", 415, bearer(**{"Content-Type": content_type}), body=body)


@st.composite
def unparseable_body(draw: st.DrawFn) -> Case:
    content_type = draw(
        st.sampled_from(["application/json", "text/json", "text/jsv", "application/jsv"]).flatmap(
            lambda t: st.sampled_from([t, t.upper(), t + "; charset=utf-8"])
        )
    )
    body = draw(
        st.one_of(
            any_body, json_like.map(lambda v: httpx.Request("POST", "/", json=v).content)
        ).filter(lambda b: not _parses_to_object(b, content_type))
    )
    return Case("POST", 400, bearer(**{"Content-Type": content_type}), body=body)


@st.composite
def bad_query_field(draw: st.DrawFn) -> Case:
    name, value = draw(
        st.tuples(st.sampled_from(["TokensUsed", "tokensused", "tokens_used"]), bad_tokens)
        | st.tuples(st.sampled_from(["CompanyId", "companyid"]), bad_company)
    )
    body = httpx.Request("POST", "/", json=draw(json_like)).content
    headers = bearer(**{"Content-Type": "application/json"})
    return Case("POST", 400, headers, params=[(name, value)], body=body)


@st.composite
def admin_without_company(draw: st.DrawFn) -> Case:
    tokens = draw(st.integers(min_value=0, max_value=INT64_MAX))
    method = draw(st.sampled_from(["GET", "POST"]))
    body = (
        httpx.Request("POST", "/", json={"tokensUsed": tokens}).content if method == "POST" else b""
    )
    return Case(method, 400, bearer(ADMIN_KEY, **{"Content-Type": "application/json"}), body=body)


@st.composite
def requests(draw: st.DrawFn) -> Case:
    case = draw(
        st.one_of(
            unauthenticated(),
            wrong_method(),
            too_large(),
            unsupported_type(),
            unparseable_body(),
            bad_query_field(),
            admin_without_company(),
        )
    )
    case.params = [*draw(noise_params), *case.params]
    case.raw_query = draw(raw_query)
    case.suffix = draw(suffix)
    case.headers.update(draw(extra_headers))
    chosen_accept = draw(accept)
    if chosen_accept is not None:
        case.headers["Accept"] = chosen_accept
    return case


# ----------------------------------------------------------------------------- the test


@pytest.fixture
def client(serve_endpoint: Serve) -> Iterator[httpx.Client]:
    url = serve_endpoint(settings=EndpointSettings(max_body_bytes=CAP))
    # A fresh connection per request: on a reused one every answer waits ~40 ms for a
    # delayed ACK, because tests.proxy.servers' listening socket lacks TCP_NODELAY.
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=url, timeout=10, limits=no_keepalive) as client:
        yield client
    # Not one of the refused requests recorded anything.
    assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 0


def _send(client: httpx.Client, case: Case) -> httpx.Response:
    url = httpx.URL(PATH + case.suffix)
    query = "&".join(
        part for part in (case.raw_query, httpx.QueryParams(case.params).__str__()) if part
    )
    request = client.build_request(
        case.method,
        url.copy_with(query=query.encode("ascii")),
        headers=case.headers,
        content=case.body,
    )
    return client.send(request)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=requests())
def test_every_refusal_is_a_well_formed_error_dto(client: httpx.Client, case: Case) -> None:
    response = _send(client, case)
    if case.method not in KNOWN_METHODS and refused_by_http_parser(
        response.status_code, response.headers, response.content
    ):
        return  # llhttp knows no such method: the server refused it before the app
    assert response.status_code == case.expected_status, (response.status_code, response.text)

    sent = response.request
    query = parse_qsl(sent.url.query.decode("latin-1"), keep_blank_values=True)

    def first(name: str) -> str | None:
        return next((value for key, value in query if key.lower() == name), None)

    expected_format = negotiate(
        query_format=first("format"),
        path_suffix=case.suffix or None,
        accept=sent.headers.get("accept"),
        content_type=sent.headers.get("content-type"),
    )
    expected_type = expected_format.content_type
    assert response.headers["content-type"] == expected_type
    casing = text_case(first("jsconfig"), TextCase.CAMEL)
    status = response_status(response, case="pascal" if casing is TextCase.PASCAL else "camel")
    assert status  # well formed, checked by response_status
    if expected_format is WireFormat.JSON:
        assert response.json()  # and valid JSON besides
