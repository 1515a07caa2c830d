"""The Redis store runs unchanged on a real 3-node Redis Cluster."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from budget_guard.budget.clock import ManualClock
from budget_guard.budget.window import Window
from budget_guard.stores import Dedupe, RedisStore
from tests.redis_servers import RedisCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as running:
        yield running


async def test_the_store_works_on_a_cluster_across_slots(cluster: RedisCluster) -> None:
    clock = ManualClock()
    store = RedisStore.from_url(cluster.url, Window(30), cluster=True, clock=clock)
    try:
        companies = [uuid.uuid4() for _ in range(30)]  # spread over all three masters
        for i, cid in enumerate(companies):
            await store.record(cid, i + 1, 100)
            await store.record(cid, 1, 100, dedupe=Dedupe("k", "fp"))
            await store.record(cid, 1, 100, dedupe=Dedupe("k", "fp"))
        for i, cid in enumerate(companies):
            assert (await store.read(cid, 100)).tokens_used == i + 2
        hold = await store.reserve(companies[0], 50, 100)
        assert hold.granted
        assert (await store.settle(hold, 7, 100)).tokens_used == 9
        clock.advance(31 * 86_400)
        assert (await store.read(companies[5], 100)).tokens_used == 0
        await store.ping()
    finally:
        await store.aclose()


@pytest.mark.parametrize("max_connections", [3, 100])
async def test_a_burst_on_a_fresh_client_is_counted_exactly(
    cluster: RedisCluster, max_connections: int
) -> None:
    """Two redis-py cluster pitfalls, each measured here before it was fixed: past
    ``max_connections`` in flight per node the client raises instead of waiting (a burst
    became a store outage: 503 when failing closed, unchecked when failing open), and a burst
    of first calls raced through topology discovery, lost connections and, with the client's
    own retries, ran a script twice (201 of 200)."""
    store = RedisStore.from_url(
        cluster.url, Window(30), cluster=True, max_connections=max_connections
    )
    try:
        company = uuid.uuid4()  # one slot: every call goes to the same node
        await asyncio.gather(*(store.record(company, 1, 10_000) for _ in range(200)))
        assert (await store.read(company, 10_000)).tokens_used == 200
    finally:
        await store.aclose()
