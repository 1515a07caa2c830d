"""The assembled guarded proxy the security tests attack, its credentials, and the checks every
answer must pass.

One configuration (two user companies, an admin, a JWT issuer, an upstream key) is served by
``build_app`` exactly as ``budget-guard serve`` assembles it, in front of the demo upstream, so
every test attacks the whole server over real loopback sockets.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from budget_guard.app import build_app
from budget_guard.config import settings_from_mapping
from budget_guard.proxy.demo_upstream import create_demo_upstream
from budget_guard.wire import jsv
from tests.proxy.servers import serve

COMPANY_A = uuid.UUID("5c0ffee0-aaaa-4aaa-8aaa-00000000000a")
COMPANY_B = uuid.UUID("5c0ffee0-bbbb-4bbb-8bbb-00000000000b")
COMPANY_OPS = uuid.UUID("5c0ffee0-0000-4000-8000-0000000000ad")
KEY_A = "bg-sec-user-a-Q3vJ9xT2mL8pW4"
KEY_B = "bg-sec-user-b-Z7hK1nR5sD0fY6"
ADMIN_KEY = "bg-sec-admin-H2gU8cV4bN9eX3"
JWT_SECRET = "sec-jwt-secret-4f9b2c7e1a6d8035bb1e2f7c9d0a4e6f-7d3a9c1e5b2f8046aa3c7e9d1b5f2a68"
OTHER_SECRET = "not-our-secret-77e0c4b9a2d16f3e58c7a9b0d1e2f3a4-c3e1a7b9d5f20486be2d4f6a8c0e1b39"
UPSTREAM_KEY = "sk-upstream-sec-W8q2Lr5Tz1Vb7Nc4"

LIMIT_A = 5_000_000
LIMIT_B = 7_777_777
"""Distinctive numbers: company B's limit and usage must never show up in an answer to A."""
USAGE_B = 3_141_592

ENDPOINT = "/assistant/ai-chat/usage"
ENDPOINT_PATHS = [
    ENDPOINT,
    ENDPOINT + ".json",
    ENDPOINT + ".jsv",
    "/api/RecordAiChatUsage",
    "/json/reply/RecordAiChatUsage",
    "/jsv/reply/RecordAiChatUsage",
]
CHAT = "/v1/chat/completions"
GUARD_BODY_CAP = 1024 * 1024
ENDPOINT_BODY_CAP = 4096
BODY_TIMEOUT = 1.5
"""Seconds a request body may take to arrive in these tests (the default is far longer)."""


def jwt_token(
    company: uuid.UUID | str,
    *,
    role: str = "user",
    expires_in: float = 3600,
    secret: str = JWT_SECRET,
    algorithm: str = "HS256",
    sub: str = "sec-tester",
) -> str:
    claims = {
        "sub": sub,
        "company_id": str(company),
        "role": role,
        "exp": int(time.time() + expires_in),
    }
    if algorithm == "none":
        return jwt.encode(claims, None, algorithm="none")
    return jwt.encode(claims, secret, algorithm=algorithm)


