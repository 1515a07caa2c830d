"""/metrics after real traffic through the guarded app, served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from obs_support import (
    CHAT,
    COMPANY_A,
    COMPANY_B,
    KEY_A,
    KEY_B,
    PAGE,
    bearer,
    guarded_app,
    sample,
    scrape,
)
from tests.proxy.servers import serve

from budget_guard.budget.ledger import Ledger
from budget_guard.budget.policy import BudgetPolicy
from budget_guard.budget.window import Window
from budget_guard.stores import MemoryStore


def memory_ledger() -> Ledger:
    window = Window(30)
    return Ledger(
        MemoryStore(window),
        BudgetPolicy(window, default_token_limit=1_000_000, limits={COMPANY_B: 0}),
    )


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Usage is written as the response ends; wait for it rather than race it."""
    deadline = time.monotonic() + 10
    while not await check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.02)


async def traffic(url: str) -> tuple[int, httpx.Response]:
    """Two admitted requests (upstream usage, then a stream the guard counts), one without a
    key, one from a company whose limit is 0. Returns the upstream-reported total."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        reply = await client.post("/v1/chat/completions", json=CHAT, headers=bearer())
        assert reply.status_code == 200
        upstream_total = reply.json()["usage"]["total_tokens"]
        streamed = await client.post(
            "/v1/chat/completions", json={**CHAT, "stream": True}, headers=bearer()
        )
        assert streamed.status_code == 200 and "data:" in streamed.text
        assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 401
        refused = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_B))
        assert refused.status_code == 429
        return upstream_total, refused


# The stream is counted with tiktoken only when the guard does not ask for its usage.
COUNTING_STREAMS = {"request_stream_usage": False}


async def test_metrics_count_what_the_guard_did(upstream_url: str) -> None:
    ledger = memory_ledger()
    with serve(guarded_app(upstream_url, ledger=ledger, guard=COUNTING_STREAMS)) as url:
        upstream_total, _ = await traffic(url)

        async def both_recorded() -> bool:
            async with httpx.AsyncClient(base_url=url) as client:
                text = (await client.get("/metrics")).text
            return (
                sample(
                    scrape(text), "budget_guard_store_operation_seconds_count", operation="record"
                )
                == 2
            )

        await eventually(both_recorded, "two recordings")
        async with httpx.AsyncClient(base_url=url) as client:
            reply = await client.get("/metrics")
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain")
        samples = scrape(reply.text)

    used = (await ledger.snapshot(COMPANY_A)).tokens_used
    counted = used - upstream_total
    assert counted > 0
    assert (
        sample(samples, "budget_guard_tokens_recorded_total", source="upstream") == upstream_total
    )
    assert sample(samples, "budget_guard_tokens_recorded_total", source="counted") == counted
    assert sample(samples, "budget_guard_tokens_recorded_total", source="explicit") == 0
    assert sample(samples, "budget_guard_requests_admitted_total") == 2
    assert sample(samples, "budget_guard_requests_rejected_total", reason="budget") == 1
    assert sample(samples, "budget_guard_requests_rejected_total", reason="unauthenticated") == 1
    assert sample(samples, "budget_guard_requests_rejected_total", reason="forbidden") == 0
    assert sample(samples, "budget_guard_upstream_response_seconds_count", status_class="2xx") == 2
    # Admission reads the store for the two admitted requests and the refused one.
    assert sample(samples, "budget_guard_store_operation_seconds_count", operation="read") >= 3
    assert (
        sample(
            samples, "budget_guard_store_errors_total", operation="read", error="StoreUnavailable"
        )
        == 0
    )
    assert sample(samples, "budget_guard_journal_entries") == 0
    assert sample(samples, "budget_guard_tokens_journaled_total") == 0
    # Company ids stay out of the labels unless the operator turns them on.
    assert str(COMPANY_A) not in reply.text and str(COMPANY_B) not in reply.text


async def test_company_labels_when_turned_on(upstream_url: str) -> None:
    app = guarded_app(
        upstream_url,
        ledger=memory_ledger(),
        observability={"company_labels": True},
        guard=COUNTING_STREAMS,
    )
    with serve(app) as url:
        upstream_total, _ = await traffic(url)

        async def recorded() -> bool:
            async with httpx.AsyncClient(base_url=url) as client:
                samples = scrape((await client.get("/metrics")).text)
            return (
                sample(
                    samples,
                    "budget_guard_tokens_recorded_total",
                    source="upstream",
                    company=str(COMPANY_A),
                )
                == upstream_total
            )

        await eventually(recorded, "upstream tokens labelled with the company")
        async with httpx.AsyncClient(base_url=url) as client:
            samples = scrape((await client.get("/metrics")).text)
    assert sample(samples, "budget_guard_requests_admitted_total", company=str(COMPANY_A)) == 2
    assert (
        sample(
            samples, "budget_guard_requests_rejected_total", reason="budget", company=str(COMPANY_B)
        )
        == 1
    )
    assert (
        sample(
            samples,
            "budget_guard_requests_rejected_total",
            reason="unauthenticated",
            company="none",
        )
        == 1
    )


async def test_metrics_path_is_configurable_and_can_be_turned_off(upstream_url: str) -> None:
    moved = guarded_app(upstream_url, observability={"metrics_path": "/internal/metrics"})
    with serve(moved) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/metrics")).status_code == 404
            reply = await client.get("/internal/metrics")
            assert reply.status_code == 200
            assert "budget_guard_requests_admitted_total" in reply.text
    off = guarded_app(upstream_url, observability={"metrics": False})
    with serve(off) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/metrics")).status_code == 404
            # The guard still works without metrics.
            reply = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_A))
            assert reply.status_code == 200


async def test_two_apps_in_one_process_keep_separate_metrics(upstream_url: str) -> None:
    first, second = guarded_app(upstream_url), guarded_app(upstream_url)
    with serve(first) as url_1, serve(second) as url_2:
        async with httpx.AsyncClient(timeout=10) as client:
            reply = await client.post(
                f"{url_1}/v1/chat/completions", json=CHAT, headers=bearer(KEY_A)
            )
            assert reply.status_code == 200
            one = scrape((await client.get(f"{url_1}/metrics")).text)
            two = scrape((await client.get(f"{url_2}/metrics")).text)
    assert sample(one, "budget_guard_requests_admitted_total") == 1
    assert sample(two, "budget_guard_requests_admitted_total") == 0


async def test_every_refusal_of_every_route_is_counted_and_logged_once(
    upstream_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    usage = "/assistant/ai-chat/usage"
    with serve(guarded_app(upstream_url, ledger=memory_ledger())) as url:
        caplog.set_level(logging.INFO)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.get(usage)).status_code == 401
            other = {"CompanyId": str(COMPANY_B)}
            assert (await client.get(usage, params=other, headers=bearer())).status_code == 403
            bad = await client.post(usage, json={"TokensUsed": -1}, headers=bearer())
            assert bad.status_code == 400
            assert (await client.get(PAGE)).status_code == 401
            refused = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_B))
            assert refused.status_code == 429
            samples = scrape((await client.get("/metrics")).text)
    rejected = "budget_guard_requests_rejected_total"
    assert sample(samples, rejected, reason="unauthenticated") == 2  # the API and the page
    assert sample(samples, rejected, reason="forbidden") == 1
    assert sample(samples, rejected, reason="bad_request") == 1
    assert sample(samples, rejected, reason="budget") == 1
    ours = [r for r in caplog.records if r.name.startswith("budget_guard")]
    assert [r.getMessage() for r in ours].count("request rejected: budget") == 1
    assert not any("budget" in r.getMessage() and r.name == "budget_guard.guard" for r in ours)
    # The 429 says when, for a person: in words and as a UTC time, not in seconds.
    message = refused.json()["error"]["message"]
    assert "This company's token limit is 0." in message and "seconds" not in message


async def test_the_429_says_when_in_words_and_as_a_utc_time(upstream_url: str) -> None:
    window = Window(30)
    ledger = Ledger(MemoryStore(window), BudgetPolicy(window, limits={COMPANY_B: 10}))
    await ledger.record(COMPANY_B, 50)
    with serve(guarded_app(upstream_url, ledger=ledger)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            refused = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_B))
    assert refused.status_code == 429
    seconds = int(refused.headers["retry-after"])
    assert 29 * 86_400 < seconds <= 31 * 86_400  # the seconds stay in Retry-After
    message = refused.json()["error"]["message"]
    assert re.search(r"frees up in 30 d( \d+ h)?, at \d{4}-\d\d-\d\d \d\d:\d\d UTC", message)
    assert str(seconds) not in message
