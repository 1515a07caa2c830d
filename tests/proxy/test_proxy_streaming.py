"""Streaming through the proxy: chunks pass as they come; a client leaving stops the upstream."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from budget_guard.proxy import UpstreamProxy
from budget_guard.proxy.demo_upstream import create_demo_upstream
from tests.proxy.conftest import CLIENT_KEY, UPSTREAM_KEY
from tests.proxy.servers import serve
from tests.proxy.upstreams import (
    SAFETY_TIMEOUT,
    BrokenStreamUpstream,
    EndlessStreamUpstream,
    HangingUpstream,
    SendObserver,
)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Stream, please."}]}


@pytest.fixture(scope="module")
def observed_slow_demo() -> Iterator[tuple[str, SendObserver]]:
    """The demo upstream pausing 0.1 s between events (about 4 s per answer), observed."""
    observer = SendObserver(create_demo_upstream(chunk_delay=0.1))
    with serve(observer) as url:
        yield url, observer


def test_the_first_chunk_arrives_before_the_upstream_sends_the_last(
    observed_slow_demo: tuple[str, SendObserver], transport: str
) -> None:
    upstream_url, observer = observed_slow_demo
    observer.last_body_sent.clear()
    with serve(UpstreamProxy(upstream_url, api_key=UPSTREAM_KEY, transport=transport)) as proxy:
        client = openai.OpenAI(base_url=f"{proxy}/v1", api_key=CLIENT_KEY, max_retries=0)
        stream = client.chat.completions.create(
            **CHAT, stream=True, stream_options={"include_usage": True}
        )
        first = next(iter(stream))
        upstream_done_at_first_chunk = observer.last_body_sent.is_set()
        rest = list(stream)
    assert first.choices[0].delta.role == "assistant"
    assert not upstream_done_at_first_chunk
    text = "".join(chunk.choices[0].delta.content or "" for chunk in rest if chunk.choices)
    assert text.startswith("Hello from the budget-guard demo upstream. You sent 1 message;")
    assert rest[-1].usage is not None
    assert rest[-1].usage.completion_tokens > 0


def test_a_client_leaving_mid_stream_closes_the_upstream_response(transport: str) -> None:
    upstream = EndlessStreamUpstream(interval=0.05)
    with (
        serve(upstream) as upstream_url,
        serve(UpstreamProxy(upstream_url, transport=transport)) as proxy,
    ):
        with httpx.stream("POST", f"{proxy}/v1/chat/completions", json=CHAT) as response:
            first = next(response.iter_raw())
        assert first.startswith(b"data: ")
        assert upstream.disconnected.wait(SAFETY_TIMEOUT)


def test_a_client_leaving_before_the_answer_closes_the_upstream_request(transport: str) -> None:
    upstream = HangingUpstream()
    with (
        serve(upstream) as upstream_url,
        serve(UpstreamProxy(upstream_url, transport=transport)) as proxy,
    ):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{proxy}/v1/chat/completions", json=CHAT, timeout=0.5)
        assert upstream.disconnected.wait(SAFETY_TIMEOUT)
    assert upstream.requests == 1


def test_an_upstream_dying_mid_stream_cuts_the_client_response_off(transport: str) -> None:
    with (
        serve(BrokenStreamUpstream()) as upstream_url,
        serve(UpstreamProxy(upstream_url, transport=transport)) as proxy,
    ):
        received = b""
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream("POST", f"{proxy}/v1/chat/completions", json=CHAT) as response,
        ):
            for chunk in response.iter_raw():
                received += chunk
    assert response.status_code == 200
    assert received == b"data: {}\n\n"  # what came through, then no clean end of response
