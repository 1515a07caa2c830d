"""What only the embedded store has: its bound on companies."""

from __future__ import annotations

import uuid

import pytest

from budget_guard.clock import ManualClock
from budget_guard.stores import MemoryStore, StoreFull
from budget_guard.window import Window


async def test_a_full_store_refuses_loudly_instead_of_dropping_live_usage() -> None:
    clock = ManualClock()
    store = MemoryStore(Window(1), clock=clock, max_companies=2, reservation_ttl=0)
    a, b = uuid.uuid4(), uuid.uuid4()
    await store.record(a, 5, 100)
    await store.record(b, 5, 100)
    with pytest.raises(StoreFull):
        await store.record(uuid.uuid4(), 5, 100)
    assert (await store.read(a, 100)).tokens_used == 5
    assert (await store.read(b, 100)).tokens_used == 5
    clock.advance(2 * 86_400)  # both windows empty: their room is free again
    await store.record(uuid.uuid4(), 5, 100)


async def test_reading_an_unknown_company_stores_nothing() -> None:
    store = MemoryStore(Window(30), max_companies=1)
    for _ in range(10):
        assert (await store.read(uuid.uuid4(), 100)).tokens_used == 0
    await store.record(uuid.uuid4(), 1, 100)
