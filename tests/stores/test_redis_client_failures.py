"""A failure inside the Redis client library is a store outage, never an unexpected error.

redis-py's cluster client was seen raising ``AttributeError: 'NoneType' object has no
attribute 'writelines'`` when connections were dropped under a burst: escaping the store, it
became a 500 on the proxy path instead of fail-open's journal. Injected here into a real
client talking to a real Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from typing import Any

import pytest

from budget_guard.budget.window import Window
from budget_guard.stores import RedisStore, StoreUnavailable
from tests.redis_servers import RedisServer


async def test_an_unexpected_client_error_is_store_unavailable(redis_url: str) -> None:
    # redis-py itself (the cluster and rediss:// path): the lean script transport has its own
    # failure tests in test_redis_lean_script.py.
    store = RedisStore.from_url(
        redis_url, Window(30), prefix=f"t{uuid.uuid4().hex[:6]}:", lean_script=False
    )
    company = uuid.uuid4()
    try:
        await store.record(company, 5, 100)

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise AttributeError("'NoneType' object has no attribute 'writelines'")

        store.client.evalsha = broken  # type: ignore[method-assign]
        with pytest.raises(StoreUnavailable, match="AttributeError"):
            await store.record(company, 5, 100)
        del store.client.evalsha  # the client's own method again
        assert (await store.read(company, 100)).tokens_used == 5
    finally:
        await store.aclose()


async def test_calls_past_the_in_flight_cap_wait_then_give_up_as_store_unavailable() -> None:
    """With every slot held by a call to a frozen Redis, the next call waits its turn for
    ``in_flight_wait`` seconds, then reports the store as unavailable (a 503 or a journal
    entry), never hangs."""
    with RedisServer() as redis:
        store = RedisStore.from_url(
            redis.url, Window(30), socket_timeout=2.0, max_in_flight=1, in_flight_wait=0.2
        )
        company = uuid.uuid4()
        try:
            await store.record(company, 1, 100)
            assert redis.proc is not None
            os.kill(redis.proc.pid, signal.SIGSTOP)
            try:
                holder = asyncio.create_task(store.record(company, 1, 100))
                await asyncio.sleep(0.05)
                started = time.monotonic()
                with pytest.raises(StoreUnavailable, match="every connection stayed busy"):
                    await store.record(company, 1, 100)
                assert time.monotonic() - started < 1.0
            finally:
                os.kill(redis.proc.pid, signal.SIGCONT)
            await holder
            assert (await store.read(company, 100)).tokens_used == 2
        finally:
            await store.aclose()
