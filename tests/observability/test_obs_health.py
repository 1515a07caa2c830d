"""/healthz and /readyz, and the fail-open metrics, against a real Redis that goes away.

The Redis here is a private redis-server on a free port, started and stopped by the test
(never the shared one on 6379).
"""

from __future__ import annotations

import asyncio
import time

import httpx
from obs_support import CHAT, COMPANY_A, bearer, guarded_app, sample, scrape
from tests.proxy.servers import serve
from tests.redis_servers import RedisServer

from budget_guard.budget.window import Window
from budget_guard.stores import open_store


async def wait_for(client: httpx.AsyncClient, path: str, status: int) -> httpx.Response:
    deadline = time.monotonic() + 15
    while True:
        reply = await client.get(path)
        if reply.status_code == status:
            return reply
        assert time.monotonic() < deadline, f"{path} never answered {status}: {reply.text}"
        await asyncio.sleep(0.05)


async def test_health_on_the_memory_store(upstream_url: str) -> None:
    with serve(guarded_app(upstream_url)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            live = await client.get("/healthz")
            ready = await client.get("/readyz")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"store": "ok", "encodings": "ok"}}
    assert ready.headers["cache-control"] == "no-store"


async def test_not_ready_while_redis_is_down_and_ready_again_after(upstream_url: str) -> None:
    with RedisServer() as redis:
        app = guarded_app(upstream_url, store={"url": redis.url, "socket_timeout_seconds": 1})
        with serve(app) as url:
            async with httpx.AsyncClient(base_url=url, timeout=15) as client:
                assert (await client.get("/readyz")).status_code == 200

                redis.stop()
                down = await client.get("/readyz")
                assert down.status_code == 503
                assert down.json() == {
                    "ready": False,
                    "checks": {"store": "unavailable", "encodings": "ok"},
                }
                # Liveness is not about the store: restarting the process would not help.
                assert (await client.get("/healthz")).status_code == 200

                # Fail-open: served, and the usage waits in the journal.
                reply = await client.post("/v1/chat/completions", json=CHAT, headers=bearer())
                assert reply.status_code == 200
                tokens = reply.json()["usage"]["total_tokens"]
                samples = scrape((await client.get("/metrics")).text)
                assert sample(samples, "budget_guard_journal_entries") == 1
                assert sample(samples, "budget_guard_journal_pending_tokens") == tokens
                assert sample(samples, "budget_guard_tokens_journaled_total") == tokens
                assert (
                    sample(samples, "budget_guard_request_store_failures_total", stage="admit") == 1
                )
                assert (
                    sample(samples, "budget_guard_request_store_failures_total", stage="record")
                    == 1
                )
                # Each stage fails on its first store call: the company's limit override
                # (not cached while the store is down) or, when it is cached, the call itself.
                admission_errors = sum(
                    sample(
                        samples,
                        "budget_guard_store_errors_total",
                        operation=operation,
                        error="StoreUnavailable",
                    )
                    for operation in ("limit_override", "read")
                )
                assert admission_errors >= 1
                assert (
                    sample(
                        samples,
                        "budget_guard_store_errors_total",
                        operation="ping",
                        error="StoreUnavailable",
                    )
                    == 1
                )

                redis.start()
                up = await wait_for(client, "/readyz", 200)
                assert up.json()["checks"]["store"] == "ok"
                deadline = time.monotonic() + 15
                while True:
                    samples = scrape((await client.get("/metrics")).text)
                    if sample(samples, "budget_guard_journal_entries") == 0:
                        break
                    assert time.monotonic() < deadline, "the journal was never replayed"
                    await asyncio.sleep(0.05)
                assert sample(samples, "budget_guard_journal_replayed_entries_total") == 1
                assert sample(samples, "budget_guard_journal_dropped_tokens_total") == 0

        store = open_store(redis.url, Window(30))
        try:
            assert (await store.read(COMPANY_A, 1_000_000)).tokens_used == tokens
        finally:
            await store.aclose()
