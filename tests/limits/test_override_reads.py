"""The request path reads a company's run-time override once per cache period, however many
of its requests arrive together: a burst must not queue one Redis round trip per request."""

from __future__ import annotations

import asyncio
import uuid

from budget_guard.budget.overrides import OverrideReader
from budget_guard.budget.window import Window
from budget_guard.stores import RedisStore


async def test_a_burst_of_first_requests_reads_the_override_once(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, Window(30), prefix=f"ovr-{uuid.uuid4().hex[:8]}:")
    company = uuid.uuid4()
    reads = 0
    read = store.limit_override

    async def counted(company_id: uuid.UUID) -> int | None:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.05)  # a slow store: every request of the burst arrives meanwhile
        return await read(company_id)

    try:
        await store.set_limit_override(company, 1234)
        store.limit_override = counted  # type: ignore[method-assign]
        reader = OverrideReader(store)
        answers = await asyncio.gather(*(reader.get(company) for _ in range(200)))
        assert answers == [1234] * 200
        assert reads == 1
        assert await reader.get(company) == 1234 and reads == 1  # cached now
    finally:
        await store.aclose()
