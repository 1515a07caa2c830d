"""A streaming ASGI reverse proxy to one OpenAI-compatible upstream.

`UpstreamProxy` is the app the budget-guard middleware sits in front of. It forwards every HTTP
request to ``upstream_url`` + the incoming path + query string, and streams both ways: the request
body goes up as the client sends it and each upstream response chunk goes to the client as soon
as it arrives, so server-sent events reach the user at the upstream's pace.

Paths: ``upstream_url`` is the upstream's base *without* ``/v1`` (``https://api.openai.com``,
``http://gateway.internal/openai``); the incoming path (``/v1/chat/completions``) is appended as
is. A base that ends in ``/v1`` is refused at construction, because it would silently turn every
call into ``/v1/v1/...``. Upstreams whose OpenAI-compatible base is not ``<host>/v1`` (Gemini's
``.../v1beta/openai``, say) take ``strip_prefix="/v1"``: the incoming ``/v1`` is dropped and the
rest appended to that base, exactly as the OpenAI SDK would with it as ``base_url``.

Headers: only an allow-list of the client's request headers reaches the upstream
(``DEFAULT_FORWARDED_HEADERS``: content type, accept, user agent, ``openai-beta``,
``anthropic-version``, ``anthropic-beta``, idempotency keys, the SDKs' ``x-stainless-*``), so
a tenant can neither authenticate upstream as someone else nor choose who is billed: the
upstream key comes from configuration (``Authorization: Bearer`` or ``x-api-key``), and so do
billing-scope headers such as ``OpenAI-Organization`` and ``OpenAI-Project``
(``upstream_headers``), which no allow-list may name.

The upstream is always asked for an uncompressed body (``Accept-Encoding: identity``): the guard
reads the stream to count tokens, and a gzip stream would be opaque to it.

Transports: both speak httpx's API. ``"aiohttp"`` (httpx-aiohttp, the default) keeps its
throughput as concurrency grows, where httpx's own pool falls off; see
``benchmarks/proxy_transport.py`` for the measurement. Note that aiohttp has no write timeout:
``Timeout.write`` only applies to the ``"httpx"`` transport.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Literal, get_args
from urllib.parse import quote

import httpx
from starlette.types import Message, Receive, Scope, Send

from budget_guard.proxy.openai_errors import DOT_SEGMENT_MESSAGE, has_dot_segment, send_openai_error

__all__ = [
    "DEFAULT_FORWARDED_HEADERS",
    "DEFAULT_TIMEOUT",
    "UPSTREAM_MAY_BILL",
    "AuthStyle",
    "TransportName",
    "UpstreamProxy",
    "check_headers",
    "check_upstream_url",
]

logger = logging.getLogger("budget_guard.proxy")

TransportName = Literal["aiohttp", "httpx"]
AuthStyle = Literal["bearer", "x-api-key"]

#: LLM answers can think for minutes before the first byte, so ``read`` is long; a dead host
#: should fail fast, so ``connect`` is short. ``pool`` bounds the wait for a free connection.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=60.0, pool=30.0)

_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
DEFAULT_FORWARDED_HEADERS = (
    "content-type",
    "accept",
    "user-agent",
    "openai-beta",
    "anthropic-version",
    "anthropic-beta",
    "idempotency-key",
    "x-stainless-*",
)
"""Client request headers the upstream receives; a trailing ``*`` allows a prefix."""
# Headers that authenticate, choose who is billed, frame the body, or describe the caller's
# connection: the proxy sets its own or none, and no allow-list may hand them on.
NEVER_FORWARDED = _HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"accept-encoding",
    b"authorization",
    b"x-api-key",
    b"api-key",
    b"cookie",
    b"openai-organization",
    b"openai-project",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"x-real-ip",
}
# Cookies, Alt-Svc, Date and Server describe the upstream's origin and connection, not ours; the
# hosting server adds its own Date and Server.
_DROPPED_RESPONSE_HEADERS = _HOP_BY_HOP | {
    b"set-cookie",
    b"alt-svc",
    b"date",
    b"server",
    # The operator's account: which organisation and project answered is not the tenant's
    # business, and the shared key's rate-limit counters would let one tenant watch every
    # other tenant's traffic.
    b"openai-organization",
    b"openai-project",
    b"anthropic-organization-id",
}
_DROPPED_RESPONSE_PREFIXES = (b"x-ratelimit-", b"anthropic-ratelimit-")


# Idle pooled connections are dropped before uvicorn's default 5 s keep-alive ends, so a request
# is never written to a connection a local upstream (the demo, a model server) is just closing:
# a POST on such a connection fails instead of being retried.
_KEEPALIVE_EXPIRY = 4.0


class _ClientDisconnected(Exception):
    """The client left while its request body was still being forwarded."""


class _Exchange:
    """What one proxied request's concurrent parts (body, disconnect watcher, response) share."""

    __slots__ = ("body_done", "cancelled_for_disconnect", "client_gone", "finished")

    def __init__(self) -> None:
        self.body_done = asyncio.Event()
        self.client_gone = False
        self.finished = False
        self.cancelled_for_disconnect = False


