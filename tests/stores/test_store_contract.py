"""The behaviour every usage store promises, run against each store (see conftest)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from budget_guard.budget.clock import ManualClock
from budget_guard.budget.window import INT32_MAX, INT64_MAX, Window
from budget_guard.stores import Dedupe, IdempotencyConflict, UsageOverflow

from .conftest import StoreFactory

DAY = 86_400
W30 = Window(30)  # 6-hour buckets
BUCKET = W30.bucket_seconds


def company() -> uuid.UUID:
    return uuid.uuid4()


async def test_record_returns_the_updated_snapshot(make_store: StoreFactory) -> None:
    store, cid = make_store(), company()
    first = await store.record(cid, 1200, 50_000)
    assert first.snapshot.tokens_used == 1200
    assert first.snapshot.tokens_remaining == 48_800
    assert first.snapshot.is_within_budget
    assert first.snapshot.window_days == 30
    assert first.snapshot.frees_at is None
    second = await store.record(cid, 800, 50_000)
    assert second.snapshot.tokens_used == 2000
    assert (await store.read(cid, 50_000)).tokens_used == 2000


async def test_zero_tokens_records_nothing_and_reports_current_usage(
    make_store: StoreFactory,
) -> None:
    store, cid = make_store(), company()
    assert (await store.record(cid, 0, 100)).snapshot.tokens_used == 0
    await store.record(cid, 40, 100)
    assert (await store.record(cid, 0, 100)).snapshot.tokens_used == 40


async def test_at_the_limit_is_not_within_budget(make_store: StoreFactory) -> None:
    store, cid = make_store(), company()
    snap = (await store.record(cid, 100, 100)).snapshot
    assert not snap.is_within_budget
    assert snap.tokens_remaining == 0
    over = (await store.record(cid, 50, 100)).snapshot
    assert over.tokens_used == 150, "usage that happened is recorded even over budget"
    assert over.tokens_remaining == 0


@pytest.mark.parametrize("offset", [0.0, 1.0, BUCKET / 2, BUCKET - 0.001])
async def test_usage_counts_for_the_whole_window_and_is_gone_a_bucket_later(
    make_store: StoreFactory, clock: ManualClock, offset: float
) -> None:
    store, cid = make_store(W30), company()
    clock.set(1_700_006_400.0 + offset)  # a bucket boundary plus an offset into it
    recorded_at = clock()
    await store.record(cid, 10, 1000)
    clock.set(recorded_at + W30.seconds - 0.001)
    assert (await store.read(cid, 1000)).tokens_used == 10, "expired early"
    clock.set(recorded_at + W30.seconds + BUCKET)
    assert (await store.read(cid, 1000)).tokens_used == 0, "kept longer than one bucket"


async def test_old_buckets_leave_one_by_one(make_store: StoreFactory, clock: ManualClock) -> None:
    store, cid = make_store(W30), company()
    for day in range(30):
        await store.record(cid, day + 1, INT32_MAX)
        clock.advance(DAY)
    total = sum(range(1, 31))
    # 30 days after the first record: the first day's tokens are at most one bucket from leaving.
    clock.advance(BUCKET)
    assert (await store.read(cid, INT32_MAX)).tokens_used == total - 1
    clock.advance(DAY)
    assert (await store.read(cid, INT32_MAX)).tokens_used == total - 1 - 2
    clock.advance(40 * DAY)
    assert (await store.read(cid, INT32_MAX)).tokens_used == 0
    await store.record(cid, 5, INT32_MAX)
    assert (await store.read(cid, INT32_MAX)).tokens_used == 5


async def test_a_limit_of_zero_allows_nothing(make_store: StoreFactory) -> None:
    store, cid = make_store(), company()
    snap = await store.read(cid, 0)
    assert not snap.is_within_budget
    assert snap.tokens_remaining == 0
    assert snap.frees_at == float("inf")
    reservation = await store.reserve(cid, 1, 0)
    assert not reservation.granted


async def test_the_largest_int32_limit(make_store: StoreFactory) -> None:
    store, cid = make_store(), company()
    snap = (await store.record(cid, INT32_MAX - 1, INT32_MAX)).snapshot
    assert snap.is_within_budget and snap.tokens_remaining == 1
    snap = (await store.record(cid, 1, INT32_MAX)).snapshot
    assert not snap.is_within_budget and snap.tokens_remaining == 0


async def test_int64_sized_totals_are_exact(make_store: StoreFactory) -> None:
    store, cid = make_store(), company()
    big = 2**53 + 1  # beyond what a double (Lua's number) holds exactly
    await store.record(cid, big, 1000)
    snap = (await store.record(cid, big, 1000)).snapshot
    assert snap.tokens_used == 2 * big
    assert snap.tokens_remaining == 0


async def test_a_total_beyond_int64_is_refused_and_writes_nothing(
    make_store: StoreFactory,
) -> None:
    store, cid = make_store(), company()
    await store.record(cid, INT64_MAX - 10, 1000)
    with pytest.raises(UsageOverflow):
        await store.record(cid, 11, 1000)
    assert (await store.read(cid, 1000)).tokens_used == INT64_MAX - 10


async def test_companies_are_kept_apart(make_store: StoreFactory) -> None:
    store = make_store()
    companies = [company() for _ in range(20)]
    for i, cid in enumerate(companies):
        await store.record(cid, i + 1, 1000)
    for i, cid in enumerate(companies):
        assert (await store.read(cid, 1000)).tokens_used == i + 1
    assert (await store.read(company(), 1000)).tokens_used == 0


async def test_frees_at_is_when_enough_old_usage_leaves(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    store, cid = make_store(W30), company()
    first = clock()
    await store.record(cid, 60, 100)
    clock.advance(2 * DAY)
    second = clock()
    snap = (await store.record(cid, 60, 100)).snapshot
    assert not snap.is_within_budget
    # 120 used, limit 100: dropping the first 60 is enough.
    assert snap.frees_at == W30.expiry_of(W30.bucket_of(first))
    assert first + W30.seconds <= snap.frees_at <= first + W30.seconds + BUCKET
    await store.record(cid, 60, 100)  # 180: both older records must leave
    snap = await store.read(cid, 100)
    assert snap.frees_at == W30.expiry_of(W30.bucket_of(second))
    clock.set(snap.frees_at - 0.001)
    assert not (await store.read(cid, 100)).is_within_budget
    clock.set(snap.frees_at)
    assert (await store.read(cid, 100)).is_within_budget


async def test_reserve_holds_only_what_fits(make_store: StoreFactory) -> None:
    store, cid = make_store(), company()
    granted = [await store.reserve(cid, 30, 100) for _ in range(4)]
    assert [r.granted for r in granted] == [True, True, True, False]
    assert granted[2].snapshot.tokens_reserved == 90
    assert (await store.read(cid, 100)).tokens_used == 0, "a hold is not usage"
    assert (await store.reserve(cid, 10, 100)).granted
    assert not (await store.reserve(cid, 1, 100)).granted


async def test_settle_records_the_actual_cost_once(make_store: StoreFactory) -> None:
    store, cid = make_store(), company()
    hold = await store.reserve(cid, 50, 100)
    snap = await store.settle(hold, 20, 100)
    assert snap.tokens_used == 20 and snap.tokens_reserved == 0
    again = await store.settle(hold, 20, 100)
    assert again.tokens_used == 20, "settling twice must not count twice"
    assert (await store.reserve(cid, 80, 100)).granted


async def test_release_frees_the_hold(make_store: StoreFactory) -> None:
    store, cid = make_store(), company()
    hold = await store.reserve(cid, 100, 100)
    assert not (await store.reserve(cid, 1, 100)).granted
    snap = await store.release(hold, 100)
    assert snap.tokens_reserved == 0 and snap.tokens_used == 0
    assert (await store.reserve(cid, 100, 100)).granted


async def test_an_abandoned_reservation_lapses(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    store, cid = make_store(reservation_ttl=60.0), company()
    assert (await store.reserve(cid, 100, 100)).granted
    clock.advance(59)
    assert not (await store.reserve(cid, 1, 100)).granted
    clock.advance(2)
    assert (await store.reserve(cid, 100, 100)).granted, "a crashed worker pinned the budget"


async def test_settling_a_lapsed_reservation_still_records_usage(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    store, cid = make_store(reservation_ttl=60.0), company()
    hold = await store.reserve(cid, 100, 1000)
    clock.advance(120)
    snap = await store.settle(hold, 70, 1000)
    assert snap.tokens_used == 70 and snap.tokens_reserved == 0


async def test_a_dedupe_key_records_once_and_replays_the_first_answer(
    make_store: StoreFactory,
) -> None:
    store, cid = make_store(), company()
    key = Dedupe("caller:retry-1", "fp-a")
    first = await store.record(cid, 100, 1000, dedupe=key)
    await store.record(cid, 5, 1000)
    again = await store.record(cid, 100, 1000, dedupe=key)
    assert again.replayed and not first.replayed
    assert again.snapshot.tokens_used == 100, "the retry answers with the first response"
    assert (await store.read(cid, 1000)).tokens_used == 105
    with pytest.raises(IdempotencyConflict):
        await store.record(cid, 7, 1000, dedupe=Dedupe("caller:retry-1", "fp-b"))
    assert (await store.read(cid, 1000)).tokens_used == 105


async def test_a_dedupe_key_is_per_company_and_lapses(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    store, a, b = make_store(), company(), company()
    key = Dedupe("k", "fp", ttl=3600)
    await store.record(a, 1, 1000, dedupe=key)
    assert not (await store.record(b, 1, 1000, dedupe=key)).replayed
    clock.advance(3601)
    assert not (await store.record(a, 1, 1000, dedupe=key)).replayed
    assert (await store.read(a, 1000)).tokens_used == 2


async def test_concurrent_retries_of_one_key_count_once(make_store: StoreFactory) -> None:
    store, cid = make_store(), company()
    key = Dedupe("same", "fp")
    results = await asyncio.gather(*(store.record(cid, 10, 1000, dedupe=key) for _ in range(20)))
    assert sum(not r.replayed for r in results) == 1
    assert (await store.read(cid, 1000)).tokens_used == 10


async def test_a_clock_that_jumps_back_loses_nothing(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    store, cid = make_store(W30), company()
    await store.record(cid, 10, 1000)
    clock.advance(-5 * DAY)
    assert (await store.read(cid, 1000)).tokens_used == 10
    await store.record(cid, 5, 1000)
    clock.advance(5 * DAY)
    assert (await store.read(cid, 1000)).tokens_used == 15
    clock.advance(W30.seconds - 1)
    assert (await store.read(cid, 1000)).tokens_used == 15, (
        "usage recorded while the clock was back expired early"
    )


async def test_buckets_lists_live_usage_oldest_first(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    store, cid = make_store(W30), company()
    assert await store.buckets(cid) == []
    start = W30.bucket_of(clock()) * BUCKET
    await store.record(cid, 3, 1000)
    clock.advance(DAY)
    await store.record(cid, 4, 1000)
    await store.record(cid, 1, 1000)
    assert await store.buckets(cid) == [(float(start), 3), (float(start + DAY), 5)]
    clock.advance(W30.seconds)
    assert await store.buckets(cid) == [(float(start + DAY), 5)]


async def test_ping_answers(make_store: StoreFactory) -> None:
    await make_store().ping()