def config(**overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The TOML-shaped configuration; ``overrides`` replace keys of a table."""
    data: dict[str, Any] = {
        "budget": {
            "window_days": 30,
            "default_token_limit": 1_000_000,
            "limits": {str(COMPANY_A): LIMIT_A, str(COMPANY_B): LIMIT_B},
        },
        "store": {"url": "memory://"},
        "auth": {
            "api_keys": [
                {"key": KEY_A, "company_id": str(COMPANY_A), "role": "user", "name": "user-a"},
                {"key": KEY_B, "company_id": str(COMPANY_B), "role": "user", "name": "user-b"},
                {"key": ADMIN_KEY, "company_id": str(COMPANY_OPS), "role": "admin", "name": "ops"},
            ],
            "jwt": {"secret": JWT_SECRET, "algorithms": ["HS256"]},
        },
        "proxy": {"upstream_api_key": UPSTREAM_KEY, "transport": "httpx"},
        "guard": {"max_body_bytes": GUARD_BODY_CAP, "body_timeout_seconds": BODY_TIMEOUT},
        "endpoint": {"max_body_bytes": ENDPOINT_BODY_CAP, "body_timeout_seconds": BODY_TIMEOUT},
    }
    for table, values in overrides.items():
        data[table] = {**data.get(table, {}), **values}
    return data


class RecordingUpstream:
    """The demo upstream, noting the credentials each request reached it with."""

    def __init__(self) -> None:
        self.app = create_demo_upstream()
        self.credentials: list[str] = []
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
            for name, value in scope["headers"]:
                if name in (b"authorization", b"x-api-key", b"api-key", b"cookie"):
                    self.credentials.append(value.decode("latin-1"))
        await self.app(scope, receive, send)


@dataclass
class Target:
    url: str
    upstream: RecordingUpstream
    port: int = field(init=False)

    def __post_init__(self) -> None:
        self.port = httpx.URL(self.url).port or 80


@contextmanager
def guarded_server(**overrides: Mapping[str, Any]) -> Iterator[Target]:
    """The whole guarded proxy (``build_app``) on a loopback port, the demo upstream behind it.
    Company B starts with :data:`USAGE_B` tokens recorded."""
    upstream = RecordingUpstream()
    with serve(upstream) as upstream_url:
        app: ASGIApp = build_app(
            settings_from_mapping(config(**overrides)), upstream_url=upstream_url
        )
        with serve(app) as url:
            response = httpx.post(
                url + ENDPOINT,
                json={"companyId": str(COMPANY_B), "tokensUsed": USAGE_B},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert response.status_code == 200, response.text
            yield Target(url, upstream)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --------------------------------------------------------------------------- answer shapes


def is_proxy_path(path: str) -> bool:
    return path.startswith("/v1/")


def assert_openai_error(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {message, type, param, code}}`` as JSON."""
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body)
    document = orjson.loads(body)
    assert isinstance(document, dict) and list(document) == ["error"], (status, body)
    error = document["error"]
    assert set(error) == {"message", "type", "param", "code"}, (status, body)
    assert isinstance(error["message"], str) and error["message"], (status, body)
    assert isinstance(error["type"], str) and error["type"], (status, body)
    return error


