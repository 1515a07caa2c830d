"""Cost of one record as a company's history grows: 1, 100 and 10,000 events spread over the
30-day window (an injected ManualClock places them), both stores. Flat means O(1).

Each history size gets its own company, filled once; then rounds of record calls at the time
of its newest event are timed per size, interleaved, and the medians compared. The timed
calls land in the newest bucket, as live traffic does; the work a call does to drop aged-out
buckets is amortized O(1) and is exercised by the fill itself.
"""

from __future__ import annotations

import asyncio
import time
from uuid import UUID, uuid4

import redis.asyncio as aioredis

from benchmarks.harness import Context, Figure, Target, Unavailable, ainterleave, median
from benchmarks.redis_keys import delete_prefixed
from budget_guard.budget.clock import ManualClock
from budget_guard.budget.window import Window
from budget_guard.stores import MemoryStore, RedisStore, UsageStore

GROUP = "history"

LIMIT = 10**15
TOKENS = 1_234
START = 1_700_000_000.0 + 1234.5
FLAT = Target.ratio("<=", 1.25)  # timing noise on a shared machine, not growth


def run(ctx: Context) -> list[Figure]:
    sizes = (1, 100, 10_000) if not ctx.smoke else (1, 10, 100)
    figures = [asyncio.run(_memory(ctx, sizes))]
    try:
        url = ctx.redis_url()
    except Unavailable as exc:
        figures.append(Figure.unavailable("Redis store: per-op cost vs history", "SKIP", str(exc)))
        return figures
    figures.append(asyncio.run(_redis(ctx, url, sizes)))
    return figures


async def _memory(ctx: Context, sizes: tuple[int, ...]) -> Figure:
    window = Window()
    clocks = {size: ManualClock(START) for size in sizes}
    # One store per size: each has its own clock, as each company has its own last event time.
    stores: dict[int, UsageStore] = {
        size: MemoryStore(window, clock=clocks[size]) for size in sizes
    }
    return await _measure(
        ctx, "memory store", window, sizes, clocks, stores, calls=ctx.size(20_000, 200)
    )


async def _redis(ctx: Context, url: str, sizes: tuple[int, ...]) -> Figure:
    window = Window()
    prefix = f"{ctx.key_prefix}history:"
    clocks = {size: ManualClock(START) for size in sizes}
    stores: dict[int, UsageStore] = {
        size: RedisStore.from_url(url, window, prefix=prefix, clock=clocks[size]) for size in sizes
    }
    try:
        return await _measure(
            ctx, "Redis store", window, sizes, clocks, stores, calls=ctx.size(1_000, 20)
        )
    finally:
        for store in stores.values():
            await store.aclose()
        admin = aioredis.Redis.from_url(url)
        await delete_prefixed(admin, prefix)
        await admin.aclose()


async def _measure(
    ctx: Context,
    label: str,
    window: Window,
    sizes: tuple[int, ...],
    clocks: dict[int, ManualClock],
    stores: dict[int, UsageStore],
    *,
    calls: int,
) -> Figure:
    companies: dict[int, UUID] = {}
    for size in sizes:
        company = companies[size] = uuid4()
        step = window.seconds / size
        for i in range(size):
            clocks[size].set(START + i * step)
            await stores[size].record(company, TOKENS, LIMIT)
    live = {size: len(await stores[size].buckets(companies[size])) for size in sizes}

    def timed(size: int):  # type: ignore[no-untyped-def]
        record, company = stores[size].record, companies[size]

        async def sample() -> float:
            start = time.perf_counter()
            for _ in range(calls):
                await record(company, TOKENS, LIMIT)
            return (time.perf_counter() - start) / calls * 1e6

        return sample

    samples = await ainterleave({_events(size): timed(size) for size in sizes}, ctx.size(11, 1))
    small, large = _events(sizes[0]), _events(sizes[-1])
    return Figure(
        f"{label}: per-op cost, {large} vs {small} of history",
        median(samples[large]),
        "µs",
        baseline=median(samples[small]),
        baseline_label=small,
        target=FLAT,
        detail={
            "median_us_by_history": {name: median(v) for name, v in samples.items()},
            "live_buckets_by_history": live,
            "calls_per_sample": calls,
            "samples": samples,
        },
    )


def _events(size: int) -> str:
    return f"{size:,} event{'s' if size != 1 else ''}"
