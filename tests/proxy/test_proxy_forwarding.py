"""What the proxy sends upstream and hands back: paths, bodies, headers and credentials."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from budget_guard.budget.window import ConfigError
from budget_guard.proxy import UpstreamProxy
from budget_guard.proxy.settings import ProxySettings
from tests.proxy.conftest import CLIENT_KEY, UPSTREAM_KEY
from tests.proxy.servers import serve
from tests.proxy.upstreams import EchoUpstream


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    with serve(EchoUpstream()) as url:
        yield url


def _proxied(upstream: str, transport: str, **settings: Any) -> AbstractContextManager[str]:
    return serve(UpstreamProxy(upstream, transport=transport, **settings))


def _headers(echo: dict[str, Any]) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in echo["headers"]:
        seen.setdefault(name, []).append(value)
    return seen


def test_path_and_query_are_appended_to_the_upstream_base(echo_url: str, transport: str) -> None:
    with _proxied(echo_url + "/openai/", transport) as proxy:
        response = httpx.get(f"{proxy}/v1/files/file-1/content?limit=2&after=a%20b")
    assert response.status_code == 200
    echo = response.json()
    assert echo["method"] == "GET"
    assert echo["path"] == "/openai/v1/files/file-1/content"
    assert echo["query"] == "limit=2&after=a%20b"


@pytest.mark.parametrize("base", ["/v1beta/openai", "/openai/v1"])
def test_a_stripped_prefix_maps_v1_onto_any_openai_base(
    echo_url: str, transport: str, base: str
) -> None:
    """Gemini's OpenAI base is .../v1beta/openai, Azure's v1 API .../openai/v1: the incoming
    /v1 is dropped and the rest appended, as the OpenAI SDK does with that base_url."""
    with _proxied(echo_url + base, transport, strip_prefix="/v1") as proxy:
        chat = httpx.post(f"{proxy}/v1/chat/completions?x=1", json={"model": "m"})
        models = httpx.get(f"{proxy}/v1/models")
    assert chat.json()["path"] == f"{base}/chat/completions"
    assert chat.json()["query"] == "x=1"
    assert models.json()["path"] == f"{base}/models"


def test_client_credentials_never_reach_the_upstream_and_the_configured_key_does(
    echo_url: str, transport: str
) -> None:
    with _proxied(echo_url, transport, api_key=UPSTREAM_KEY) as proxy:
        response = httpx.post(
            f"{proxy}/v1/chat/completions",
            json={"model": "m"},
            headers={
                "Authorization": f"Bearer {CLIENT_KEY}",
                "X-Api-Key": CLIENT_KEY,
                "Api-Key": CLIENT_KEY,
                "Cookie": "session=client-session",
            },
        )
    seen = _headers(response.json())
    assert seen["authorization"] == [f"Bearer {UPSTREAM_KEY}"]
    assert "x-api-key" not in seen
    assert "api-key" not in seen
    assert "cookie" not in seen
    assert CLIENT_KEY not in str(response.json())


def test_anthropic_style_sends_the_key_as_x_api_key_and_provider_headers_pass(
    echo_url: str, transport: str
) -> None:
    with _proxied(echo_url, transport, api_key=UPSTREAM_KEY, auth_style="x-api-key") as proxy:
        response = httpx.post(
            f"{proxy}/v1/messages",
            json={"model": "claude"},
            headers={
                "x-api-key": CLIENT_KEY,
                "anthropic-version": "2023-06-01",
                "anthropic-beta": "tools-2024-04-04",
            },
        )
    seen = _headers(response.json())
    assert seen["x-api-key"] == [UPSTREAM_KEY]
    assert "authorization" not in seen
    assert seen["anthropic-version"] == ["2023-06-01"]
    assert seen["anthropic-beta"] == ["tools-2024-04-04"]


def test_without_a_key_no_credentials_are_sent(echo_url: str, transport: str) -> None:
    with _proxied(echo_url, transport) as proxy:
        response = httpx.get(f"{proxy}/v1/models", headers={"Authorization": "Bearer x"})
    seen = _headers(response.json())
    assert "authorization" not in seen
    assert "x-api-key" not in seen


def test_hop_by_hop_and_forwarding_headers_are_stripped_on_the_way_up(
    echo_url: str, transport: str
) -> None:
    with _proxied(echo_url, transport) as proxy:
        response = httpx.post(
            f"{proxy}/v1/chat/completions",
            content=b'{"model": "m"}',
            headers={
                "Connection": "keep-alive, x-client-hop",
                "Keep-Alive": "timeout=30",
                "X-Client-Hop": "must not pass",
                "TE": "trailers",
                "Trailer": "x-checksum",
                "Upgrade": "h2c",
                "Proxy-Authorization": "Basic Y2xpZW50OnNlY3JldA==",
                "Proxy-Connection": "keep-alive",
                "X-Forwarded-For": "10.1.2.3",
                "Forwarded": "for=10.1.2.3",
                "Accept-Encoding": "gzip, br",
                "OpenAI-Beta": "assistants=v2",
                "OpenAI-Organization": "org-1",
                "User-Agent": "OpenAI/Python test",
                "X-Stainless-Lang": "python",
            },
        )
    seen = _headers(response.json())
    for stripped in (
        "keep-alive",
        "x-client-hop",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "x-forwarded-for",
        "forwarded",
        "openai-organization",  # the tenant must not choose who is billed
    ):
        assert stripped not in seen, stripped
    assert seen["host"] == [echo_url.removeprefix("http://")]
    assert seen["accept-encoding"] == ["identity"]  # so the guard can read what streams back
    assert seen["openai-beta"] == ["assistants=v2"]
    assert seen["user-agent"] == ["OpenAI/Python test"]
    assert seen["x-stainless-lang"] == ["python"]


def test_only_allowed_client_headers_reach_the_upstream_and_billing_is_the_operators(
    echo_url: str, transport: str
) -> None:
    settings = {
        "forward_headers": ["content-type", "x-trace-*"],
        "upstream_headers": {"OpenAI-Organization": "org-operator", "OpenAI-Project": "p-1"},
    }
    with _proxied(echo_url, transport, **settings) as proxy:
        response = httpx.post(
            f"{proxy}/v1/chat/completions",
            content=b'{"model": "m"}',
            headers={
                "Content-Type": "application/json",
                "X-Trace-Id": "t-1",
                "X-Custom": "not on the list",
                "OpenAI-Organization": "org-tenant",
                "OpenAI-Project": "p-tenant",
                "User-Agent": "not on this list either",
            },
        )
    seen = _headers(response.json())
    assert seen["openai-organization"] == ["org-operator"]
    assert seen["openai-project"] == ["p-1"]
    assert seen["x-trace-id"] == ["t-1"]
    assert seen["content-type"] == ["application/json"]
    assert "x-custom" not in seen
    assert "user-agent" not in seen or seen["user-agent"] != ["not on this list either"]


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"forward_headers": ["OpenAI-Organization"]}, "openai-organization"),
        ({"forward_headers": ["authorization"]}, "authorization"),
        ({"forward_headers": ["openai-*"]}, "openai-organization"),
        ({"forward_headers": ["*"]}, "authorization"),
        ({"upstream_headers": {"Content-Length": "1"}}, "Content-Length"),
    ],
)
def test_header_settings_that_would_hand_the_tenant_a_say_are_refused(
    table: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        ProxySettings.from_table({"upstream_url": "http://upstream", **table})


def test_hop_by_hop_and_upstream_cookies_are_stripped_on_the_way_back(
    echo_url: str, transport: str
) -> None:
    with _proxied(echo_url, transport) as proxy:
        response = httpx.get(f"{proxy}/v1/models")
    assert response.headers["x-request-id"] == "req_echo"
    assert response.headers["openai-processing-ms"] == "7"
    assert "x-upstream-hop" not in response.headers
    assert "keep-alive" not in response.headers
    assert "set-cookie" not in response.headers
    assert response.headers.get("connection", "keep-alive") == "keep-alive"


def test_a_body_with_content_length_arrives_whole_and_framed(echo_url: str, transport: str) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: uvicorn hands it to the app in many pieces
    with _proxied(echo_url, transport) as proxy:
        response = httpx.post(f"{proxy}/v1/files", content=body)
    echo = response.json()
    assert echo["body_length"] == len(body)
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    seen = _headers(echo)
    assert seen["content-length"] == [str(len(body))]
    assert "transfer-encoding" not in seen


def test_a_chunked_body_is_streamed_up_chunked(echo_url: str, transport: str) -> None:
    pieces = [b"x" * 70_000, b"y" * 3, b"z" * 200_000]

    def chunks() -> Iterator[bytes]:
        yield from pieces

    with _proxied(echo_url, transport) as proxy:
        response = httpx.post(f"{proxy}/v1/uploads/part", content=chunks())
    echo = response.json()
    whole = b"".join(pieces)
    assert echo["body_length"] == len(whole)
    assert echo["body_sha256"] == hashlib.sha256(whole).hexdigest()
    assert _headers(echo)["transfer-encoding"] == ["chunked"]


def test_upstream_status_and_error_body_pass_through(demo_proxy_url: str) -> None:
    response = httpx.post(f"{demo_proxy_url}/v1/nothing-here", json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"


@pytest.mark.parametrize(
    ("setting", "value", "complaint"),
    [
        ("upstream_url", "https://api.openai.com/v1", "ends in /v1"),
        ("upstream_url", "https://api.openai.com/v1/", "ends in /v1"),
        ("upstream_url", "api.openai.com", "http(s) URL"),
        ("upstream_url", "https://api.openai.com?x=1", "query"),
        ("auth_style", "basic", "auth_style"),
        ("transport", "curl", "transport"),
        ("max_connections", 0, "max_connections"),
        ("strip_prefix", "v1", "strip_prefix"),
        ("strip_prefix", "/v1/", "strip_prefix"),
        ("strip_prefix", "/../v1", "strip_prefix"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(
    setting: str, value: object, complaint: str
) -> None:
    settings: dict[str, object] = {"upstream_url": "https://api.openai.com", setting: value}
    with pytest.raises(ValueError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        UpstreamProxy(**settings)  # type: ignore[arg-type]
