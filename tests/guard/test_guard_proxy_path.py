"""The guard on the proxy path, driven by the official OpenAI SDK through real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping

import httpx
import openai
import pytest

from budget_guard.auth import CallableAuthenticator, Identity
from budget_guard.counting import TokenCounter
from budget_guard.counting.encoding_lookup import count_text, encoding_for_model
from tests.proxy.servers import serve
from tests.proxy.upstreams import LingeringStreamUpstream, ReasoningStreamUpstream

from .conftest import ADMIN_KEY, COMPANY_A, COMPANY_B, KEY_A, KEY_B, guarded_proxy

CHAT = [{"role": "user", "content": "How many tokens is this?"}]


def client(url: str, key: str = KEY_A, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, **kwargs)


async def used(ledger, company=COMPANY_A) -> int:  # type: ignore[no-untyped-def]
    return (await ledger.snapshot(company)).tokens_used


async def test_a_chat_completion_records_the_upstream_usage(demo_upstream_url: str) -> None:
    with guarded_proxy(demo_upstream_url) as g:
        reply = await asyncio.to_thread(
            client(g.url).chat.completions.create, model="gpt-4o-mini", messages=CHAT
        )
        assert reply.usage is not None
        assert await used(g.ledger) == reply.usage.total_tokens
        assert await used(g.ledger, COMPANY_B) == 0


async def test_a_stream_with_usage_records_the_final_usage_chunk(demo_upstream_url: str) -> None:
    with guarded_proxy(demo_upstream_url) as g:

        def run() -> tuple[str, int]:
            stream = client(g.url).chat.completions.create(
                model="gpt-4o-mini",
                messages=CHAT,
                stream=True,
                stream_options={"include_usage": True},
            )
            text, total = "", 0
            for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                if chunk.usage:
                    total = chunk.usage.total_tokens
            return text, total

        text, total = await asyncio.to_thread(run)
        assert text and total > 0
        assert await used(g.ledger) == total


async def test_a_stream_without_usage_is_counted_with_tiktoken(demo_upstream_url: str) -> None:
    with guarded_proxy(demo_upstream_url) as g:

        def run() -> str:
            stream = client(g.url).chat.completions.create(
                model="gpt-4o-mini", messages=CHAT, stream=True
            )
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        text = await asyncio.to_thread(run)
        counter = TokenCounter()
        body = json.dumps({"model": "gpt-4o-mini", "messages": CHAT, "stream": True}).encode()
        request = counter.count_request("/v1/chat/completions", body)
        expected = request.input_tokens + count_text(encoding_for_model("gpt-4o-mini"), text)
        assert await used(g.ledger) == expected


async def test_a_stream_is_recorded_by_the_time_the_sdk_has_its_answer() -> None:
    """The SDK stops at [DONE]; the upstream here keeps the response open for seconds after
    it. Usage must already be in the ledger when the SDK returns, not when the body ends."""
    text = "Counted at the terminal event."
    with serve(LingeringStreamUpstream(text, linger=8.0)) as upstream, guarded_proxy(upstream) as g:

        def run() -> str:
            stream = client(g.url).chat.completions.create(
                model="gpt-4o-mini", messages=CHAT, stream=True
            )
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        started = time.monotonic()
        assert await asyncio.to_thread(run) == text
        assert time.monotonic() - started < 4.0  # the SDK did not wait for the lingering end
        body = json.dumps({"model": "gpt-4o-mini", "messages": CHAT, "stream": True}).encode()
        request = TokenCounter().count_request("/v1/chat/completions", body)
        expected = request.input_tokens + count_text(encoding_for_model("gpt-4o-mini"), text)
        assert await used(g.ledger) == expected


async def test_responses_and_embeddings_are_recorded(demo_upstream_url: str) -> None:
    with guarded_proxy(demo_upstream_url) as g:
        c = client(g.url)
        response = await asyncio.to_thread(
            c.responses.create, model="gpt-4o-mini", input="Say hello"
        )
        embedding = await asyncio.to_thread(
            c.embeddings.create, model="text-embedding-3-small", input=["a", "b c"]
        )
        assert response.usage is not None and embedding.usage is not None
        expected = response.usage.total_tokens + embedding.usage.total_tokens
        assert await used(g.ledger) == expected


async def test_the_request_after_the_budget_is_spent_is_refused(demo_upstream_url: str) -> None:
    with guarded_proxy(demo_upstream_url, limit=40) as g:
        c = client(g.url)
        await asyncio.to_thread(c.chat.completions.create, model="gpt-4o-mini", messages=CHAT)
        spent = await used(g.ledger)
        assert spent >= 40, "the demo reply should spend the whole small budget"
        with pytest.raises(openai.RateLimitError) as caught:
            await asyncio.to_thread(c.chat.completions.create, model="gpt-4o-mini", messages=CHAT)
        error = caught.value
        assert error.code == "token_budget_exceeded"
        assert error.body is not None and error.body["type"] == "insufficient_quota"  # type: ignore[index]
        headers = error.response.headers
        assert int(headers["retry-after"]) > 29 * 86_400
        assert headers["x-should-retry"] == "false"
        assert headers["x-budget-token-limit"] == "40"
        assert headers["x-budget-tokens-used"] == str(spent)
        assert headers["x-budget-tokens-remaining"] == "0"
        assert headers["x-budget-window-days"] == "30"
        assert await used(g.ledger) == spent, "a refused request records nothing"


async def test_budget_headers_are_on_every_guarded_response(demo_upstream_url: str) -> None:
    with guarded_proxy(demo_upstream_url, limit=10_000) as g:
        async with httpx.AsyncClient(base_url=g.url) as http:
            auth = {"Authorization": f"Bearer {KEY_A}"}
            first = await http.get("/v1/models", headers=auth)
            assert first.status_code == 200
            assert first.headers["x-budget-tokens-used"] == "0"
            assert first.headers["x-budget-token-limit"] == "10000"
            await http.post(
                "/v1/chat/completions", headers=auth, json={"model": "m", "messages": CHAT}
            )
            second = await http.get("/v1/models", headers=auth)
            assert int(second.headers["x-budget-tokens-used"]) == await used(g.ledger) > 0


async def test_no_credentials_is_401_in_openai_shape(demo_upstream_url: str) -> None:
    with guarded_proxy(demo_upstream_url) as g:
        with pytest.raises(openai.AuthenticationError) as caught:
            await asyncio.to_thread(
                client(g.url, key="wrong").chat.completions.create,
                model="gpt-4o-mini",
                messages=CHAT,
            )
        assert caught.value.code == "invalid_api_key"
        assert "wrong" not in caught.value.response.text


async def test_an_admin_charges_the_company_it_names(demo_upstream_url: str) -> None:
    with guarded_proxy(demo_upstream_url) as g:
        async with httpx.AsyncClient(base_url=g.url) as http:
            body = {"model": "m", "messages": CHAT}
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            missing = await http.post("/v1/chat/completions", headers=admin, json=body)
            assert missing.status_code == 400
            assert missing.json()["error"]["param"] == "x-budget-company-id"
            named = {**admin, "x-budget-company-id": str(COMPANY_B)}
            ok = await http.post("/v1/chat/completions", headers=named, json=body)
            assert ok.status_code == 200
            assert await used(g.ledger, COMPANY_B) == ok.json()["usage"]["total_tokens"]
            user = {"Authorization": f"Bearer {KEY_A}", "x-budget-company-id": str(COMPANY_B)}
            forbidden = await http.post("/v1/chat/completions", headers=user, json=body)
            assert forbidden.status_code == 403
            assert forbidden.json()["error"]["code"] == "forbidden"
            assert str(await used(g.ledger, COMPANY_B)) not in forbidden.text


async def test_bad_bodies_are_4xx_naming_the_field(demo_upstream_url: str) -> None:
    settings_cap = 1024
    from budget_guard.guard import GuardSettings

    with guarded_proxy(demo_upstream_url, settings=GuardSettings(max_body_bytes=settings_cap)) as g:
        async with httpx.AsyncClient(base_url=g.url) as http:
            auth = {"Authorization": f"Bearer {KEY_B}", "Content-Type": "application/json"}
            broken = await http.post("/v1/chat/completions", headers=auth, content=b"{nope")
            assert broken.status_code == 400
            assert broken.json()["error"]["type"] == "invalid_request_error"
            wrong = await http.post(
                "/v1/chat/completions", headers=auth, json={"model": "m", "messages": "hi"}
            )
            assert wrong.status_code == 400
            assert wrong.json()["error"]["param"].startswith("messages")
            big = await http.post(
                "/v1/chat/completions", headers=auth, content=b"x" * (settings_cap + 1)
            )
            assert big.status_code == 413

            async def chunks():  # type: ignore[no-untyped-def]
                for _ in range(10):
                    yield b"y" * 200

            try:
                chunked = await http.post("/v1/chat/completions", headers=auth, content=chunks())
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
                pass  # the guard answered 413 and closed while the client was still sending
            else:
                assert chunked.status_code == 413
        assert await used(g.ledger, COMPANY_B) == 0


async def test_streaming_is_not_buffered(slow_upstream_url: str) -> None:
    with guarded_proxy(slow_upstream_url) as g:
        async with httpx.AsyncClient(base_url=g.url, timeout=30) as http:
            started = time.monotonic()
            arrivals: list[float] = []
            async with http.stream(
                "POST",
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {KEY_A}"},
                json={"model": "gpt-4o-mini", "messages": CHAT, "stream": True},
            ) as response:
                async for _ in response.aiter_lines():
                    arrivals.append(time.monotonic() - started)
        # The upstream waits 0.2 s between events: the first one must arrive long before the
        # last one is even sent. (An ordering fact, not a speed threshold.)
        assert len(arrivals) > 3
        assert arrivals[0] < arrivals[-1] - 0.4


async def test_a_client_that_leaves_mid_stream_pays_for_the_whole_stream(
    slow_upstream_url: str,
) -> None:
    """The upstream bills the whole generation whether or not the client read it, so the
    guard reads the stream to its end and charges what a client that stayed would pay."""
    body = {"model": "gpt-4o-mini", "messages": CHAT, "stream": True}
    with guarded_proxy(slow_upstream_url) as g:
        async with httpx.AsyncClient(base_url=g.url, timeout=30) as http:
            stayed = await http.post(
                "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY_B}"}, json=body
            )
            assert stayed.status_code == 200
            whole = await used(g.ledger, COMPANY_B)
            async with http.stream(
                "POST",
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {KEY_A}"},
                json=body,
            ) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        break  # leave after the first event
        deadline = time.monotonic() + 15
        while await used(g.ledger) < whole and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert whole > 0
        assert await used(g.ledger) == whole


async def test_unguarded_paths_pass_untouched(demo_upstream_url: str) -> None:
    with guarded_proxy(demo_upstream_url) as g:
        async with httpx.AsyncClient(base_url=g.url) as http:
            response = await http.get("/not-guarded")
            assert response.status_code == 404
            assert "x-budget-token-limit" not in response.headers


async def test_a_failing_auth_hook_is_an_openai_shaped_500_and_nothing_goes_upstream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A host's session hook raising is the host's outage: a 500, said in OpenAI's error
    shape, with nothing forwarded, and one log line with no stack trace and no secret."""

    async def broken(headers: Mapping[str, str]) -> Identity | None:
        raise RuntimeError(f"session store down while reading {headers.get('authorization')}")

    upstream = ReasoningStreamUpstream("never")
    with (
        serve(upstream) as url,
        guarded_proxy(url, auth=CallableAuthenticator(broken)) as g,
        caplog.at_level(logging.DEBUG),
    ):
        async with httpx.AsyncClient(base_url=g.url) as http:
            answer = await http.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {KEY_A}"},
                json={"model": "gpt-4o-mini", "messages": CHAT},
            )
    assert answer.status_code == 500
    assert answer.json()["error"]["type"] == "server_error"
    assert KEY_A not in answer.text and "RuntimeError" not in answer.text
    assert upstream.bodies == []
    assert "RuntimeError at" in caplog.text and "in broken" in caplog.text
    assert KEY_A not in caplog.text and "Traceback" not in caplog.text
