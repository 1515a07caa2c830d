"""Redis client mechanics: the store's record through each candidate client, against INCRBY.

The Redis store spends most of its client-side time in the client library, not in Redis
(profiled: ~90-100 us of redis-py CPU per ``EVALSHA``). Every candidate here runs the store's
real ``record`` (key building, argument formatting, reply parsing, one ``EVALSHA`` of
``usage.lua``: one atomic round trip per record, exact), only the transport under it differs:

- ``redis-py``: redis-py's pure-Python RESP parser, what ``main`` runs where hiredis is absent;
- ``redis-py + hiredis``: the same client with hiredis (C) as its parser; SKIP when the
  ``hiredis`` package is not importable;
- ``lean``: ``budget_guard.stores.resp.LeanScript`` (two multiplexed asyncio connections,
  RESP by hand) writing each command at once;
- ``lean, autopipelined``: the same, every command of one event-loop tick in one write: what
  ``RedisStore.from_url`` now uses for a standalone Redis.

The baseline is a plain ``INCRBY`` through redis-py as ``main`` has it, the cheapest write a
Redis counter can make (issue 16 asks the record for >= 0.8x of it); each client's own INCRBY
is measured too. Throughput is at ``CONCURRENCY`` callers in flight (a busy worker) and at 1;
client CPU per call is this process's CPU time over the calls (Redis runs elsewhere).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

import redis.asyncio as aioredis
from redis._parsers import _AsyncRESP2Parser

from benchmarks.harness import Context, Figure, Target, Unavailable, ainterleave, comparison, median
from benchmarks.redis_keys import delete_prefixed
from budget_guard.budget.window import Window
from budget_guard.stores import RedisStore
from budget_guard.stores.redis import _SCRIPT
from budget_guard.stores.resp import LeanScript

GROUP = "redis-client"

CONCURRENCY = 32
LIMIT = 10**15
TOKENS = 1_234

REDIS_PY = "redis-py"
HIREDIS = "redis-py + hiredis"
LEAN = "lean"
LEAN_AUTO = "lean, autopipelined"

Op = Callable[[], Awaitable[Any]]


def hiredis_parser() -> type | None:
    try:
        import hiredis  # noqa: F401
        from redis._parsers import _AsyncHiredisParser
        from redis.utils import HIREDIS_AVAILABLE
    except ImportError:
        return None
    return _AsyncHiredisParser if HIREDIS_AVAILABLE else None


def run(ctx: Context) -> list[Figure]:
    try:
        url = ctx.redis_url()
    except Unavailable as exc:
        return [Figure.unavailable("Redis client candidates", "SKIP", str(exc))]
    return asyncio.run(_run(ctx, url))


async def _redis_py(url: str, prefix: str, parser: type) -> tuple[RedisStore, Any]:
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=100, timeout=2.0, decode_responses=True, parser_class=parser
    )
    client = aioredis.Redis.from_pool(pool)
    return RedisStore(client, Window(), prefix=prefix, restart_check_seconds=0), client


async def _lean(url: str, prefix: str, *, autopipeline: bool) -> tuple[RedisStore, LeanScript]:
    lean = LeanScript(url, _SCRIPT, autopipeline=autopipeline)
    client = aioredis.Redis.from_url(url, decode_responses=True)
    store = RedisStore(
        client, Window(), prefix=prefix, restart_check_seconds=0, script_transport=lean
    )
    return store, lean


def _lean_incrby(lean: LeanScript) -> Callable[[str], Awaitable[Any]]:
    """INCRBY over the lean transport's own connections (opened by a first script call)."""

    def call(key: str) -> Awaitable[Any]:
        connection = lean._slots[hash(key) % len(lean._slots)]
        assert connection is not None
        return connection.call(("INCRBY", key, 1))

    return call


