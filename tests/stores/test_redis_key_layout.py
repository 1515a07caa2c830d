"""What the Redis store writes for the bounds of issues 11 and 12: one key per object, one
sorted set per company for its caller-chosen idempotency keys, each expiring by itself."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from budget_guard.budget.clock import ManualClock
from budget_guard.budget.window import Window
from budget_guard.stores import Dedupe, RedisStore, StoreUnavailable


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_only_caller_chosen_keys_are_listed_and_the_list_expires(
    redis_url: str, raw: aioredis.Redis
) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}:"
    store = RedisStore.from_url(redis_url, Window(30), prefix=prefix, clock=ManualClock())
    company = uuid.uuid4()
    try:
        await store.record(company, 1, 100, dedupe=Dedupe("op:1", ttl=600))
        await store.record(company, 1, 100, dedupe=Dedupe("mine", ttl=60, bounded=True))
        await store.record(company, 1, 100, dedupe=Dedupe("mine-2", ttl=30, bounded=True))
        live = f"{prefix}{{{company}}}:kz"
        assert await raw.zcard(live) == 2
        assert 59_000 < await raw.pttl(live) <= 60_000  # as long as its longest-lived key
    finally:
        await store.aclose()


async def test_ownership_calls_on_a_redis_that_is_gone_are_store_unavailable() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0", Window(30), connect_timeout=0.2)
    try:
        with pytest.raises(StoreUnavailable):
            await store.remember_object(uuid.uuid4(), "file-1", 60)
        with pytest.raises(StoreUnavailable):
            await store.object_owner("file-1")
        with pytest.raises(StoreUnavailable):  # the batch forms too
            await store.remember_objects(uuid.uuid4(), ["file-1", "file-2"], 60)
        with pytest.raises(StoreUnavailable):
            await store.object_owners(["file-1", "file-2"])
    finally:
        await store.aclose()


async def test_an_unexpected_client_error_in_an_ownership_call_is_store_unavailable(
    redis_url: str,
) -> None:
    store = RedisStore.from_url(redis_url, Window(30), prefix=f"t{uuid.uuid4().hex[:6]}:")
    try:

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise AttributeError("'NoneType' object has no attribute 'writelines'")

        def broken_pipeline(*args: Any, **kwargs: Any) -> Any:  # the batch forms'
            raise AttributeError("'NoneType' object has no attribute 'writelines'")

        store.client.get = broken  # type: ignore[method-assign]
        store.client.pipeline = broken_pipeline  # type: ignore[method-assign]
        with pytest.raises(StoreUnavailable, match="AttributeError"):
            await store.object_owner("file-1")
        with pytest.raises(StoreUnavailable, match="AttributeError"):
            await store.object_owners(["file-1", "file-2"])
        with pytest.raises(StoreUnavailable, match="AttributeError"):
            await store.remember_objects(uuid.uuid4(), ["file-1", "file-2"], 60)
    finally:
        await store.aclose()


async def test_an_object_is_one_key_in_its_own_slot_with_its_ttl(
    redis_url: str, raw: aioredis.Redis
) -> None:
    """Alone or in a batch (where a repeated id is one key)."""
    prefix = f"t{uuid.uuid4().hex[:6]}:"
    store = RedisStore.from_url(redis_url, Window(30), prefix=prefix)
    owner = uuid.uuid4()
    try:
        await store.remember_object(owner, "file-abc", 3600)
        await store.remember_objects(owner, ["file-ghi", "resp_def", "file-ghi"], 3600)
        for object_id in ("file-abc", "file-ghi", "resp_def"):
            key = f"{prefix}obj:{{{object_id}}}"
            assert await raw.get(key) == owner.hex
            assert 3_590_000 < await raw.pttl(key) <= 3_600_000
        assert sorted(await raw.keys(f"{prefix}obj:*")) == [  # the duplicate: one key
            f"{prefix}obj:{{file-abc}}",
            f"{prefix}obj:{{file-ghi}}",
            f"{prefix}obj:{{resp_def}}",
        ]
        await raw.set(f"{prefix}obj:{{file-odd}}", "not a company")
        assert await store.object_owners(["file-odd", "resp_def"]) == [None, owner]
    finally:
        await store.aclose()


async def test_a_batch_is_one_pipeline_and_a_refused_command_is_store_unavailable(
    redis_url: str, raw: aioredis.Redis
) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}:"
    store = RedisStore.from_url(redis_url, Window(30), prefix=prefix)
    client = store.client
    executed: list[int] = []
    real_pipeline = client.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = real_pipeline(*args, **kwargs)
        real_execute = pipe.execute

        async def execute(*a: Any, **kw: Any) -> Any:
            executed.append(len(pipe.command_stack))
            return await real_execute(*a, **kw)

        pipe.execute = execute
        return pipe

    try:
        client.pipeline = counting_pipeline  # type: ignore[method-assign]
        owner = uuid.uuid4()
        ids = [f"file-{i}" for i in range(50)]
        await store.remember_objects(owner, ids, 60)
        assert await store.object_owners(ids) == [owner] * 50
        assert executed == [50, 50]  # one round trip each, one command per id
        await raw.hset(f"{prefix}obj:{{file-hash}}", "f", "v")  # GET on it: WRONGTYPE
        with pytest.raises(StoreUnavailable, match="redis refused object_owners"):
            await store.object_owners(["file-1", "file-hash"])
    finally:
        await store.aclose()
