"""Every store keeps the raw-token breakdown in the same buckets as the budget (see conftest)."""

from __future__ import annotations

import uuid

import pytest

from budget_guard.budget.clock import ManualClock
from budget_guard.budget.window import INT64_MAX, Window
from budget_guard.stores import Dedupe
from budget_guard.stores.base import BREAKDOWN_KINDS

from .conftest import StoreFactory

W30 = Window(30)
NOTHING = dict.fromkeys(BREAKDOWN_KINDS, 0)


def company() -> uuid.UUID:
    return uuid.uuid4()


async def test_a_company_with_no_usage_has_an_empty_breakdown(make_store: StoreFactory) -> None:
    assert await make_store().breakdown(company()) == NOTHING


async def test_records_add_up_by_kind_next_to_the_budget(make_store: StoreFactory) -> None:
    store, cid = make_store(), company()
    first = {"input": 10_000, "cached_input": 8_192, "output": 500, "reasoning": 128}
    await store.record(cid, 4_628, 1_000_000, breakdown=first)
    await store.record(cid, 278, 1_000_000, breakdown={"input": 10_000, "output": 500})
    await store.record(cid, 7, 1_000_000)  # the usage endpoint: tokens only
    assert (await store.read(cid, 1_000_000)).tokens_used == 4_628 + 278 + 7
    assert await store.breakdown(cid) == {
        **NOTHING,
        "input": 20_000,
        "cached_input": 8_192,
        "output": 1_000,
        "reasoning": 128,
    }


async def test_a_replayed_record_adds_no_breakdown(make_store: StoreFactory) -> None:
    store, cid = make_store(), company()
    dedupe = Dedupe("op:1", "x")
    for _ in range(2):
        await store.record(cid, 5, 100, dedupe=dedupe, breakdown={"cache_write": 3})
    assert (await store.breakdown(cid))["cache_write"] == 3


async def test_a_settle_records_its_breakdown_once(make_store: StoreFactory) -> None:
    store, cid = make_store(), company()
    held = await store.reserve(cid, 100, 1_000)
    for _ in range(2):
        await store.settle(held, 40, 1_000, breakdown={"input": 30, "cache_read": 20})
    assert (await store.breakdown(cid))["cache_read"] == 20
    assert (await store.read(cid, 1_000)).tokens_used == 40


async def test_the_breakdown_leaves_the_window_with_its_bucket(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    store, cid = make_store(W30), company()
    await store.record(cid, 10, 100, breakdown={"output": 10})
    clock.advance(W30.seconds / 2)
    await store.record(cid, 3, 100, breakdown={"output": 3})
    clock.advance(W30.seconds / 2 + W30.bucket_seconds)
    assert (await store.breakdown(cid))["output"] == 3, "read before the store moved"
    await store.record(cid, 1, 100, breakdown={"input": 1})
    assert await store.breakdown(cid) == {**NOTHING, "output": 3, "input": 1}
    assert (await store.read(cid, 100)).tokens_used == 4
    clock.advance(2 * W30.seconds)
    await store.record(cid, 2, 100, breakdown={"input": 2})
    assert await store.breakdown(cid) == {**NOTHING, "input": 2}


async def test_a_kind_that_would_pass_int64_does_not_refuse_the_record(
    make_store: StoreFactory,
) -> None:
    store, cid = make_store(), company()
    await store.record(cid, 1, 100, breakdown={"input": INT64_MAX})
    result = await store.record(cid, 1, 100, breakdown={"input": 5, "output": 5})
    assert result.snapshot.tokens_used == 2
    assert (await store.breakdown(cid))["output"] == 5


@pytest.mark.parametrize(
    "breakdown", [{"thoughts": 1}, {"input": -1}, {"input": 1.5}, {"output": True}]
)
async def test_a_bad_breakdown_is_refused_and_records_nothing(
    make_store: StoreFactory, breakdown: dict[str, object]
) -> None:
    store, cid = make_store(), company()
    with pytest.raises(ValueError):
        await store.record(cid, 5, 100, breakdown=breakdown)  # type: ignore[arg-type]
    assert (await store.read(cid, 100)).tokens_used == 0