async def _rate_and_cpu(op_for: Callable[[int], Op], calls: int, concurrency: int) -> float:
    """Calls per second; the CPU per call is recorded on the side (see ``_cpu``)."""
    per_task = max(1, calls // concurrency)

    async def worker(task: int) -> None:
        op = op_for(task)
        for _ in range(per_task):
            await op()

    cpu_before, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(concurrency)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_before
    _cpu.setdefault(id(op_for), []).append(cpu / (per_task * concurrency) * 1e6)
    return per_task * concurrency / wall


_cpu: dict[int, list[float]] = {}


async def _run(ctx: Context, url: str) -> list[Figure]:
    prefix = ctx.key_prefix
    calls = ctx.size(20_000, 200)
    rounds, warmup = ctx.size(5, 1), ctx.size(1, 0)
    companies = [uuid4() for _ in range(CONCURRENCY)]
    clients: list[Any] = []
    stores: dict[str, RedisStore] = {}
    incr: dict[str, Callable[[str], Awaitable[Any]]] = {}
    notes: dict[str, str] = {}

    store, client = await _redis_py(url, prefix, _AsyncRESP2Parser)
    stores[REDIS_PY], incr[REDIS_PY] = store, client.incrby
    clients.append(client)
    parser = hiredis_parser()
    if parser is None:
        notes[HIREDIS] = "hiredis is not installed"
    else:
        store, client = await _redis_py(url, prefix, parser)
        stores[HIREDIS], incr[HIREDIS] = store, client.incrby
        clients.append(client)
    for name, auto in ((LEAN, False), (LEAN_AUTO, True)):
        store, lean = await _lean(url, prefix, autopipeline=auto)
        for _ in lean._slots:
            await store.record(companies[0], 0, LIMIT)  # opens each connection
        stores[name] = store
        incr[name] = _lean_incrby(lean)
        clients.append(store)

    def record_op(store: RedisStore) -> Callable[[int], Op]:
        def op_for(task: int) -> Op:
            company = companies[task % len(companies)]
            return lambda: store.record(company, TOKENS, LIMIT)

        return op_for

    def incr_op(call: Callable[[str], Awaitable[Any]]) -> Callable[[int], Op]:
        def op_for(task: int) -> Op:
            key = f"{prefix}incr:{task}"
            return lambda: call(key)

        return op_for

    figures: list[Figure] = []
    try:
        for concurrency in (CONCURRENCY, 1):
            n = calls if concurrency > 1 else calls // 4
            ops: dict[str, Callable[[int], Op]] = {}
            for name, store in stores.items():
                ops[f"record: {name}"] = record_op(store)
                ops[f"INCRBY: {name}"] = incr_op(incr[name])
            _cpu.clear()
            samples = await ainterleave(
                {
                    name: (lambda op_for=op_for, n=n, c=concurrency: _rate_and_cpu(op_for, n, c))
                    for name, op_for in ops.items()
                },
                rounds,
                warmup=warmup,
            )
            cpu = {name: median(_cpu[id(op_for)]) for name, op_for in ops.items()}
            figures.extend(_figures(samples, cpu, concurrency))
    finally:
        for client in clients:
            if isinstance(client, RedisStore):
                await delete_prefixed(client.client, prefix)
            else:
                await delete_prefixed(client, prefix)
            await client.aclose()
    figures.extend(
        Figure.unavailable(f"record: {name}", "SKIP", note) for name, note in notes.items()
    )
    return figures


def _figures(
    samples: dict[str, list[float]], cpu: dict[str, float], concurrency: int
) -> list[Figure]:
    figures = []
    floor = f"INCRBY: {REDIS_PY}"
    for name in samples:
        if not name.startswith("record: "):
            continue
        client = name.removeprefix("record: ")
        figures.append(
            comparison(
                f"record ops/s at {concurrency} in flight: {client}",
                samples,
                measured=name,
                baseline=floor,
                unit="ops/s",
                target=Target.ratio(">=", 0.8) if concurrency > 1 else None,
                baseline_label=f"INCRBY, {REDIS_PY}",
                detail={
                    "client_cpu_us_per_call": cpu[name],
                    "own_incrby_ops": samples[f"INCRBY: {client}"],
                    "own_incrby_cpu_us_per_call": cpu[f"INCRBY: {client}"],
                },
            )
        )
        figures.append(
            Figure(
                f"client CPU per record at {concurrency} in flight: {client}",
                cpu[name],
                "us",
                baseline=cpu[f"record: {REDIS_PY}"],
                baseline_label=REDIS_PY,
            )
        )
    return figures
