"""Per-company bounds on live idempotency keys (issue 12, item 6), on every store.

A company at its bound is refused a *new* caller-chosen key, and only that company: keys it
already holds still replay, records without a key still land, and every other company keeps
minting keys. The system's own keys (``bounded=False``: the guard's retry and settle keys)
are neither counted nor refused, since refusing one would drop real usage.
"""

from __future__ import annotations

import uuid

import pytest

from budget_guard.budget.clock import ManualClock
from budget_guard.stores import Dedupe, IdempotencyConflict, IdempotencyKeysExhausted

from .conftest import StoreFactory

BOUND = 3
TTL = 100.0


def key(name: str, fingerprint: str = "fp") -> Dedupe:
    return Dedupe(name, fingerprint, TTL, bounded=True)


async def test_a_company_at_its_bound_is_refused_a_new_key_and_no_one_else_is(
    make_store: StoreFactory,
) -> None:
    store = make_store(max_idempotency_keys_per_company=BOUND)
    a, b = uuid.uuid4(), uuid.uuid4()
    for i in range(BOUND):
        await store.record(a, 10, 1000, dedupe=key(f"k{i}"))
    with pytest.raises(IdempotencyKeysExhausted) as refused:
        await store.record(a, 10, 1000, dedupe=key("one-more"))
    assert refused.value.bound == BOUND
    assert (await store.read(a, 1000)).tokens_used == 30  # the refused call recorded nothing
    # A retry of a key the company holds is still answered, and counted once.
    retry = await store.record(a, 10, 1000, dedupe=key("k0"))
    assert retry.replayed
    # A record without a key still lands, and a reused key is still a conflict, not a 429.
    assert (await store.record(a, 5, 1000)).snapshot.tokens_used == 35
    with pytest.raises(IdempotencyConflict):
        await store.record(a, 11, 1000, dedupe=key("k1", "other"))
    # Another company, even with the very same key names, is not affected.
    for i in range(BOUND):
        result = await store.record(b, 1, 1000, dedupe=key(f"k{i}"))
        assert not result.replayed
    assert (await store.read(b, 1000)).tokens_used == BOUND


async def test_the_bound_frees_as_keys_lapse_and_says_when(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    store = make_store(max_idempotency_keys_per_company=BOUND)
    a = uuid.uuid4()
    await store.record(a, 1, 1000, dedupe=key("oldest"))
    clock.advance(30)
    for i in range(BOUND - 1):
        await store.record(a, 1, 1000, dedupe=key(f"k{i}"))
    with pytest.raises(IdempotencyKeysExhausted) as refused:
        await store.record(a, 1, 1000, dedupe=key("new"))
    assert refused.value.retry_after == pytest.approx(TTL - 30, abs=1)
    clock.advance(TTL - 30)  # the oldest key lapses: room for exactly one more
    assert not (await store.record(a, 1, 1000, dedupe=key("new"))).replayed
    with pytest.raises(IdempotencyKeysExhausted):
        await store.record(a, 1, 1000, dedupe=key("newer"))


async def test_a_key_used_again_after_it_lapsed_counts_once(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    store = make_store(max_idempotency_keys_per_company=2)
    a = uuid.uuid4()
    await store.record(a, 1, 1000, dedupe=key("x"))
    await store.record(a, 1, 1000, dedupe=key("y"))
    clock.advance(TTL + 1)
    await store.record(a, 1, 1000, dedupe=key("x"))
    await store.record(a, 1, 1000, dedupe=key("y"))
    with pytest.raises(IdempotencyKeysExhausted):
        await store.record(a, 1, 1000, dedupe=key("z"))
    assert (await store.read(a, 1000)).tokens_used == 4


async def test_system_keys_are_neither_counted_nor_refused(make_store: StoreFactory) -> None:
    store = make_store(max_idempotency_keys_per_company=BOUND)
    a = uuid.uuid4()
    for i in range(2 * BOUND):  # the guard's retry keys: one per request
        await store.record(a, 1, 1000, dedupe=Dedupe(f"op:{i}", "", TTL))
    for i in range(BOUND):  # they took none of the company's allowance
        await store.record(a, 1, 1000, dedupe=key(f"k{i}"))
    # At the bound, system keys and settles still record: usage that happened is never lost.
    await store.record(a, 1, 1000, dedupe=Dedupe("op:late", "", TTL))
    hold = await store.reserve(a, 50, 1000)
    assert hold.granted
    assert (await store.settle(hold, 7, 1000)).tokens_used == 2 * BOUND + BOUND + 1 + 7
