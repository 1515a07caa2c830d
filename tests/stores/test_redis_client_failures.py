"""A failure inside the Redis client library is a store outage, never an unexpected error.

redis-py's cluster client was seen raising ``AttributeError: 'NoneType' object has no
attribute 'writelines'`` when connections were dropped under a burst: escaping the store, it
became a 500 on the proxy path instead of fail-open's journal. Injected here into a real
client talking to a real Redis.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from budget_guard.stores import RedisStore, StoreUnavailable
from budget_guard.window import Window


async def test_an_unexpected_client_error_is_store_unavailable(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, Window(30), prefix=f"t{uuid.uuid4().hex[:6]}:")
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
