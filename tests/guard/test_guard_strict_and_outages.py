"""Strict mode (reserve, then settle) and what the guard does while the store is down."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import httpx
import pytest

from budget_guard.budget.window import Window
from budget_guard.counting import TokenCounter
from budget_guard.guard import GuardSettings
from budget_guard.stores import RedisStore
from tests.redis_servers import RedisServer

from .conftest import COMPANY_A, KEY_A, guarded_proxy, journal_replayed, served_burst

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}
AUTH = {"Authorization": f"Bearer {KEY_A}"}


def reservation_per_request() -> int:
    counted = TokenCounter().count_request("/v1/chat/completions", json.dumps(CHAT).encode())
    return counted.input_tokens + 5


async def test_strict_mode_admits_only_what_fits(demo_upstream_url: str) -> None:
    room_for = 10
    limit = room_for * reservation_per_request()
    with guarded_proxy(demo_upstream_url, limit=limit, settings=GuardSettings(strict=True)) as g:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=g.url, limits=limits, timeout=30) as http:
            answers = await asyncio.gather(
                *(http.post("/v1/chat/completions", headers=AUTH, json=CHAT) for _ in range(50))
            )
        statuses = [a.status_code for a in answers]
        assert set(statuses) <= {200, 429}
        admitted = [a for a in answers if a.status_code == 200]
        assert 1 <= len(admitted) <= room_for
        snapshot = await g.ledger.snapshot(COMPANY_A)
        assert snapshot.tokens_used == sum(a.json()["usage"]["total_tokens"] for a in admitted)
        assert snapshot.tokens_used <= limit
        assert snapshot.tokens_reserved == 0, "every reservation was settled"


async def test_strict_mode_settles_to_the_actual_cost(demo_upstream_url: str) -> None:
    with guarded_proxy(demo_upstream_url, settings=GuardSettings(strict=True)) as g:
        async with httpx.AsyncClient(base_url=g.url, timeout=30) as http:
            big = {**CHAT, "max_tokens": 4000}
            answer = await http.post("/v1/chat/completions", headers=AUTH, json=big)
        snapshot = await g.ledger.snapshot(COMPANY_A)
        assert snapshot.tokens_used == answer.json()["usage"]["total_tokens"]
        assert snapshot.tokens_reserved == 0


async def test_fail_open_serves_through_a_redis_outage_and_loses_nothing(
    demo_upstream_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}:"
    persistent = ("--appendonly", "yes", "--appendfsync", "always")
    with RedisServer(extra_args=persistent) as redis:
        store = RedisStore.from_url(redis.url, Window(30), prefix=prefix, socket_timeout=0.5)
        with guarded_proxy(demo_upstream_url, store=store) as g:
            async with httpx.AsyncClient(base_url=g.url, timeout=30) as http:
                total = await served_burst(http, 20)
                redis.stop()
                with caplog.at_level(logging.WARNING, "budget_guard.guard"):
                    total += await served_burst(http, 20)
                middleware = g.middleware()
                assert middleware is not None and len(middleware.journal) == 20
                # Twenty requests, one line of each kind: an outage does not flood the log.
                journaled = [r for r in caplog.records if "journaled for replay" in r.message]
                serving = [r for r in caplog.records if "serving (fail-open)" in r.message]
                assert len(journaled) == 1 and len(serving) <= 1, caplog.text
                redis.start()  # same port, same data directory
                total += await served_burst(http, 5)
                await journal_replayed(g)
        # A reader of its own: the server's client belongs to the server's event loop.
        reader = RedisStore.from_url(redis.url, Window(30), prefix=prefix)
        snapshot = await reader.read(COMPANY_A, 1_000_000)
        await reader.aclose()
    assert snapshot.tokens_used == total, "every token from before, during and after the outage"


async def test_fail_closed_answers_503_and_forwards_nothing(demo_upstream_url: str) -> None:
    with RedisServer() as redis:
        store = RedisStore.from_url(redis.url, Window(30), socket_timeout=0.5)
        with guarded_proxy(
            demo_upstream_url, store=store, settings=GuardSettings(on_store_error="closed")
        ) as g:
            redis.stop()
            async with httpx.AsyncClient(base_url=g.url, timeout=30) as http:
                answer = await http.post("/v1/chat/completions", headers=AUTH, json=CHAT)
            assert answer.status_code == 503
            assert answer.json()["error"]["code"] == "budget_store_unavailable"
            assert "redis" not in answer.text.lower()
            middleware = g.middleware()
            assert middleware is not None and len(middleware.journal) == 0
        await store.aclose()


async def test_strict_mode_admits_a_request_that_fits_only_by_its_exact_count(
    demo_upstream_url: str,
) -> None:
    """The hold is first made on a cheap bound of the prompt (its UTF-8 bytes); refused on
    that near the limit, it is made again on the exact count, so a request that fits is
    never turned away for the bound alone."""
    exact = reservation_per_request()
    with guarded_proxy(demo_upstream_url, limit=exact, settings=GuardSettings(strict=True)) as g:
        async with httpx.AsyncClient(base_url=g.url, timeout=30) as http:
            answer = await http.post("/v1/chat/completions", headers=AUTH, json=CHAT)
            assert answer.status_code == 200, answer.text
            again = await http.post("/v1/chat/completions", headers=AUTH, json=CHAT)
            assert again.status_code == 429
        snapshot = await g.ledger.snapshot(COMPANY_A)
        assert snapshot.tokens_used == answer.json()["usage"]["total_tokens"] <= exact
        assert snapshot.tokens_reserved == 0
