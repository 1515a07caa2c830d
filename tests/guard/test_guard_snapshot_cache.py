"""``guard.snapshot_cache_seconds``: on a remote store, a company this process saw far from
its limit moments ago is admitted without another store read; a company near or over its
limit is read every time, and so is everyone in strict mode or with the cache off."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.budget.window import ConfigError, Window
from budget_guard.counting import TokenCounter
from budget_guard.guard import GuardSettings
from budget_guard.stores import MemoryStore, Reservation

from .conftest import COMPANY_A, KEY_A, guarded_proxy

MAX_TOKENS = 5
CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": MAX_TOKENS,
}
AUTH = {"Authorization": f"Bearer {KEY_A}"}
REQUESTS = 6
# Long enough that the whole test runs inside it on any machine: no test depends on timing.
CACHE_SECONDS = 3600.0


class CountingRemoteStore:
    """A memory store that calls itself remote (as the Redis store does, so the guard
    treats it like one) and counts the reads and reservations the guard makes."""

    remote = True

    def __init__(self) -> None:
        self.inner = MemoryStore(Window(30))
        self.window = self.inner.window
        self.reads = 0
        self.reserves = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def read(self, company_id: uuid.UUID, limit: int) -> UsageSnapshot:
        self.reads += 1
        return await self.inner.read(company_id, limit)

    async def reserve(self, company_id: uuid.UUID, tokens: int, limit: int) -> Reservation:
        self.reserves += 1
        return await self.inner.reserve(company_id, tokens, limit)


def estimate() -> int:
    """What the guard reckons one CHAT may cost: its input plus its max_tokens."""
    counted = TokenCounter().count_request("/v1/chat/completions", json.dumps(CHAT).encode())
    return counted.input_tokens + MAX_TOKENS


async def send_chats(url: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return [
            await http.post("/v1/chat/completions", headers=AUTH, json=CHAT) for _ in range(count)
        ]


def total_cost(answers: list[httpx.Response]) -> int:
    return sum(a.json()["usage"]["total_tokens"] for a in answers if a.status_code == 200)


async def test_a_company_far_from_its_limit_is_admitted_without_rereading_the_store(
    demo_upstream_url: str,
) -> None:
    store = CountingRemoteStore()
    settings = GuardSettings(snapshot_cache_seconds=CACHE_SECONDS)
    with guarded_proxy(demo_upstream_url, settings=settings, store=store) as g:
        answers = await send_chats(g.url, REQUESTS)
        reads = store.reads
        snapshot = await store.inner.read(COMPANY_A, 1_000_000)
    assert [a.status_code for a in answers] == [200] * REQUESTS
    assert reads == 1, "only the first request read the store"
    assert snapshot.tokens_used == total_cost(answers), "every request was still recorded"
    # The headers are the snapshot the guard held before each request: the first read, then
    # what the previous request's recording returned.
    used = [int(a.headers["x-budget-tokens-used"]) for a in answers]
    costs = [a.json()["usage"]["total_tokens"] for a in answers]
    assert used == [sum(costs[:i]) for i in range(REQUESTS)]


async def test_a_company_near_its_limit_is_read_on_every_request(demo_upstream_url: str) -> None:
    store = CountingRemoteStore()
    settings = GuardSettings(snapshot_cache_seconds=CACHE_SECONDS)
    # Room for one request's actual cost, never for a whole estimate: every admission is
    # near the limit, and once over it every request is refused on a fresh read.
    limit = estimate() + 1
    with guarded_proxy(demo_upstream_url, limit=limit, settings=settings, store=store) as g:
        answers = await send_chats(g.url, REQUESTS)
    statuses = [a.status_code for a in answers]
    assert statuses[0] == 200
    assert 429 in statuses
    assert store.reads == REQUESTS


async def test_a_company_over_its_limit_is_refused_on_a_fresh_read(demo_upstream_url: str) -> None:
    """Another worker spends the budget after this process cached a snapshot far from the
    limit: the cached snapshot admits (the documented overshoot), the recording returns the
    truth, and from then on the guard reads the store and refuses."""
    store = CountingRemoteStore()
    settings = GuardSettings(snapshot_cache_seconds=CACHE_SECONDS)
    limit = 100 * estimate()
    with guarded_proxy(demo_upstream_url, limit=limit, settings=settings, store=store) as g:
        first = await send_chats(g.url, 1)
        await store.inner.record(COMPANY_A, limit, limit)  # another worker spends it all
        later = await send_chats(g.url, 3)
    assert first[0].status_code == 200
    assert [a.status_code for a in later] == [200, 429, 429]
    assert store.reads == 3, "the first request and each refusal read the store"


async def test_a_cache_of_zero_seconds_reads_the_store_for_every_request(
    demo_upstream_url: str,
) -> None:
    store = CountingRemoteStore()
    settings = GuardSettings(snapshot_cache_seconds=0)
    with guarded_proxy(demo_upstream_url, settings=settings, store=store) as g:
        answers = await send_chats(g.url, REQUESTS)
    assert [a.status_code for a in answers] == [200] * REQUESTS
    assert store.reads == REQUESTS


async def test_strict_mode_reserves_for_every_request_whatever_the_cache(
    demo_upstream_url: str,
) -> None:
    store = CountingRemoteStore()
    settings = GuardSettings(strict=True, snapshot_cache_seconds=CACHE_SECONDS)
    with guarded_proxy(demo_upstream_url, settings=settings, store=store) as g:
        answers = await send_chats(g.url, REQUESTS)
    assert [a.status_code for a in answers] == [200] * REQUESTS
    assert store.reserves == REQUESTS


async def test_an_in_process_store_is_read_for_every_request(demo_upstream_url: str) -> None:
    """The memory store answers in microseconds and exactly: nothing is cached in front of it."""
    store = CountingRemoteStore()
    store.remote = False  # type: ignore[misc]
    settings = GuardSettings(snapshot_cache_seconds=CACHE_SECONDS)
    with guarded_proxy(demo_upstream_url, settings=settings, store=store) as g:
        await send_chats(g.url, REQUESTS)
    assert store.reads == REQUESTS


def test_the_setting_reads_from_the_guard_table() -> None:
    assert GuardSettings().snapshot_cache_seconds == 1.0
    assert GuardSettings.from_table({"snapshot_cache_seconds": 0}).snapshot_cache_seconds == 0.0
    assert GuardSettings.from_table({"snapshot_cache_seconds": 0.25}).snapshot_cache_seconds == 0.25
    for bad in (-1, "1", True):
        with pytest.raises(ConfigError, match=r"guard\.snapshot_cache_seconds"):
            GuardSettings.from_table({"snapshot_cache_seconds": bad})
