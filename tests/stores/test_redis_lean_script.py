"""The usage script over the lean transport (``stores/resp.py``), against a real redis-server:
a lost or late reply is a store outage and is never re-sent, a flushed script cache costs
nothing, and the store comes back by itself after Redis does."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import pytest
import redis.asyncio as aioredis

from budget_guard.budget.window import Window
from budget_guard.stores import Dedupe, RedisStore, StoreUnavailable
from budget_guard.stores.resp import LeanScript
from tests.redis_servers import RedisServer


def _store(url: str, *, socket_timeout: float = 2.0) -> RedisStore:
    store = RedisStore.from_url(
        url, Window(30), prefix=f"t{uuid.uuid4().hex[:6]}:", socket_timeout=socket_timeout
    )
    assert isinstance(store._lean, LeanScript)  # the default for a plain redis:// URL
    return store


async def test_a_reply_that_does_not_come_is_an_outage_and_the_call_is_not_sent_again() -> None:
    company = uuid.uuid4()
    with RedisServer() as redis:
        store = _store(redis.url, socket_timeout=0.3)
        try:
            await store.record(company, 1, 100)
            assert redis.proc is not None
            os.kill(redis.proc.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                retry = Dedupe("op:frozen", fingerprint="f")
                with pytest.raises(StoreUnavailable, match="redis unavailable"):
                    await store.record(company, 10, 100, dedupe=retry)
                assert time.monotonic() - started < 1.5
            finally:
                os.kill(redis.proc.pid, signal.SIGCONT)
            # Whether Redis ran the frozen call when it woke is unknown to the client; the
            # caller's retry with the same key makes it count exactly once either way.
            await store.record(company, 10, 100, dedupe=retry)
            assert (await store.read(company, 100)).tokens_used == 11
        finally:
            await store.aclose()


async def test_a_flushed_script_cache_is_reloaded_and_counts_once(redis_url: str) -> None:
    company = uuid.uuid4()
    store = _store(redis_url)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await store.record(company, 5, 100)
        await admin.script_flush()
        await store.record(company, 5, 100)
        assert (await store.read(company, 100)).tokens_used == 10
    finally:
        await admin.aclose()
        await store.aclose()


async def test_after_redis_comes_back_the_store_answers_again() -> None:
    company = uuid.uuid4()
    with RedisServer() as redis:
        store = _store(redis.url)
        try:
            await asyncio.gather(*(store.record(company, 1, 100) for _ in range(4)))
            redis.kill()
            with pytest.raises(StoreUnavailable):
                await store.record(company, 1, 100)
            redis.start()
            await asyncio.sleep(0.1)
            result = await store.record(company, 1, 100)
            assert result.snapshot.tokens_used == 1  # the data went with the killed server
        finally:
            await store.aclose()


async def test_concurrent_records_are_each_counted_exactly_once(redis_url: str) -> None:
    companies = [uuid.uuid4() for _ in range(4)]
    store = _store(redis_url)
    try:
        await asyncio.gather(*(store.record(companies[i % 4], i + 1, 10**12) for i in range(400)))
        totals = [(await store.read(c, 10**12)).tokens_used for c in companies]
        assert totals == [sum(i + 1 for i in range(400) if i % 4 == k) for k in range(4)]
    finally:
        await store.aclose()


async def test_a_password_and_database_in_the_url_are_used() -> None:
    with RedisServer() as redis:
        admin = aioredis.Redis.from_url(redis.url)
        await admin.config_set("requirepass", "s3cret")
        await admin.aclose()
        url = f"redis://:s3cret@127.0.0.1:{redis.port}/3"
        store = _store(url)
        company = uuid.uuid4()
        try:
            await store.record(company, 7, 100)
            check = aioredis.Redis.from_url(url)
            try:
                assert await check.dbsize() > 0
            finally:
                await check.aclose()
            assert (await store.read(company, 100)).tokens_used == 7
        finally:
            await store.aclose()


def test_a_store_used_from_one_event_loop_then_another_keeps_working(redis_url: str) -> None:
    """``budget-guard`` checks the store in one ``asyncio.run`` and serves in another; a
    connection left on the first loop must not be used on the second."""
    store = _store(redis_url)
    company = uuid.uuid4()
    asyncio.run(store.record(company, 2, 100))

    async def second() -> int:
        try:
            return (await store.record(company, 3, 100)).snapshot.tokens_used
        finally:
            await store.aclose()

    assert asyncio.run(second()) == 5
