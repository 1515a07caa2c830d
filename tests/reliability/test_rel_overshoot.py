"""How far a company can go over its limit when many of its requests arrive at once.

Strict mode reserves each request's largest possible cost (input + max_tokens) atomically in
Redis before forwarding and settles to the actual cost, so with an upstream that honours
max_tokens a company never ends over its limit, however many requests race (across two
uvicorn workers here). Without strict mode the guard checks, forwards, then records: every
request that passed the check before the others were recorded goes through. The worst case,
measured here and documented, is that *all* requests in flight when the limit is crossed are
admitted: the overshoot stays below (requests in flight) x (largest request cost).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

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

LIMIT = 2_000
MAX_TOKENS = 20
PER_COMPANY = 20
CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "How much budget is left this month?"}],
    "max_tokens": MAX_TOKENS,
}


async def burst(
    session: aiohttp.ClientSession, base: str, tenants: list[Company]
) -> dict[Company, list[int]]:
    """PER_COMPANY identical chat requests per company, all at once; the admitted costs."""

    async def one(tenant: Company) -> tuple[Company, int | None]:
        answer = await call(session, "POST", base + CHAT_PATH, headers=tenant.auth, json=CHAT)
        assert answer.status in (200, 429), answer
        if answer.status == 429:
            assert answer.body is not None
            assert answer.body["error"]["code"] == "token_budget_exceeded"
            return tenant, None
        assert answer.body is not None
        return tenant, int(answer.body["usage"]["total_tokens"])

    results = await asyncio.gather(*(one(t) for t in tenants for _ in range(PER_COMPANY)))
    admitted: dict[Company, list[int]] = {t: [] for t in tenants}
    for tenant, cost in results:
        if cost is not None:
            admitted[tenant].append(cost)
    return admitted


async def prefill(session: aiohttp.ClientSession, base: str, tenant: Company, tokens: int) -> None:
    answer = await call(
        session, "POST", base + USAGE_PATH, headers=tenant.auth, json={"tokensUsed": tokens}
    )
    assert answer.status == 200, answer


async def test_strict_mode_never_lets_racing_requests_past_the_limit(tmp_path: Path) -> None:
    tenants = companies(10)
    with RedisServer() as redis:
        config = write_config(
            tmp_path / "strict.toml",
            tenants,
            store_url=redis.url,
            limit=LIMIT,
            guard={"strict": True},
        )
        with budget_guard(config, workers=2) as server:
            async with http_session(len(tenants) * PER_COMPANY) as session:
                # Each company starts at a different distance from its limit, the nearest
                # with room for less than one request.
                for i, tenant in enumerate(tenants):
                    await prefill(session, server.url, tenant, LIMIT - 10 - 150 * i)
                admitted = await burst(session, server.url, tenants)
                for i, tenant in enumerate(tenants):
                    start = LIMIT - 10 - 150 * i
                    total = await used(session, server.url, tenant)
                    assert total == start + sum(admitted[tenant]), "every admitted cost recorded"
                    assert total <= LIMIT, f"strict mode went over: {total} > {LIMIT}"
                assert admitted[tenants[0]] == [], "no room for one request: none admitted"
                assert len(admitted[tenants[-1]]) >= 1
            assert server.alive
            assert "unavailable" not in server.log(), "the store never failed a call"


async def test_without_strict_mode_the_overshoot_is_below_in_flight_times_cost(
    tmp_path: Path,
) -> None:
    tenants = companies(10)
    with RedisServer() as redis:
        config = write_config(tmp_path / "loose.toml", tenants, store_url=redis.url, limit=LIMIT)
        with budget_guard(config, workers=2) as server:
            async with http_session(len(tenants) * PER_COMPANY) as session:
                for tenant in tenants:  # one token short of the limit: still within budget
                    await prefill(session, server.url, tenant, LIMIT - 1)
                admitted = await burst(session, server.url, tenants)
                worst = 0
                for tenant in tenants:
                    total = await used(session, server.url, tenant)
                    costs = admitted[tenant]
                    assert total == LIMIT - 1 + sum(costs), "every admitted cost recorded"
                    overshoot = total - LIMIT
                    assert overshoot < PER_COMPANY * max(costs), "bounded by the requests in flight"
                    worst = max(worst, overshoot)
                # Once the recorded usage is over the limit, the next request is refused.
                after = await burst(session, server.url, tenants[:1])
                assert after[tenants[0]] == []
            print(
                f"\nwithout strict mode: {PER_COMPANY} concurrent requests per company, "
                f"admitted {sorted(len(c) for c in admitted.values())}, "
                f"cost {sorted({x for c in admitted.values() for x in c})}, "
                f"worst overshoot {worst} tokens over a limit of {LIMIT}"
            )
            assert server.alive
            assert "unavailable" not in server.log(), "the store never failed a call"
