"""Memory per active company: memory store (tracemalloc) and Redis (MEMORY USAGE), with one
live bucket and with a full 30-day window of them at the default bucket.

A company's footprint is whatever the store keeps alive for it, so the memory store is
measured over many companies with tracemalloc (ring, account, cache entry, the UUID key)
and divided; Redis is asked directly with ``MEMORY USAGE <key> SAMPLES 0`` (exact, not
sampled) on each company's usage hash. (The server's ``used_memory`` growth is no use here:
client buffers shrinking in the background swamp a few hundred bytes per company.)
"""

from __future__ import annotations

import asyncio
import statistics
import tracemalloc
from collections.abc import Coroutine
from typing import Any
from uuid import UUID, uuid4

import redis.asyncio as aioredis

from benchmarks.harness import Context, Figure, Target, Unavailable
from benchmarks.redis_keys import delete_prefixed, server_version
from budget_guard.budget.clock import ManualClock
from budget_guard.budget.window import Window
from budget_guard.stores import MemoryStore, RedisStore

GROUP = "footprint"

LIMIT = 10**15
TOKENS = 12_345  # a realistic per-bucket size: it decides how Redis encodes the integers
TARGET = Target.value("<=", 8 * 1024, "B")
START = 1_700_000_000.0 + 1234.5  # mid-bucket, as real traffic is


def run(ctx: Context) -> list[Figure]:
    window = Window()
    shapes = {"1 bucket": 1, f"full window ({window.buckets + 1} buckets)": window.buckets + 1}
    figures = []
    companies = ctx.size(2_000, 20)
    for label, buckets in shapes.items():
        per_company = _memory_store_bytes(window, companies, buckets)
        figures.append(
            Figure(
                f"memory store bytes/company, {label}",
                per_company,
                "B",
                target=TARGET if buckets > 1 else None,
                detail={"companies": companies, "buckets": buckets, "method": "tracemalloc"},
            )
        )
    try:
        url = ctx.redis_url()
    except Unavailable as exc:
        figures.append(Figure.unavailable("Redis bytes/company", "SKIP", str(exc)))
        return figures
    redis_companies = ctx.size(200, 5)
    for label, buckets in shapes.items():
        figures.append(asyncio.run(_redis_bytes(ctx, url, window, redis_companies, buckets, label)))
    return figures


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (the memory store's) without an event loop, so the
    loop's own allocations stay out of the measurement."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended")


def _memory_store_bytes(window: Window, companies: int, buckets: int) -> float:
    clock = ManualClock(START)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = MemoryStore(window, clock=clock)
        for step in range(buckets):
            if step:
                clock.advance(window.bucket_seconds)
            for i in range(companies):
                # A fresh UUID each time, as each request parses its own: the store keeps the
                # first one as its key, so that one is part of the company's footprint.
                _drive(store.record(UUID(int=i + 1), TOKENS, LIMIT))
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    live = _drive(store.buckets(UUID(int=1)))
    if len(live) != buckets:
        raise AssertionError(f"expected {buckets} live buckets, found {len(live)}")
    return used / companies


_TASKS = 8


async def _record_all(store: RedisStore, ids: list[UUID]) -> None:
    """One record per company from a few tasks at a time: quicker than one by one, without
    opening a connection per company."""

    async def worker(offset: int) -> None:
        for cid in ids[offset::_TASKS]:
            await store.record(cid, TOKENS, LIMIT)

    await asyncio.gather(*(worker(offset) for offset in range(_TASKS)))


async def _redis_bytes(
    ctx: Context, url: str, window: Window, companies: int, buckets: int, label: str
) -> Figure:
    prefix = f"{ctx.key_prefix}fp{buckets}:"
    clock = ManualClock(START)
    store = RedisStore.from_url(url, window, prefix=prefix, clock=clock)
    admin = aioredis.Redis.from_url(url, decode_responses=True)
    ids = [uuid4() for _ in range(companies)]
    try:
        ctx.meta["redis_version"] = await server_version(admin)
        for step in range(buckets):
            if step:
                clock.advance(window.bucket_seconds)
            await _record_all(store, ids)
        live = await store.buckets(ids[0])
        if len(live) != buckets:
            raise AssertionError(f"expected {buckets} live buckets, found {len(live)}")
        keys = [f"{prefix}{{{cid}}}:u" for cid in ids]
        sizes = [await admin.memory_usage(key, samples=0) for key in keys]
        other = await admin.exists(
            *(f"{prefix}{{{cid}}}:{kind}" for cid in ids for kind in ("rt", "ra"))
        )
        encoding = await admin.object("encoding", keys[0])
        return Figure(
            f"Redis MEMORY USAGE/company, {label}",
            statistics.median(sizes),
            "B",
            target=TARGET if buckets > 1 else None,
            detail={
                "companies": companies,
                "buckets": buckets,
                "memory_usage_min_max": [min(sizes), max(sizes)],
                "hash_encoding": encoding,
                "reservation_keys_present": other,
            },
        )
    finally:
        await delete_prefixed(admin, prefix)
        await store.aclose()
        await admin.aclose()
