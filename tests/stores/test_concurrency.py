"""Many tasks and several OS processes recording into one company end with the exact sum."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import uuid

from budget_guard.budget.window import Window
from budget_guard.stores import MemoryStore, RedisStore


async def _hammer(url: str, company: str, amounts: list[int]) -> None:
    store = RedisStore.from_url(url, Window(30), prefix="conc:")
    try:
        sem = asyncio.Semaphore(64)

        async def one(n: int) -> None:
            async with sem:
                await store.record(uuid.UUID(company), n, 1_000_000_000)

        await asyncio.gather(*(one(n) for n in amounts))
    finally:
        await store.aclose()


def _process_main(url: str, company: str, amounts: list[int]) -> None:
    asyncio.run(_hammer(url, company, amounts))


async def test_tasks_and_processes_record_the_exact_sum_on_redis(redis_url: str) -> None:
    company = str(uuid.uuid4())
    rng = random.Random(7)
    batches = [[rng.randint(0, 5000) for _ in range(1500)] for _ in range(3)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_main, args=(redis_url, company, b)) for b in batches[:2]]
    for p in procs:
        p.start()
    await _hammer(redis_url, company, batches[2])  # and this process at the same time
    for p in procs:
        await asyncio.to_thread(p.join, 60)
        assert p.exitcode == 0
    store = RedisStore.from_url(redis_url, Window(30), prefix="conc:")
    try:
        snap = await store.read(uuid.UUID(company), 1_000_000_000)
    finally:
        await store.aclose()
    assert snap.tokens_used == sum(map(sum, batches))


async def test_concurrent_tasks_on_the_memory_store_record_the_exact_sum() -> None:
    store, company = MemoryStore(Window(30)), uuid.uuid4()
    amounts = [random.randint(0, 5000) for _ in range(5000)]
    await asyncio.gather(*(store.record(company, n, 10**9) for n in amounts))
    assert (await store.read(company, 10**9)).tokens_used == sum(amounts)