class UpstreamProxy:
    """ASGI app that forwards HTTP requests to one OpenAI-compatible upstream.

    One pooled `httpx.AsyncClient` serves every request. The ASGI lifespan opens and closes it;
    a host app that does not pass the lifespan on (a Starlette ``Mount``) calls `startup` and
    `aclose` from its own lifespan. A request that arrives before `startup` opens the client
    itself, so a forgotten lifespan costs a clean shutdown, not an outage.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        api_key: str | None = None,
        auth_style: str = "bearer",
        transport: str = "aiohttp",
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        http_transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
        strip_prefix: str | None = None,
        forward_headers: Iterable[str] = DEFAULT_FORWARDED_HEADERS,
        upstream_headers: Mapping[str, str] | None = None,
    ) -> None:
        if auth_style not in get_args(AuthStyle):
            raise ValueError(f"auth_style must be one of {get_args(AuthStyle)}, not {auth_style!r}")
        if transport not in get_args(TransportName):
            raise ValueError(
                f"transport must be one of {get_args(TransportName)}, not {transport!r}"
            )
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        self.strip_prefix = _strip_prefix(strip_prefix)
        self.upstream_url = _upstream_base(upstream_url, stripping=self.strip_prefix is not None)
        self.auth_style = auth_style
        self.transport = transport
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_connections = max_connections
        self._timeout_extension = self.timeout.as_dict()
        self._forwarded, self._forwarded_prefixes = _allow_list(forward_headers)
        self._credentials = _credential_headers(api_key, auth_style) + _fixed_headers(
            upstream_headers or {}
        )
        self._http_transport = http_transport
        self._client: httpx.AsyncClient | None = None

    async def startup(self) -> None:
        """Open the pooled upstream client; calling it again is harmless."""
        self._open_client()

    async def aclose(self) -> None:
        """Close the pooled client and its connections; a later request would open a new one."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._proxy(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:  # websocket: the OpenAI-compatible surface proxied here is plain HTTP
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _open_client(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
                keepalive_expiry=_KEEPALIVE_EXPIRY,
            )
            if self._http_transport is not None:
                self._client = httpx.AsyncClient(
                    transport=self._http_transport, timeout=self.timeout
                )
            elif self.transport == "aiohttp":
                from httpx_aiohttp import HttpxAiohttpClient

                self._client = HttpxAiohttpClient(limits=limits, timeout=self.timeout)
            else:
                self._client = httpx.AsyncClient(limits=limits, timeout=self.timeout)
        return self._client

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        if has_dot_segment(scope["path"]):
            await send_openai_error(
                send, 400, DOT_SEGMENT_MESSAGE, type_="invalid_request_error", code="invalid_path"
            )
            return
        client = self._client or self._open_client()
        exchange = _Exchange()
        first = await receive()
        if first["type"] == "http.disconnect":
            return
        content: bytes | AsyncIterator[bytes]
        if first.get("more_body", False):
            content = _request_body(first.get("body", b""), receive, exchange)
        else:  # the whole body is already here: send it with a Content-Length, no chunking
            content = first.get("body", b"")
            exchange.body_done.set()
        request = httpx.Request(
            scope["method"],
            self._url(scope),
            headers=self._request_headers(
                scope["headers"], streamed=not isinstance(content, bytes)
            ),
            content=content,
            extensions={"timeout": self._timeout_extension},
        )
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.create_task(_cancel_on_disconnect(receive, exchange, task))
        try:
            await self._forward(client, request, send, exchange)
        except (Exception, asyncio.CancelledError):
            if not exchange.client_gone:
                raise
            # The client left: nobody is there to tell, and the upstream side is closed already.
        finally:
            watcher.cancel()
            if exchange.cancelled_for_disconnect:
                task.uncancel()

    async def _forward(
        self, client: httpx.AsyncClient, request: httpx.Request, send: Send, exchange: _Exchange
    ) -> None:
        try:
            response = await client.send(request, stream=True)
        except (httpx.TransportError, OSError) as exc:
            if exchange.client_gone:
                return
            await _send_upstream_error(send, exc, request)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": _response_headers(response.headers.raw),
                }
            )
            if response.is_stream_consumed:  # a transport (a test mock) handed over a read body
                await send(
                    {"type": "http.response.body", "body": response.content, "more_body": True}
                )
            else:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            exchange.finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (httpx.TransportError, OSError) as exc:
            if exchange.client_gone:
                return
            # Headers are gone already, so no error status is possible. Ending without the final
            # body message makes the server drop the connection, so the client sees a cut-off
            # response instead of a short one that looks complete.
            logger.warning(
                "upstream %s %s broke off mid-response: %s",
                request.method,
                request.url.path,
                type(exc).__name__,
            )
        finally:
            await response.aclose()

    def _url(self, scope: Scope) -> str:
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]  # the path as seen by this app when mounted
        strip = self.strip_prefix
        if strip is not None and (path == strip or path.startswith(strip + "/")):
            path = path[len(strip) :]
        url = self.upstream_url + quote(path, safe="/:@!$&'()*+,;=-._~")
        query = scope.get("query_string", b"")
        return f"{url}?{query.decode('latin-1')}" if query else url

    def _request_headers(
        self, headers: Iterable[tuple[bytes, bytes]], *, streamed: bool
    ) -> list[tuple[bytes, bytes]]:
        allowed, prefixes = self._forwarded, self._forwarded_prefixes
        forwarded = [
            (name, value)
            for name, value in headers
            if name in allowed or (prefixes and name.startswith(prefixes))
        ]
        if streamed:
            # Keep the client's length so the upstream gets a framed body, not a chunked one;
            # without it httpx sends Transfer-Encoding: chunked.
            forwarded += [(k, v) for k, v in headers if k == b"content-length"][:1]
        forwarded.append((b"accept-encoding", b"identity"))
        forwarded += self._credentials
        return forwarded


