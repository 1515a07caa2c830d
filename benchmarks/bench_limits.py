"""What run-time limits and threshold alerts cost a record, measured against the same path
without them, in the same run.

* ``ledger.record`` looks the company's run-time override up before the policy. On Redis the
  lookup is served from a per-process cache (at most 0.5 s old), so the figure to watch is
  the ledger's record rate with the override lookup against the same ledger with the lookup
  switched off: the ratio is the lookup's price on the hot path.
* With ``[alerts]`` on, the usage script also decides threshold crossings (two in-script
  ``HGET``s and a bitmask; still one round trip): ``store.record`` with three thresholds
  watched against the same store unwatched.
"""

from __future__ import annotations

import asyncio
import time
from uuid import UUID, uuid4

import redis.asyncio as aioredis

from benchmarks.harness import (
    Context,
    Figure,
    Target,
    Unavailable,
    ainterleave,
    comparison,
    concurrent_rate,
)
from benchmarks.redis_keys import delete_prefixed
from budget_guard.budget.ledger import Ledger
from budget_guard.budget.policy import BudgetPolicy
from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.budget.window import Window
from budget_guard.stores import MemoryStore, RedisStore, UsageStore

GROUP = "limits"

LIMIT = 10**9  # never reached: the common, within-budget path
TOKENS = 1_234
COMPANIES = 1_000
THRESHOLDS = (0.8, 0.95, 1.0)


def run(ctx: Context) -> list[Figure]:
    figures = [asyncio.run(_memory_ledger(ctx))]
    try:
        url = ctx.redis_url()
    except Unavailable as exc:
        figures.append(Figure.unavailable("Redis ledger.record with overrides", "SKIP", str(exc)))
        return figures
    figures.extend(asyncio.run(_redis(ctx, url)))
    return figures


def _ledgers(store: UsageStore) -> tuple[Ledger, Ledger]:
    """The same store and policy twice: with the override lookup, and with it switched off."""
    policy = BudgetPolicy(store.window, default_token_limit=LIMIT)
    with_overrides, without = Ledger(store, policy), Ledger(store, policy)
    without.overrides.supported = False
    return with_overrides, without


async def _memory_ledger(ctx: Context) -> Figure:
    ops = ctx.size(100_000, 2_000)
    companies = [uuid4() for _ in range(COMPANIES)]
    with_overrides, without = _ledgers(MemoryStore(Window()))

    def loop(ledger: Ledger) -> object:
        async def run_loop() -> float:
            record = ledger.record
            start = time.perf_counter()
            for i in range(ops):
                await record(companies[i % COMPANIES], TOKENS)
            return ops / (time.perf_counter() - start)

        return run_loop

    samples = await ainterleave(
        {"with overrides": loop(with_overrides), "no override lookup": loop(without)},  # type: ignore[dict-item]
        ctx.size(7, 1),
    )
    return comparison(
        "memory ledger.record ops/s, override lookup vs none",
        samples,
        measured="with overrides",
        baseline="no override lookup",
        unit="ops/s",
        target=Target.ratio(">=", 0.9),
        detail={"ops_per_sample": ops, "companies": COMPANIES},
    )


async def _redis(ctx: Context, url: str) -> list[Figure]:
    prefix = ctx.key_prefix
    plain = RedisStore.from_url(url, Window(), prefix=prefix + "plain:")
    watched = RedisStore.from_url(url, Window(), prefix=prefix + "watched:")
    heard: list[UUID] = []

    def sink(company: UUID, threshold: float, snap: UsageSnapshot) -> None:
        heard.append(company)

    watched.watch_thresholds(THRESHOLDS, sink)
    admin = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        return [
            await _ledger_rate(ctx, plain, concurrency=16),
            await _thresholds_rate(ctx, plain, watched, concurrency=16),
        ]
    finally:
        await delete_prefixed(admin, prefix)
        await plain.aclose()
        await watched.aclose()
        await admin.aclose()


async def _ledger_rate(ctx: Context, store: RedisStore, *, concurrency: int) -> Figure:
    per_task = ctx.size(600, 20)
    companies = [uuid4() for _ in range(concurrency)]
    with_overrides, without = _ledgers(store)

    def rate(ledger: Ledger) -> object:
        async def op(task: int, _: int) -> None:
            await ledger.record(companies[task], TOKENS)

        return lambda: concurrent_rate(op, concurrency=concurrency, per_task=per_task)

    samples = await ainterleave(
        {"with overrides": rate(with_overrides), "no override lookup": rate(without)},  # type: ignore[dict-item]
        ctx.size(7, 1),
    )
    return comparison(
        f"Redis ledger.record ops/s, override lookup vs none, {concurrency} tasks",
        samples,
        measured="with overrides",
        baseline="no override lookup",
        unit="ops/s",
        target=Target.ratio(">=", 0.9),
        detail={"concurrency": concurrency, "ops_per_task": per_task},
    )


async def _thresholds_rate(
    ctx: Context, plain: RedisStore, watched: RedisStore, *, concurrency: int
) -> Figure:
    per_task = ctx.size(600, 20)
    companies = [uuid4() for _ in range(concurrency)]

    def rate(store: RedisStore) -> object:
        async def op(task: int, _: int) -> None:
            await store.record(companies[task], TOKENS, LIMIT)

        return lambda: concurrent_rate(op, concurrency=concurrency, per_task=per_task)

    samples = await ainterleave(
        {"3 thresholds": rate(watched), "no thresholds": rate(plain)},  # type: ignore[dict-item]
        ctx.size(7, 1),
    )
    return comparison(
        f"Redis store.record ops/s, 3 alert thresholds vs none, {concurrency} tasks",
        samples,
        measured="3 thresholds",
        baseline="no thresholds",
        unit="ops/s",
        target=Target.ratio(">=", 0.9),
        detail={"concurrency": concurrency, "ops_per_task": per_task},
    )
