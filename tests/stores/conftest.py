"""Every store behind one fixture, so one test suite runs unchanged against all of them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from budget_guard.clock import ManualClock
from budget_guard.stores import MemoryStore, RedisStore, UsageStore
from budget_guard.window import Window

StoreFactory = Callable[..., UsageStore]


@pytest.fixture
def clock() -> ManualClock:
    # Start in the middle of a bucket, as real traffic does.
    return ManualClock(1_700_000_000.0 + 1234.5)


@pytest.fixture(params=["memory", "redis"])
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
            url = request.getfixturevalue("redis_url")
            store = RedisStore.from_url(
                url,
                window,
                clock=clock,
                prefix=f"test-{uuid.uuid4().hex[:8]}:",
                **options,  # type: ignore[arg-type]
            )
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.aclose()
