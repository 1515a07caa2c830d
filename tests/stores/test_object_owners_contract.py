"""The object-ownership registry (issue 11), on every store: which company created which
upstream object, so that a company reaches only its own files, responses, vector stores...

First owner wins, an entry lapses after its ttl, and object ids (untrusted upstream strings)
are bounded before they become keys.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from budget_guard.budget.clock import ManualClock
from budget_guard.budget.ledger import Ledger
from budget_guard.observability.metrics import PrometheusEvents, instrument_ledger
from budget_guard.stores import MAX_OBJECT_ID_CHARS

from .conftest import StoreFactory

DAY = 86_400.0


async def test_an_object_belongs_to_the_company_that_created_it(make_store: StoreFactory) -> None:
    store = make_store()
    a, b = uuid.uuid4(), uuid.uuid4()
    await store.remember_object(a, "file-abc123", 30 * DAY)
    await store.remember_object(b, "resp_0123456789abcdef", 30 * DAY)
    assert await store.object_owner("file-abc123") == a
    assert await store.object_owner("resp_0123456789abcdef") == b
    assert await store.object_owner("file-never-seen") is None


async def test_the_first_owner_wins(make_store: StoreFactory) -> None:
    store = make_store()
    a, b = uuid.uuid4(), uuid.uuid4()
    await store.remember_object(a, "vs_shared", 30 * DAY)
    await store.remember_object(b, "vs_shared", 30 * DAY)  # a takeover attempt: ignored
    await store.remember_object(a, "vs_shared", 30 * DAY)  # the owner again: still a
    assert await store.object_owner("vs_shared") == a


async def test_concurrent_claims_leave_exactly_one_owner(make_store: StoreFactory) -> None:
    store = make_store()
    companies = [uuid.uuid4() for _ in range(20)]
    await asyncio.gather(*(store.remember_object(c, "batch_race", DAY) for c in companies))
    owner = await store.object_owner("batch_race")
    assert owner in companies
    for _ in range(3):
        assert await store.object_owner("batch_race") == owner


async def test_ownership_lapses_after_its_ttl(make_store: StoreFactory, clock: ManualClock) -> None:
    # Redis expires by its own clock, the memory store by the store's: let both pass.
    store = make_store()
    a, b = uuid.uuid4(), uuid.uuid4()
    await store.remember_object(a, "thread_short", 0.05)
    await store.remember_object(a, "thread_long", DAY)
    clock.advance(1)
    await asyncio.sleep(0.15)
    assert await store.object_owner("thread_short") is None
    assert await store.object_owner("thread_long") == a
    await store.remember_object(b, "thread_short", DAY)  # a lapsed id is free again
    assert await store.object_owner("thread_short") == b


async def test_ids_that_look_like_key_syntax_stay_distinct(make_store: StoreFactory) -> None:
    store = make_store()
    ids = ["a}b", "a}c", "{x}", "}", "{", "file:1", "file:1:", "x" * MAX_OBJECT_ID_CHARS]
    owners = {object_id: uuid.uuid4() for object_id in ids}
    for object_id, owner in owners.items():
        await store.remember_object(owner, object_id, DAY)
    for object_id, owner in owners.items():
        assert await store.object_owner(object_id) == owner


@pytest.mark.parametrize(
    "object_id",
    ["", "x" * (MAX_OBJECT_ID_CHARS + 1), "file abc", "file-\n", "file-\x00", "fïle", 42, None],
)
async def test_an_unusable_object_id_is_refused(
    make_store: StoreFactory, object_id: object
) -> None:
    store = make_store()
    with pytest.raises(ValueError, match="object id"):
        await store.remember_object(uuid.uuid4(), object_id, DAY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="object id"):
        await store.object_owner(object_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan"), True, "60"])
async def test_an_unusable_ttl_is_refused(make_store: StoreFactory, ttl: object) -> None:
    store = make_store()
    with pytest.raises(ValueError, match="ttl"):
        await store.remember_object(uuid.uuid4(), "file-1", ttl)  # type: ignore[arg-type]
    assert await store.object_owner("file-1") is None


async def test_the_ledger_and_its_metrics_pass_ownership_through(
    make_store: StoreFactory,
) -> None:
    metrics = PrometheusEvents()
    ledger = instrument_ledger(Ledger(make_store()), metrics)
    a = uuid.uuid4()
    await ledger.remember_object(a, "file-via-ledger", DAY)
    assert await ledger.object_owner("file-via-ledger") == a
    exposition = metrics.exposition().decode()
    assert 'operation="remember_object"' in exposition
    assert 'operation="object_owner"' in exposition
