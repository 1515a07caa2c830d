"""The proxy against a respx-mocked upstream: exact control of what the upstream answers.

respx's default mocker patches httpcore, which the aiohttp transport never touches, so it does
not see that transport's requests (they go to the network). ``respx.mock(using="httpx")``
patches httpx's client instead and intercepts both transports; the test client's own requests to
the proxy on 127.0.0.1 pass through. A respx router can also be injected as ``http_transport``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx

from budget_guard.proxy import UpstreamProxy
from tests.proxy.conftest import CLIENT_KEY, UPSTREAM_KEY
from tests.proxy.servers import serve

UPSTREAM = "http://llm.upstream.test"
COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "choices": []}


@pytest.fixture
def upstream_mock() -> Iterator[respx.MockRouter]:
    with respx.mock(using="httpx", assert_all_called=False) as router:
        router.route(host="127.0.0.1").pass_through()
        yield router


def test_respx_intercepts_either_transport_and_sees_what_the_proxy_sends(
    upstream_mock: respx.MockRouter, transport: str
) -> None:
    route = upstream_mock.post(f"{UPSTREAM}/v1/chat/completions").respond(200, json=COMPLETION)
    with serve(UpstreamProxy(UPSTREAM, api_key=UPSTREAM_KEY, transport=transport)) as proxy:
        response = httpx.post(
            f"{proxy}/v1/chat/completions?trace=1",
            content=b'{"model": "gpt-4o-mini"}',
            headers={"Authorization": f"Bearer {CLIENT_KEY}", "OpenAI-Beta": "x"},
        )
    assert response.status_code == 200
    assert response.json() == COMPLETION
    sent = route.calls.last.request
    assert sent.url == f"{UPSTREAM}/v1/chat/completions?trace=1"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.headers["openai-beta"] == "x"
    assert sent.content == b'{"model": "gpt-4o-mini"}'


def test_upstream_hop_by_hop_headers_do_not_reach_the_client(
    upstream_mock: respx.MockRouter, transport: str
) -> None:
    upstream_mock.get(f"{UPSTREAM}/v1/models").respond(
        200,
        json={"object": "list", "data": []},
        headers={
            "Connection": "keep-alive, X-Upstream-Hop",
            "X-Upstream-Hop": "1",
            "Keep-Alive": "timeout=90",
            "Proxy-Authenticate": "Basic",
            "Upgrade": "h2",
            "Trailer": "x-checksum",
            "Alt-Svc": 'h3=":443"',
            "Set-Cookie": "__cf_bm=abc; Domain=upstream.test",
            "X-Request-Id": "req_123",
            "X-Ratelimit-Remaining-Tokens": "9000",
        },
    )
    with serve(UpstreamProxy(UPSTREAM, transport=transport)) as proxy:
        response = httpx.get(f"{proxy}/v1/models")
    assert response.json() == {"object": "list", "data": []}
    for stripped in (
        "x-upstream-hop",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
        "trailer",
        "alt-svc",
        "set-cookie",
        "x-ratelimit-remaining-tokens",  # the shared key's counters: other tenants' traffic
    ):
        assert stripped not in response.headers, stripped
    assert response.headers["x-request-id"] == "req_123"


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (httpx.ConnectError("connection refused"), 502),
        (httpx.RemoteProtocolError("server hung up"), 502),
        (httpx.ConnectTimeout("connect timed out"), 504),
        (httpx.ReadTimeout("read timed out"), 504),
        (httpx.PoolTimeout("no free connection"), 504),
    ],
)
def test_transport_failures_map_to_gateway_errors_without_their_text(
    upstream_mock: respx.MockRouter, transport: str, failure: Exception, status: int
) -> None:
    upstream_mock.post(f"{UPSTREAM}/v1/embeddings").mock(side_effect=failure)
    with serve(UpstreamProxy(UPSTREAM, transport=transport)) as proxy:
        response = httpx.post(f"{proxy}/v1/embeddings", json={"input": "x"})
    assert response.status_code == status
    assert str(failure) not in response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_an_injected_transport_replaces_the_network() -> None:
    router = respx.Router()
    route = router.post(f"{UPSTREAM}/v1/responses").respond(201, json={"id": "resp_1"})
    proxy = UpstreamProxy(
        UPSTREAM, api_key=UPSTREAM_KEY, http_transport=httpx.MockTransport(router.async_handler)
    )
    with serve(proxy) as url:
        response = httpx.post(f"{url}/v1/responses", json={"input": "hi"})
    assert response.status_code == 201
    assert response.json() == {"id": "resp_1"}
    assert route.calls.last.request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