def assert_response_status(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """ServiceStack's error DTO: ``{"responseStatus": {errorCode, message, ...}}`` in JSON or
    JSV, either casing, and nothing else."""
    content_type = headers.get("content-type", "")
    if content_type.startswith("text/jsv"):
        document = jsv.loads(body.decode("utf-8"))
    else:
        assert content_type.startswith("application/json"), (status, headers, body)
        document = orjson.loads(body)
    assert isinstance(document, dict) and len(document) == 1, (status, body)
    ((name, response_status),) = document.items()
    assert name in ("responseStatus", "ResponseStatus"), (status, body)
    code = response_status.get("errorCode", response_status.get("ErrorCode"))
    assert isinstance(code, str) and code, (status, body)
    return dict(response_status)


PARSER_REFUSAL = b"Invalid HTTP request received."
"""uvicorn's answer when its HTTP parser (httptools, llhttp) rejects a request that is not
valid HTTP (a control byte in a header, an unknown method): the app never sees it."""


def refused_by_http_parser(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    return status == 400 and body == PARSER_REFUSAL and headers.get("connection") == "close"


def assert_refusal(path: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """A proper 4xx in the error shape of the path it came from, or the server's own bare 400
    for a request that is not valid HTTP (nothing reached the app, so nothing was charged)."""
    assert 400 <= status < 500, (path, status, body[:300])
    if refused_by_http_parser(status, headers, body):
        return
    if is_proxy_path(path):
        assert_openai_error(status, headers, body)
    else:
        assert_response_status(status, headers, body)


# --------------------------------------------------------------------------- raw sockets


@dataclass
class RawAnswer:
    status: int | None
    """None: the server closed the connection without answering."""
    headers: dict[str, str]
    body: bytes
    closed: bool
    """The server closed the connection after (or instead of) answering."""


def raw_exchange(
    port: int,
    head: bytes,
    body_parts: list[bytes] | tuple[bytes, ...] = (),
    *,
    pause: float = 0.0,
    timeout: float = 10.0,
) -> RawAnswer:
    """Write ``head`` (request line and headers, as given) and the body parts, ``pause``
    seconds apart, then read until the server closes or ``timeout`` passes. Nothing is
    normalised: this is how path tricks and malformed headers reach the server unchanged."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(head)
            for part in body_parts:
                if pause:
                    time.sleep(pause)
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early; read what it said
        return read_answer(sock, timeout=timeout)


def read_answer(sock: socket.socket, *, timeout: float) -> RawAnswer:
    """One HTTP/1.1 response off ``sock`` (Content-Length framed, as all of ours are)."""
    deadline = time.monotonic() + timeout
    data = b""
    closed = False

    def more() -> bool:
        nonlocal data, closed
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            chunk = b""
        if not chunk:
            closed = True
            return False
        data += chunk
        return True

    while b"\r\n\r\n" not in data:
        if not more():
            if not data:
                return RawAnswer(None, {}, b"", True)
            break
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    data = rest
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(data) < length and more():
            pass
    else:  # no framing (the HTTP server's own refusals): the body runs to the close
        while more():
            pass
        length = len(data)
    body = data[:length]
    if not closed and headers.get("connection", "").lower() == "close":
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            closed = sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            closed = True
    return RawAnswer(status, headers, body, closed)


def request_head(
    method: str,
    target: str,
    port: int,
    headers: Mapping[str, str] | list[tuple[str, str]] = (),
    *,
    body_length: int | None = None,
) -> bytes:
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in items]
    if body_length is not None:
        lines.append(f"Content-Length: {body_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def trickle_exchange(
    port: int, head: bytes, body: bytes, *, interval: float, timeout: float
) -> tuple[RawAnswer, int]:
    """Send ``head``, then ``body`` one byte every ``interval`` seconds from another thread
    while this one waits for the answer; the sender stops once the server answers or closes.
    Returns the answer and how many body bytes were sent."""
    sent = 0
    stop = threading.Event()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)

        def drip() -> None:
            nonlocal sent
            for byte in body:
                if stop.wait(interval):
                    return
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return
                sent += 1

        sender = threading.Thread(target=drip, daemon=True)
        sender.start()
        try:
            answer = read_answer(sock, timeout=timeout)
        finally:
            stop.set()
            sender.join(interval + 5)
    return answer, sent


def tokens_used(url: str, company: uuid.UUID) -> int:
    """A company's usage, read by the admin."""
    response = httpx.get(
        url + ENDPOINT, params={"CompanyId": str(company)}, headers=bearer(ADMIN_KEY)
    )
    assert response.status_code == 200, response.text
    return int(response.json()["tokensUsed"])


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.NOTSET)
        self.lines = lines
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        # Everything a log sink could be given: the message, the raw arguments and extra
        # fields, and any traceback.
        text = [record.getMessage(), repr(vars(record))]
        if record.exc_info:
            text.append(self._formatter.formatException(record.exc_info))
        self.lines.append("\n".join(text))


_CAPTURED_LOGGERS = (
    "",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "budget_guard",
    "httpx",
    "httpcore",
)


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every log record of this process at DEBUG, ours and uvicorn's (whose loggers do not
    propagate), while the block runs; levels and handlers are restored afterwards."""
    lines: list[str] = []
    handler = _Collect(lines)
    saved: list[tuple[logging.Logger, int]] = []
    for name in _CAPTURED_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        if name in ("", "uvicorn", "uvicorn.access"):
            logger.addHandler(handler)
    try:
        yield lines
    finally:
        for logger, level in saved:
            logger.setLevel(level)
            logger.removeHandler(handler)