def check_headers(forward_headers: Iterable[str], upstream_headers: Mapping[str, str]) -> None:
    """Raise ``ValueError`` (naming the setting) for headers the proxy must set itself."""
    _allow_list(forward_headers)
    _fixed_headers(upstream_headers)


def _allow_list(names: Iterable[str]) -> tuple[frozenset[bytes], tuple[bytes, ...]]:
    exact: set[bytes] = set()
    prefixes: list[bytes] = []
    for name in names:
        lowered = name.strip().lower().encode("latin-1")
        if lowered.endswith(b"*"):
            prefixes.append(lowered[:-1])
        else:
            exact.add(lowered)
    refused = {n for n in exact if n in NEVER_FORWARDED} | {
        n for n in NEVER_FORWARDED for p in prefixes if n.startswith(p)
    }
    if refused or b"" in prefixes:
        names_ = ", ".join(sorted(n.decode() for n in refused)) or "every header"
        raise ValueError(f"forward_headers must not hand on {names_}: the proxy sets those")
    return frozenset(exact), tuple(prefixes)


def _fixed_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    fixed = []
    for name, value in headers.items():
        lowered = name.strip().lower().encode("latin-1")
        if lowered in _HOP_BY_HOP or lowered in {b"host", b"content-length", b"accept-encoding"}:
            raise ValueError(f"upstream_headers must not set {name}: the proxy frames requests")
        fixed.append((lowered, value.encode("latin-1")))
    return fixed


def _strip_prefix(prefix: str | None) -> str | None:
    if prefix is None:
        return None
    segments = prefix.split("/")[1:]
    if not prefix.startswith("/") or not all(segments) or {".", ".."} & set(segments):
        raise ValueError(f"strip_prefix must be a path such as '/v1', not {prefix!r}")
    return prefix


def check_upstream_url(upstream_url: str, *, stripping: bool = False) -> str:
    """The base the proxy appends paths to; ``ValueError`` saying what is wrong with it."""
    return _upstream_base(upstream_url, stripping=stripping)


def _upstream_base(upstream_url: str, *, stripping: bool = False) -> str:
    url = httpx.URL(upstream_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"upstream_url must be an http(s) URL, not {upstream_url!r}")
    if url.query or url.fragment:
        raise ValueError(f"upstream_url must not have a query or fragment: {upstream_url!r}")
    base = upstream_url.rstrip("/")
    if base.endswith("/v1") and not stripping:
        raise ValueError(
            f"upstream_url {upstream_url!r} ends in /v1: give the base without it "
            f"({base[: -len('/v1')]!r}); the proxy appends the incoming /v1/... path as is "
            "(or set strip_prefix='/v1')"
        )
    return base


