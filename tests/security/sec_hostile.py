"""Hypothesis strategies for hostile requests at the whole server: any route, method, query
string, headers, credentials, Content-Type and body, weighted towards the shapes that break
parsers (extreme numbers, deep nesting, invalid UTF-8, truncation) but sometimes valid, so the
fuzz also reaches the counting, the upstream and the ledger behind the parsers."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

import orjson
from hypothesis import strategies as st

from tests.security.sec_support import (
    COMPANY_A,
    COMPANY_B,
    KEY_A,
    jwt_token,
)

PROXY_PATHS = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/models",
    "/v1/files",
    "/v1/openai/deployments/x/chat/completions",
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/json",
    "text/jsv",
    "application/x-www-form-urlencoded",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "",
]
HOSTILE_NUMBERS = [
    b"1e400",
    b"-1e400",
    b"1E+999",
    b"2e-400",
    str(2**70).encode(),
    str(2**64).encode(),
    str(2**63).encode(),
    str(2**64 - 1).encode(),
    str(-(2**63) - 1).encode(),
    b"-0",
    b"0.0000000000000000000001",
    b"9" * 400,
    b"NaN",
    b"Infinity",
    b"0x10",
    b"01",
]
HOSTILE_STRINGS = [
    b'"\xff\xfe"',
    b'"\xc0\xaf"',
    b'"\xed\xa0\x80"',
    b'"\\ud800"',
    b'"\\u0000"',
    b'"' + b"\\" * 9 + b'"',
    b'"a',
    b'"\r\nSet-Cookie: x=1"',
    b'"' + "é".encode("latin-1") + b'"',
]
VISIBLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@dataclass
class HostileRequest:
    method: str
    path: str
    query: str = ""
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    body: bytes = b""


def _scalar() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(HOSTILE_NUMBERS),
        st.sampled_from(HOSTILE_STRINGS),
        st.integers(min_value=-(2**80), max_value=2**80).map(lambda n: str(n).encode()),
        st.text(max_size=20).map(orjson.dumps),
        st.sampled_from([b"true", b"false", b"null", b"{}", b"[]"]),
    )


def _json_text() -> st.SearchStrategy[bytes]:
    """JSON-looking text whose leaves are hostile literals (so not always valid JSON)."""
    return st.recursive(
        _scalar(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda items: b"[" + b",".join(items) + b"]"),
            st.lists(
                st.tuples(
                    st.sampled_from(
                        [
                            "model",
                            "messages",
                            "role",
                            "content",
                            "max_tokens",
                            "input",
                            "prompt",
                            "tools",
                            "stream",
                            "tokensUsed",
                            "companyId",
                        ]
                    )
                    | st.text(max_size=8),
                    inner,
                ),
                max_size=4,
            ).map(
                lambda pairs: b"{" + b",".join(orjson.dumps(k) + b":" + v for k, v in pairs) + b"}"
            ),
        ),
        max_leaves=12,
    )


@st.composite
def _chat_like(draw: st.DrawFn) -> bytes:
    """A nearly valid request for the metered routes, with one field swapped for a hostile
    value (or none, so some requests are served and charged)."""
    fields: dict[str, bytes] = {
        "model": orjson.dumps(draw(st.sampled_from(["gpt-4o-mini", "gpt-4o", "claude-3", ""]))),
        "messages": b'[{"role":"user","content":'
        + orjson.dumps(draw(st.text(max_size=40)))
        + b"}]",
        "input": orjson.dumps(draw(st.text(max_size=20))),
        "prompt": orjson.dumps(draw(st.text(max_size=20))),
    }
    if draw(st.booleans()):
        fields["max_tokens"] = draw(st.sampled_from([b"5", b"1", *HOSTILE_NUMBERS]))
    if draw(st.booleans()):
        fields["stream"] = draw(st.sampled_from([b"true", b"false", b'"yes"']))
        fields["stream_options"] = b'{"include_usage":true}'
    if draw(st.booleans()):
        name = draw(
            st.sampled_from([*fields, "n", "temperature", "tools", "max_completion_tokens"])
        )
        fields[name] = draw(_json_text())
    body = b"{" + b",".join(orjson.dumps(k) + b":" + v for k, v in fields.items()) + b"}"
    if draw(st.integers(0, 9)) == 0:
        body = body[: draw(st.integers(0, len(body)))]
    return body


@st.composite
def _usage_like(draw: st.DrawFn) -> bytes:
    tokens = draw(st.sampled_from([b"1", b"0", b"-1", *HOSTILE_NUMBERS]))
    company = draw(
        st.sampled_from(
            [
                b'"' + str(COMPANY_A).encode() + b'"',
                b'"' + str(COMPANY_B).encode() + b'"',
                *HOSTILE_STRINGS,
            ]
        )
    )
    form = draw(st.sampled_from(["json", "jsv", "form"]))
    if form == "json":
        return b'{"tokensUsed":' + tokens + b',"companyId":' + company + b"}"
    if form == "jsv":
        return b"{TokensUsed:" + tokens + b",CompanyId:" + company.strip(b'"') + b"}"
    return b"TokensUsed=" + tokens + b"&CompanyId=" + company.strip(b'"')


def bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        _chat_like(),
        _usage_like(),
        _json_text(),
        st.integers(min_value=500, max_value=100_000).map(lambda n: b"[" * n),
        st.integers(min_value=500, max_value=20_000).map(lambda n: b'{"a":' * n),
        st.binary(max_size=300),
        st.just(b""),
    )


def _query() -> st.SearchStrategy[str]:
    keys = st.sampled_from(
        ["CompanyId", "companyid", "TokensUsed", "format", "jsconfig", "stream", "api-version"]
    ) | st.text(VISIBLE, max_size=6)
    values = st.one_of(
        st.sampled_from([str(COMPANY_A), str(COMPANY_B), "json", "jsv", "TextCase:PascalCase"]),
        st.sampled_from([n.decode("latin-1") for n in HOSTILE_NUMBERS]),
        st.text(max_size=20),
    )
    pairs = st.lists(st.tuples(keys, values), max_size=5).map(
        lambda items: "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in items)
    )
    junk = st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"), max_size=30
    )
    return st.one_of(pairs, junk, st.tuples(pairs, junk).map("&".join))


def _credentials() -> st.SearchStrategy[list[tuple[str, bytes]]]:
    """Company A's credentials mostly, so most bodies get parsed; never an admin's, so nothing
    a fuzzed request does can be allowed to touch company B."""
    return st.sampled_from(
        [
            [("Authorization", f"Bearer {KEY_A}".encode())],
            [("Authorization", f"Bearer {KEY_A}".encode())],
            [("X-Api-Key", KEY_A.encode())],
            [("Authorization", f"Bearer {jwt_token(COMPANY_A, expires_in=86_400)}".encode())],
            [("Authorization", f"Bearer {jwt_token(COMPANY_A, expires_in=-10)}".encode())],
            [("Authorization", b"Bearer \xff\xfe")],
            [("Authorization", f"bearer  {KEY_A} extra".encode())],
            [],
        ]
    )


def _headers() -> st.SearchStrategy[list[tuple[str, bytes]]]:
    # The client refuses control characters (CR and LF among them) and surrounding blanks;
    # the raw-socket tests send those.
    header_value = st.binary(max_size=40).map(
        lambda b: bytes(c for c in b if c == 9 or (c >= 0x20 and c != 0x7F)).strip(b" \t")
    )
    optional = st.one_of(
        st.tuples(
            st.just("Accept"), st.sampled_from([b"text/jsv", b"*/*", b"text/html"]) | header_value
        ),
        st.tuples(st.just("Idempotency-Key"), header_value),
        st.tuples(
            st.just("x-budget-company-id"),
            st.sampled_from([str(COMPANY_A).encode(), str(COMPANY_B).encode()]) | header_value,
        ),
        st.tuples(st.from_regex(r"X-[A-Za-z]{1,8}", fullmatch=True), header_value),
    )
    return st.lists(optional, max_size=3)


@st.composite
def hostile_requests(draw: st.DrawFn, paths: list[str]) -> HostileRequest:
    path = draw(st.sampled_from(paths))
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH"]))
    headers = [*draw(_credentials()), *draw(_headers())]
    content_type = draw(st.sampled_from(CONTENT_TYPES) | st.text(VISIBLE, max_size=30)).strip()
    if content_type:
        headers.append(("Content-Type", content_type.encode()))
    body = draw(bodies()) if method != "GET" else b""
    return HostileRequest(method, path, draw(_query()), headers, body)
