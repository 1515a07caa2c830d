"""Every store behind one fixture, so one test suite runs unchanged against all of them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from budget_guard.budget.clock import ManualClock
from budget_guard.budget.window import Window
from budget_guard.stores import MemoryStore, RedisStore, UsageStore
from tests.redis_servers import RedisCluster

StoreFactory = Callable[..., UsageStore]


@pytest.fixture
def clock() -> ManualClock:
    # Start in the middle of a bucket, as real traffic does.
    return ManualClock(1_700_000_000.0 + 1234.5)


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """One real 3-master Redis Cluster for the whole session (started only when a test
    asks for it), so the contract suite also proves every script stays in one slot."""
    with RedisCluster() as cluster:
        yield cluster.url


@pytest.fixture(params=["memory", "redis", "cluster"])
async def make_store(
    request: pytest.FixtureRequest, clock: ManualClock
) -> AsyncIterator[StoreFactory]:
    opened: list[UsageStore] = []

    def factory(window: Window | None = None, **options: object) -> UsageStore:
        window = window or Window(30)
        store: UsageStore
        if request.param == "memory":
            store = MemoryStore(window, clock=clock, **options)  # type: ignore[arg-type]
        else:
            cluster = request.param == "cluster"
            url = request.getfixturevalue("redis_cluster_url" if cluster else "redis_url")
            store = RedisStore.from_url(
                url,
                window,
                cluster=cluster,
                clock=clock,
                prefix=f"test-{uuid.uuid4().hex[:8]}:",
                **options,  # type: ignore[arg-type]
            )
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.aclose()
