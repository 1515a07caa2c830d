"""What only the embedded store has: its bounds on companies, keys and objects."""

from __future__ import annotations

import uuid

import pytest

from budget_guard.budget.clock import ManualClock
from budget_guard.budget.window import Window
from budget_guard.stores import Dedupe, IdempotencyKeysExhausted, MemoryStore, StoreFull


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


async def test_the_table_of_all_keys_is_a_backstop_that_one_company_cannot_fill() -> None:
    store = MemoryStore(Window(30), max_idempotency_keys=4, max_idempotency_keys_per_company=2)
    greedy, other = uuid.uuid4(), uuid.uuid4()
    for i in range(2):
        await store.record(greedy, 1, 100, dedupe=Dedupe(f"k{i}", bounded=True))
    with pytest.raises(IdempotencyKeysExhausted):  # this company's bound, not the table's
        await store.record(greedy, 1, 100, dedupe=Dedupe("k2", bounded=True))
    for i in range(2):
        await store.record(other, 1, 100, dedupe=Dedupe(f"k{i}", bounded=True))
    with pytest.raises(StoreFull):  # the whole table: every company's new key waits
        await store.record(uuid.uuid4(), 1, 100, dedupe=Dedupe("k", bounded=True))


async def test_short_lived_keys_lapse_on_time_behind_long_lived_ones() -> None:
    """One lapse queue for all ttls let a 24 h key at its front hold back every 10-minute
    key behind it: they stayed in the table, and counted toward the bounds, for a day."""
    clock = ManualClock()
    store = MemoryStore(Window(30), clock=clock, max_idempotency_keys_per_company=2)
    company = uuid.uuid4()
    await store.record(company, 1, 100, dedupe=Dedupe("day", ttl=86_400, bounded=True))
    await store.record(company, 1, 100, dedupe=Dedupe("short", ttl=600, bounded=True))
    clock.advance(601)
    await store.record(company, 1, 100, dedupe=Dedupe("next", ttl=600, bounded=True))
    assert store.stats()["idempotency_keys"] == 2


async def test_at_its_bound_the_object_table_forgets_the_least_recently_used() -> None:
    """Forgetting an owner only denies that owner afterwards; it grants no one anything."""
    store = MemoryStore(Window(30), max_objects=2)
    a, b = uuid.uuid4(), uuid.uuid4()
    await store.remember_object(a, "file-1", 3600)
    await store.remember_object(a, "file-2", 3600)
    assert await store.object_owner("file-1") == a  # file-2 is now the least recently used
    await store.remember_object(b, "file-3", 3600)
    assert await store.object_owner("file-2") is None
    assert await store.object_owner("file-1") == a
    assert await store.object_owner("file-3") == b
    assert store.stats()["objects"] == 2
