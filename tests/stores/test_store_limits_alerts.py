"""Run-time limit overrides and threshold crossings, against every store (memory, Redis,
Redis Cluster): the same contract everywhere."""

from __future__ import annotations

import asyncio
import uuid

from budget_guard.budget.clock import ManualClock
from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.budget.window import Window
from tests.stores.conftest import StoreFactory

Crossing = tuple[uuid.UUID, float, int]


def watching(store: object, thresholds: tuple[float, ...]) -> list[Crossing]:
    heard: list[Crossing] = []

    def sink(company: uuid.UUID, threshold: float, snap: UsageSnapshot) -> None:
        heard.append((company, threshold, snap.tokens_used))

    store.watch_thresholds(thresholds, sink)  # type: ignore[attr-defined]
    return heard


async def test_overrides_set_read_list_clear(make_store: StoreFactory) -> None:
    store = make_store()
    a, b = uuid.uuid4(), uuid.uuid4()
    assert await store.limit_override(a) is None  # type: ignore[attr-defined]
    assert await store.set_limit_override(a, 500) is None  # type: ignore[attr-defined]
    assert await store.set_limit_override(a, 700) == 500  # type: ignore[attr-defined]
    assert await store.set_limit_override(b, 0) is None  # type: ignore[attr-defined]
    assert await store.limit_override(a) == 700  # type: ignore[attr-defined]
    assert await store.limit_overrides() == {a: 700, b: 0}  # type: ignore[attr-defined]
    assert await store.set_limit_override(a, None) == 700  # type: ignore[attr-defined]
    assert await store.set_limit_override(a, None) is None  # type: ignore[attr-defined]
    assert await store.limit_overrides() == {b: 0}  # type: ignore[attr-defined]


async def test_each_threshold_fires_once_per_crossing(make_store: StoreFactory) -> None:
    store = make_store()
    heard = watching(store, (0.8, 0.95, 1.0))
    company = uuid.uuid4()
    await store.record(company, 700, 1000)
    assert heard == []
    await store.record(company, 100, 1000)  # 800: exactly at 80 %
    await store.record(company, 10, 1000)
    assert heard == [(company, 0.8, 800)]
    await store.record(company, 300, 1000)  # 1110: past 95 % and 100 % in one charge
    await store.record(company, 5, 1000)
    assert heard == [(company, 0.8, 800), (company, 0.95, 1110), (company, 1.0, 1110)]


async def test_concurrent_charges_across_the_line_fire_once(make_store: StoreFactory) -> None:
    store = make_store()
    heard = watching(store, (0.8,))
    company = uuid.uuid4()
    await asyncio.gather(*(store.record(company, 10, 1000) for _ in range(100)))
    assert [(c, t) for c, t, _ in heard] == [(company, 0.8)]


async def test_the_window_moving_rearms(make_store: StoreFactory, clock: ManualClock) -> None:
    window = Window(1)  # 24 one-hour buckets
    store = make_store(window)
    heard = watching(store, (0.8,))
    company = uuid.uuid4()
    await store.record(company, 900, 1000)
    assert len(heard) == 1
    clock.advance(window.seconds + window.bucket_seconds)  # the 900 tokens age out
    await store.record(company, 100, 1000)
    assert len(heard) == 1  # 100 is under 80 %: armed again, not fired
    await store.record(company, 750, 1000)
    assert [t for _, t, used in heard] == [0.8, 0.8] and heard[1][2] == 850


async def test_a_raised_limit_rearms_the_thresholds_it_moved_under(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    heard = watching(store, (0.5, 0.8))
    company = uuid.uuid4()
    await store.record(company, 850, 1000)  # 85 %: both fire
    assert [t for _, t, _ in heard] == [0.5, 0.8]
    await store.record(company, 10, 2000)  # 43 %: both re-armed, none fired
    await store.record(company, 300, 2000)  # 58 %: 50 % fires again, 80 % does not
    assert [t for _, t, _ in heard] == [0.5, 0.8, 0.5]


async def test_replays_and_zero_limits_fire_nothing(make_store: StoreFactory) -> None:
    from budget_guard.stores import Dedupe

    store = make_store()
    heard = watching(store, (0.8,))
    company = uuid.uuid4()
    await store.record(company, 900, 1000, dedupe=Dedupe("k", "f"))
    await store.record(company, 900, 1000, dedupe=Dedupe("k", "f"))
    await store.record(uuid.uuid4(), 5, 0)
    assert len(heard) == 1


async def test_settle_charges_count_toward_thresholds(make_store: StoreFactory) -> None:
    store = make_store()
    heard = watching(store, (0.8,))
    company = uuid.uuid4()
    held = await store.reserve(company, 500, 1000)
    assert heard == []
    await store.settle(held, 850, 1000)
    assert heard == [(company, 0.8, 850)]