def _credential_headers(api_key: str | None, auth_style: str) -> list[tuple[bytes, bytes]]:
    if not api_key:
        return []  # e.g. a local model server that wants no key
    if auth_style == "bearer":
        return [(b"authorization", b"Bearer " + api_key.encode("latin-1"))]
    return [(b"x-api-key", api_key.encode("latin-1"))]


def _without(
    headers: Iterable[tuple[bytes, bytes]], dropped: frozenset[bytes]
) -> list[tuple[bytes, bytes]]:
    """Copy lower-case ``headers`` minus ``dropped``, ``Proxy-*`` and what Connection lists."""
    headers = list(headers)
    listed = {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    }
    return [
        (name, value)
        for name, value in headers
        if name not in dropped and name not in listed and not name.startswith(b"proxy-")
    ]


def _response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    kept = _without(((name.lower(), value) for name, value in raw), _DROPPED_RESPONSE_HEADERS)
    return [(n, v) for n, v in kept if not n.startswith(_DROPPED_RESPONSE_PREFIXES)]


async def _request_body(
    first: bytes, receive: Receive, exchange: _Exchange
) -> AsyncIterator[bytes]:
    if first:
        yield first
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            exchange.client_gone = True
            raise _ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            break
    exchange.body_done.set()


async def _cancel_on_disconnect(receive: Receive, exchange: _Exchange, task: asyncio.Task) -> None:
    """Cancel the request's task when the client leaves, so the upstream response closes at once.

    Servers such as uvicorn drop writes to a gone client silently, so waiting to notice it on
    ``send`` would keep an upstream generation running (and billed) to its end.
    """
    await exchange.body_done.wait()  # until then, the body stream owns ``receive``
    message: Message = await receive()
    while message["type"] != "http.disconnect":
        message = await receive()
    if not exchange.finished:  # a server reports a completed response as a disconnect too
        exchange.client_gone = True
        exchange.cancelled_for_disconnect = True
        task.cancel()


def _is_timeout(exc: BaseException) -> bool:
    """Whether an upstream failure was a timeout (504) rather than a failure to connect (502).

    httpx-aiohttp maps every aiohttp connection error, a refused connection included, to
    `httpx.ConnectTimeout`, so the innermost cause decides whenever it is an OS-level error.
    """
    innermost = exc
    while innermost.__cause__ is not None:
        innermost = innermost.__cause__
    if isinstance(innermost, OSError):
        return isinstance(innermost, TimeoutError)
    return isinstance(exc, httpx.TimeoutException)


try:  # httpx-aiohttp reports a failed connect as ConnectTimeout; its cause says what it was
    from aiohttp import ClientConnectorError as _AiohttpConnectFailed
except ImportError:  # pragma: no cover - aiohttp comes with httpx-aiohttp
    _AiohttpConnectFailed = ConnectionRefusedError  # type: ignore[assignment,misc]

_CONNECT_FAILURES = (
    ConnectionRefusedError,
    socket.gaierror,
    httpx.ConnectError,
    _AiohttpConnectFailed,
)

UPSTREAM_MAY_BILL = b"x-budget-guard-upstream-may-bill"
"""On the proxy's own 502/504: the request may have reached the upstream, which bills a
generation it finished after the proxy stopped waiting. The guard charges such a request its
counted prompt (and removes the header); only a request that never got through is free."""


def _never_reached(exc: BaseException) -> bool:
    """Whether the upstream certainly never received the request: connecting failed (the
    connection was refused, the host could not be resolved). Any other failure (a read
    timeout, a dropped connection) may have come after the upstream started, and billed, its
    answer. Transports wrap the cause differently, so the whole chain is looked at."""
    seen: BaseException | None = exc
    for _ in range(16):  # a chain is a few links; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, _CONNECT_FAILURES):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _send_upstream_error(send: Send, exc: BaseException, request: httpx.Request) -> None:
    if _is_timeout(exc):
        status, message, code = 504, "The upstream AI service did not answer in time.", "timeout"
    else:
        status, message, code = 502, "The upstream AI service could not be reached.", "bad_gateway"
    headers = [] if _never_reached(exc) else [(UPSTREAM_MAY_BILL, b"1")]
    logger.warning(
        "upstream %s %s failed (%d): %s: %s",
        request.method,
        request.url.path,
        status,
        type(exc).__name__,
        exc,
    )
    await send_openai_error(
        send, status, message, type_="upstream_error", code=code, headers=headers
    )
