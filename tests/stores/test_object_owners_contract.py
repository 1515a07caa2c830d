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


# -- the batch forms: one store round trip for a request naming many objects ---------------


async def test_a_batch_remembered_is_answered_in_the_order_asked(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    a, b = uuid.uuid4(), uuid.uuid4()
    await store.remember_objects(a, ["file-1", "file-2", "resp_3"], DAY)
    await store.remember_objects(b, ["vs_4"], DAY)
    asked = ["resp_3", "file-never-seen", "vs_4", "file-1", "file-2", "file-1"]
    assert await store.object_owners(asked) == [a, None, b, a, a, a]
    assert await store.object_owners(("file-2",)) == [a]  # any sequence


async def test_the_first_owner_wins_through_the_batch_form(make_store: StoreFactory) -> None:
    store = make_store()
    a, b = uuid.uuid4(), uuid.uuid4()
    await store.remember_objects(a, ["vs_a1", "vs_a2"], DAY)
    await store.remember_objects(b, ["vs_a1", "vs_a2"], DAY)  # a takeover attempt: ignored
    assert await store.object_owners(["vs_a1", "vs_a2"]) == [a, a]
    # Mixed: some ids already a's, some new (b gets only the new ones), one twice.
    await store.remember_objects(b, ["vs_a2", "vs_b1", "vs_a1", "vs_b2", "vs_b1"], DAY)
    assert await store.object_owners(["vs_a1", "vs_a2", "vs_b1", "vs_b2"]) == [a, a, b, b]
    await store.remember_object(a, "vs_b1", DAY)  # the singular form cannot take one either
    assert await store.object_owner("vs_b1") == b


async def test_the_batch_form_does_not_extend_a_live_owners_ttl(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    store = make_store()
    a = uuid.uuid4()
    await store.remember_objects(a, ["thread_b1"], 0.05)
    await store.remember_objects(a, ["thread_b1", "thread_b2"], DAY)  # b1: unchanged
    clock.advance(1)
    await asyncio.sleep(0.15)
    assert await store.object_owners(["thread_b1", "thread_b2"]) == [None, a]


@pytest.mark.parametrize(
    "bad_id",
    ["", "x" * (MAX_OBJECT_ID_CHARS + 1), "file abc", "file-\n", "fïle", 42, None],
)
@pytest.mark.parametrize("at", [0, 1, 2])
async def test_a_bad_id_anywhere_refuses_the_whole_batch(
    make_store: StoreFactory, bad_id: object, at: int
) -> None:
    store = make_store()
    batch: list[object] = ["file-ok-1", "file-ok-2"]
    batch.insert(at, bad_id)
    with pytest.raises(ValueError, match="object id"):
        await store.remember_objects(uuid.uuid4(), batch, DAY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="object id"):
        await store.object_owners(batch)  # type: ignore[arg-type]
    # Nothing was written: the valid ids of the refused batch are still unknown.
    assert await store.object_owners(["file-ok-1", "file-ok-2"]) == [None, None]
    assert await store.object_owner("file-ok-1") is None


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan"), True, "60"])
async def test_a_bad_ttl_refuses_the_whole_batch(make_store: StoreFactory, ttl: object) -> None:
    store = make_store()
    with pytest.raises(ValueError, match="ttl"):
        await store.remember_objects(uuid.uuid4(), ["file-1", "file-2"], ttl)  # type: ignore[arg-type]
    assert await store.object_owners(["file-1", "file-2"]) == [None, None]


async def test_one_id_string_is_not_a_batch_of_characters(make_store: StoreFactory) -> None:
    store = make_store()
    with pytest.raises(ValueError, match="object id"):
        await store.remember_objects(uuid.uuid4(), "file-1", DAY)
    with pytest.raises(ValueError, match="object id"):
        await store.object_owners("file-1")
    assert await store.object_owners(["f", "i", "file-1"]) == [None, None, None]


async def test_empty_batches_do_nothing(make_store: StoreFactory) -> None:
    store = make_store()
    await store.remember_objects(uuid.uuid4(), [], DAY)
    assert await store.object_owners([]) == []
    assert await store.object_owners(()) == []


async def test_the_batch_and_singular_forms_agree(make_store: StoreFactory) -> None:
    store = make_store()
    a, b = uuid.uuid4(), uuid.uuid4()
    ids = ["a}b", "{x}", "file:1", "x" * MAX_OBJECT_ID_CHARS, "resp_singular"]
    await store.remember_objects(a, ids[:4], DAY)
    await store.remember_object(b, ids[4], DAY)
    await store.remember_object(b, ids[0], DAY)  # already a's through the batch
    owners = await store.object_owners([*ids, "unknown"])
    assert owners == [await store.object_owner(i) for i in [*ids, "unknown"]]
    assert owners == [a, a, a, a, b, None]


async def test_concurrent_batch_claims_leave_exactly_one_owner_per_id(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    companies = [uuid.uuid4() for _ in range(20)]
    ids = [f"batch_race_{i}" for i in range(5)]
    await asyncio.gather(*(store.remember_objects(c, ids, DAY) for c in companies))
    owners = await store.object_owners(ids)
    assert all(owner in companies for owner in owners)
    assert await store.object_owners(ids) == owners


async def test_many_ids_across_cluster_slots_in_one_batch(make_store: StoreFactory) -> None:
    # On a cluster, 200 ids hash to slots on every master: the pipeline routes per node.
    store = make_store()
    a, b = uuid.uuid4(), uuid.uuid4()
    ids = [f"file-{i:04d}" for i in range(200)]
    await store.remember_objects(a, ids[::2], DAY)
    await store.remember_objects(b, ids, DAY)
    assert await store.object_owners(ids) == [a if i % 2 == 0 else b for i in range(200)]


async def test_the_ledger_and_its_metrics_pass_batch_ownership_through(
    make_store: StoreFactory,
) -> None:
    metrics = PrometheusEvents()
    ledger = instrument_ledger(Ledger(make_store()), metrics)
    a = uuid.uuid4()
    await ledger.remember_objects(a, ["file-l1", "file-l2"], DAY)
    assert await ledger.object_owners(["file-l2", "file-l3", "file-l1"]) == [a, None, a]
    exposition = metrics.exposition().decode()
    assert 'operation="remember_objects"' in exposition
    assert 'operation="object_owners"' in exposition
