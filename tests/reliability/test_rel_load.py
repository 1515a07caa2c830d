"""Exactness under load: many companies, thousands of concurrent recordings through the usage
endpoint and the proxy path, spread over three worker processes (one command with two uvicorn
workers and one with a single worker) that share one Redis. Every company's total must be
exactly the sum of what it sent, and nothing may be answered 5xx."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import orjson

from budget_guard.budget.window import Window
from budget_guard.stores import RedisStore
from tests.redis_servers import RedisServer

from .support import (
    CHAT_PATH,
    USAGE_PATH,
    Company,
    budget_guard,
    call,
    companies,
    http_session,
    used,
    write_config,
)

ENDPOINT_RECORDINGS = 9_000
IDEMPOTENT_RETRIES = 300
PROXY_REQUESTS = 1_200
CONCURRENCY = 64
WORDS = ("budget", "guard", "counts", "every", "token", "the", "company", "spends", "on", "it")


def chat_body(rng: random.Random, *, stream: bool) -> dict[str, object]:
    prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 60)))
    body: dict[str, object] = {
        "model": rng.choice(["gpt-4o-mini", "gpt-4o"]),
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": rng.randint(1, 40),
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def streamed_total(raw: bytes) -> int:
    """The usage the stream's final chunk reports (the demo upstream's exact count)."""
    totals = [
        orjson.loads(line[6:])["usage"]["total_tokens"]
        for line in raw.splitlines()
        if line.startswith(b"data: {") and b'"usage":{' in line
    ]
    assert len(totals) == 1, raw[-300:]
    return int(totals[0])


async def test_every_company_total_is_exact_under_concurrent_load(tmp_path: Path) -> None:
    rng = random.Random(7)
    tenants = companies(24)
    with RedisServer() as redis:
        config = write_config(tmp_path / "load.toml", tenants, store_url=redis.url)
        with budget_guard(config, workers=2) as two_workers, budget_guard(config) as one_worker:
            bases = [two_workers.url, one_worker.url]
            sent: Counter[Company] = Counter()
            statuses: Counter[int] = Counter()
            gate = asyncio.Semaphore(CONCURRENCY)

            async def record(session: aiohttp.ClientSession, i: int) -> None:
                tenant = rng.choice(tenants)
                tokens = rng.randint(1, 5_000)
                headers = dict(tenant.auth)
                retry = i < IDEMPOTENT_RETRIES
                if retry or i % 4 == 0:
                    headers["Idempotency-Key"] = f"turn-{i}"
                async with gate:
                    answer = await call(
                        session,
                        "POST",
                        bases[i % 2] + USAGE_PATH,
                        headers=headers,
                        json={"tokensUsed": tokens},
                    )
                    statuses[answer.status] += 1
                    if retry:  # the same turn again, through the other server
                        again = await call(
                            session,
                            "POST",
                            bases[(i + 1) % 2] + USAGE_PATH,
                            headers=headers,
                            json={"tokensUsed": tokens},
                        )
                        statuses[again.status] += 1
                        assert again.headers.get("idempotent-replayed") == "true"
                if answer.status == 200:
                    sent[tenant] += tokens

            async def chat(session: aiohttp.ClientSession, i: int) -> None:
                tenant = rng.choice(tenants)
                stream = i % 3 == 0
                body = chat_body(rng, stream=stream)
                async with (
                    gate,
                    session.post(bases[i % 2] + CHAT_PATH, headers=tenant.auth, json=body) as r,
                ):
                    raw = await r.read()
                    statuses[r.status] += 1
                    if r.status == 200:
                        usage = streamed_total(raw) if stream else orjson.loads(raw)["usage"]
                        sent[tenant] += usage if stream else usage["total_tokens"]

            async with http_session(CONCURRENCY) as session:
                jobs = [record(session, i) for i in range(ENDPOINT_RECORDINGS)]
                jobs += [chat(session, i) for i in range(PROXY_REQUESTS)]
                rng.shuffle(jobs)
                await asyncio.gather(*jobs)

                assert statuses == Counter({200: sum(statuses.values())}), statuses
                assert sum(statuses.values()) >= 10_000
                for tenant in tenants:
                    for base in bases:
                        assert await used(session, base, tenant) == sent[tenant], tenant
            assert two_workers.alive and one_worker.alive
            for server in (two_workers, one_worker):
                assert "unavailable" not in server.log(), "the store never failed a call"


async def test_a_burst_larger_than_the_connection_pool_waits_instead_of_failing() -> None:
    """One worker with more store calls in flight than its Redis connection pool holds: the
    extra calls wait for a connection. (Failing them would turn a burst into "store
    unavailable": fail-open would then admit requests unchecked, past strict mode.)"""
    company = uuid.uuid4()
    with RedisServer() as redis:
        store = RedisStore.from_url(redis.url, Window(30), prefix="burst:")
        try:
            results = await asyncio.gather(*(store.record(company, 1, 10**6) for _ in range(600)))
            assert max(r.snapshot.tokens_used for r in results) == 600
        finally:
            await store.aclose()
