"""Store record throughput: Redis store vs a plain INCRBY, memory store vs a dict increment.

The Redis store's price is one EVALSHA of ``usage.lua`` per record; the floor any Redis
counter pays is one round trip of the cheapest write, ``INCRBY``, from the same
``redis.asyncio`` client over the same connections at the same concurrency. The ratio is
what the store's atomicity (bucket ring, expiry, snapshot) costs on top of that floor. The
round-trip claim is checked on the server itself: ``INFO commandstats`` before and after a
known number of records.

The memory store is measured in process, awaited in a loop the way the middleware awaits
it; its baseline is the same loop awaiting a coroutine that only increments a dict, so the
ratio isolates the store's own work from the cost of an ``await``.

A record that carries a raw-token breakdown (what the guard writes for a metered response: input,
cached input, output, reasoning) is measured against a record without one, in the same run, in
both stores; its round trips are counted like the plain record's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID, uuid4

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

from benchmarks.harness import (
    Context,
    Figure,
    Target,
    Unavailable,
    ainterleave,
    comparison,
    concurrent_rate,
)
from benchmarks.redis_keys import calls_delta, command_calls, delete_prefixed, server_version
from budget_guard.budget.window import Window
from budget_guard.stores import MemoryStore, RedisStore

GROUP = "stores"

LIMIT = 10**15  # never reached: the common, within-budget path
TOKENS = 1_234
COMPANIES = 1_000  # the memory store cycles through this many, as a busy worker does
BREAKDOWN = {"input": 1_000, "cached_input": 768, "output": 234, "reasoning": 64}


def run(ctx: Context) -> list[Figure]:
    figures = [asyncio.run(_memory_store(ctx)), asyncio.run(_memory_breakdown(ctx))]
    try:
        url = ctx.redis_url()
    except Unavailable as exc:
        figures.append(Figure.unavailable("Redis store record ops/s", "SKIP", str(exc)))
        return figures
    figures.extend(asyncio.run(_redis_store(ctx, url)))
    return figures


# -- memory store ------------------------------------------------------------------------------


async def _memory_store(ctx: Context) -> Figure:
    ops = ctx.size(200_000, 2_000)
    companies = [uuid4() for _ in range(COMPANIES)]
    store = MemoryStore(Window())
    counts: dict[UUID, int] = {}

    async def dict_increment(company_id: UUID, tokens: int, limit: int) -> None:
        counts[company_id] = counts.get(company_id, 0) + tokens

    async def store_loop() -> float:
        record = store.record
        start = time.perf_counter()
        for i in range(ops):
            await record(companies[i % COMPANIES], TOKENS, LIMIT)
        return ops / (time.perf_counter() - start)

    async def dict_loop() -> float:
        start = time.perf_counter()
        for i in range(ops):
            await dict_increment(companies[i % COMPANIES], TOKENS, LIMIT)
        return ops / (time.perf_counter() - start)

    samples = await ainterleave(
        {"memory store": store_loop, "dict increment": dict_loop}, ctx.size(7, 1)
    )
    return comparison(
        "memory store record ops/s (in process)",
        samples,
        measured="memory store",
        baseline="dict increment",
        unit="ops/s",
        target=Target.value(">=", 200_000, "ops/s"),
        detail={"ops_per_sample": ops, "companies": COMPANIES},
    )


# -- Redis store -------------------------------------------------------------------------------


async def _redis_store(ctx: Context, url: str) -> list[Figure]:
    prefix = ctx.key_prefix
    store = RedisStore.from_url(url, Window(), prefix=prefix)
    admin = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        ctx.meta["redis_version"] = await server_version(admin)
        figures = [await _throughput(ctx, store, prefix, concurrency) for concurrency in (1, 16)]
        figures.append(await _round_trips(ctx, store, admin))
        figures.append(await _redis_breakdown(ctx, store))
        figures.append(await _round_trips(ctx, store, admin, BREAKDOWN))
        return figures
    finally:
        await delete_prefixed(admin, prefix)
        await store.aclose()
        await admin.aclose()


async def _throughput(ctx: Context, store: RedisStore, prefix: str, concurrency: int) -> Figure:
    per_task = ctx.size(4_000 if concurrency == 1 else 600, 20)
    client = store.client
    companies = [uuid4() for _ in range(concurrency)]
    counters = [f"{prefix}incrby:{task}" for task in range(concurrency)]

    async def record(task: int, _: int) -> None:
        await store.record(companies[task], TOKENS, LIMIT)

    async def incrby(task: int, _: int) -> None:
        await client.incrby(counters[task], TOKENS)

    samples = await ainterleave(
        {
            "store.record": lambda: concurrent_rate(
                record, concurrency=concurrency, per_task=per_task
            ),
            "INCRBY": lambda: concurrent_rate(incrby, concurrency=concurrency, per_task=per_task),
        },
        ctx.size(7, 1),
    )
    return comparison(
        f"Redis store record ops/s, {concurrency} task{'s' if concurrency > 1 else ''}",
        samples,
        measured="store.record",
        baseline="INCRBY",
        unit="ops/s",
        target=Target.ratio(">=", 0.8),
        detail={"concurrency": concurrency, "ops_per_task": per_task},
    )


async def _memory_breakdown(ctx: Context) -> Figure:
    ops = ctx.size(200_000, 2_000)
    companies = [uuid4() for _ in range(COMPANIES)]
    store = MemoryStore(Window())

    async def loop(breakdown: dict[str, int] | None) -> float:
        record = store.record
        start = time.perf_counter()
        for i in range(ops):
            await record(companies[i % COMPANIES], TOKENS, LIMIT, breakdown=breakdown)
        return ops / (time.perf_counter() - start)

    samples = await ainterleave(
        {"with breakdown": lambda: loop(BREAKDOWN), "tokens only": lambda: loop(None)},
        ctx.size(7, 1),
    )
    return comparison(
        "memory store record with a breakdown ops/s (in process)",
        samples,
        measured="with breakdown",
        baseline="tokens only",
        unit="ops/s",
        target=Target.ratio(">=", 0.75),
        detail={"ops_per_sample": ops, "breakdown": BREAKDOWN},
    )


async def _redis_breakdown(ctx: Context, store: RedisStore) -> Figure:
    per_task = ctx.size(4_000, 20)
    company = uuid4()

    async def record(breakdown: dict[str, int] | None) -> float:
        async def one(_task: int, _: int) -> None:
            await store.record(company, TOKENS, LIMIT, breakdown=breakdown)

        return await concurrent_rate(one, concurrency=1, per_task=per_task)

    samples = await ainterleave(
        {"with breakdown": lambda: record(BREAKDOWN), "tokens only": lambda: record(None)},
        ctx.size(7, 1),
    )
    return comparison(
        "Redis store record with a breakdown ops/s, 1 task",
        samples,
        measured="with breakdown",
        baseline="tokens only",
        unit="ops/s",
        target=Target.ratio(">=", 0.75),
        detail={"ops_per_task": per_task, "breakdown": BREAKDOWN},
    )


async def _round_trips(
    ctx: Context,
    store: RedisStore,
    admin: aioredis.Redis,
    breakdown: dict[str, int] | None = None,
) -> Figure:
    """Round trips per record, counted on both ends: the client's writes to its sockets, and
    the server's ``INFO commandstats`` (EVALSHA calls must equal records; the script's own
    HGET/HINCRBY... are counted there too, so they are listed but are not round trips).
    ``INFO`` runs over a separate client, outside the counted window."""
    records = ctx.size(2_000, 50)
    company = uuid4()
    await store.record(company, TOKENS, LIMIT)  # the script is loaded: no NOSCRIPT retry below
    before = await command_calls(admin)
    with _counting_writes() as writes:
        for _ in range(records):
            await store.record(company, TOKENS, LIMIT, breakdown=breakdown)
    after = await command_calls(admin)
    delta = calls_delta(before, after)
    delta.pop("info", None)
    evalsha = delta.get("evalsha", 0)
    return Figure(
        "Redis round trips per store.record" + (" with a breakdown" if breakdown else ""),
        writes[0] / records,
        "",
        target=Target.value("==", 1.0),
        forced_status=None if evalsha == records else "FAIL",
        note="" if evalsha == records else f"EVALSHA calls {evalsha} != records {records}",
        detail={
            "records": records,
            "client_writes": writes[0],
            "server_evalsha_calls": evalsha,
            "server_commands_delta_incl_script_calls": delta,
        },
    )


@contextmanager
def _counting_writes() -> Iterator[list[int]]:
    """Count every command write of every redis.asyncio connection while active."""
    original = AbstractConnection.send_packed_command
    count = [0]

    async def counted(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        count[0] += 1
        await original(self, *args, **kwargs)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield count
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
