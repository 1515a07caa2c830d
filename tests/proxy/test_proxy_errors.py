"""An unreachable or silent upstream becomes a 502 or 504 the OpenAI SDKs understand."""

from __future__ import annotations

import httpx
import openai
import pytest

from budget_guard.proxy import UpstreamProxy
from tests.proxy.conftest import CLIENT_KEY
from tests.proxy.servers import refused_url, serve
from tests.proxy.upstreams import SAFETY_TIMEOUT, HangingUpstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello?"}]}

BAD_GATEWAY = {
    "error": {
        "message": "The upstream AI service could not be reached.",
        "type": "upstream_error",
        "param": None,
        "code": "bad_gateway",
    }
}
GATEWAY_TIMEOUT = {
    "error": {
        "message": "The upstream AI service did not answer in time.",
        "type": "upstream_error",
        "param": None,
        "code": "timeout",
    }
}


def test_a_refused_connection_is_a_502_without_internal_detail(transport: str) -> None:
    with serve(UpstreamProxy(refused_url(), transport=transport)) as proxy:
        response = httpx.post(f"{proxy}/v1/chat/completions", json=CHAT)
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json() == BAD_GATEWAY


def test_an_upstream_slower_than_the_read_timeout_is_a_504(transport: str) -> None:
    upstream = HangingUpstream()
    timeout = httpx.Timeout(5.0, read=0.3)
    with (
        serve(upstream) as upstream_url,
        serve(UpstreamProxy(upstream_url, transport=transport, timeout=timeout)) as proxy,
    ):
        response = httpx.post(f"{proxy}/v1/chat/completions", json=CHAT)
        assert upstream.disconnected.wait(SAFETY_TIMEOUT)  # and the proxy hung up on it
    assert response.status_code == 504
    assert response.json() == GATEWAY_TIMEOUT


def test_the_openai_sdk_sees_its_own_server_error(transport: str) -> None:
    with serve(UpstreamProxy(refused_url(), transport=transport)) as proxy:
        client = openai.OpenAI(base_url=f"{proxy}/v1", api_key=CLIENT_KEY, max_retries=0)
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert raised.value.status_code == 502
    assert raised.value.code == "bad_gateway"
    assert raised.value.type == "upstream_error"
