"""Counting off the event loop: what the pool hand-off costs by body size (the inline threshold),
and /healthz latency while four 10 MB CJK prompts are counted, pool vs inline.

Hand-off: ``acount_request`` forced through the pool against the same call forced inline, on
chat bodies of growing size; the ratio is the hand-off's cost. ``INLINE_MAX_BYTES`` should sit
where it falls to about 1.1x: below, the pool costs more than it saves; above, the loop would be
held for longer than a hand-off takes.

Health: the assembled server (``build_app``) with company A over budget, so A's four big
prompts are read, counted and refused without reaching the upstream; meanwhile /healthz and a
small chat of company B are timed back to back. The baseline is the same server counting inline
(as before issue 12), measured in the same run, rounds alternating.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from benchmarks.harness import (
    Context,
    Figure,
    Target,
    ainterleave,
    comparison,
    median,
)
from budget_guard.counting import TokenCounter
from budget_guard.counting import counter as counter_module
from budget_guard.counting.worker_pool import CountingPool

GROUP = "counting-offload"

CHAT_PATH = "/v1/chat/completions"
_PROSE = "The guard counts every token a company sends before it leaves. "
CJK = "お誕生日おめでとう日本語の文章です。"


def chat_body(size: int, unit: str = _PROSE) -> bytes:
    """A chat whose body is ``size`` bytes give or take one ``unit`` (whole characters, so the
    UTF-8 stays valid)."""
    overhead = len(chat_text_body(""))
    return chat_text_body(unit * max(1, (size - overhead) // len(unit.encode())))


def chat_text_body(text: str) -> bytes:
    return orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]})


def run(ctx: Context) -> list[Figure]:
    figures = asyncio.run(_handoff(ctx))
    figures.append(_health_under_load(ctx))
    return figures


# -- the hand-off, by size -------------------------------------------------------------------


async def _handoff(ctx: Context) -> list[Figure]:
    sizes = [1024, 4096, 16384, 65536] if ctx.smoke else [1024, 4096, 8192, 16384, 65536, 262144]
    pool = CountingPool()
    inline = TokenCounter(inline_max_bytes=1 << 40, pool=pool)
    pooled = TokenCounter(inline_max_bytes=-1, pool=pool)
    calls = ctx.size(50, 3)
    figures = []
    for size in sizes:
        body = chat_body(size)

        def timed(counter: TokenCounter, body: bytes = body) -> Callable[[], Awaitable[float]]:
            async def sample() -> float:
                start = time.perf_counter()
                for _ in range(calls):
                    await counter.acount_request(CHAT_PATH, body)
                return (time.perf_counter() - start) / calls * 1e6

            return sample

        samples = await ainterleave(
            {"pool": timed(pooled), "inline": timed(inline)}, ctx.size(15, 1)
        )
        figures.append(
            comparison(
                f"count a {size // 1024} KiB chat body through the pool",
                samples,
                measured="pool",
                baseline="inline",
                baseline_label="inline on the loop",
                unit="µs",
                target=Target.ratio("<=", 1.1) if size > counter_module.INLINE_MAX_BYTES else None,
                detail={"body_bytes": len(body), "calls_per_sample": calls},
            )
        )
    return figures


# -- /healthz while four 10 MB prompts are counted -------------------------------------------


def _health_under_load(ctx: Context) -> Figure:
    from tests.security.sec_support import COMPANY_A, COMPANY_B, LIMIT_B, guarded_server

    size = ctx.size(10_000_000, 200_000)
    body = chat_body(size, CJK)
    guard = {"max_body_bytes": size + 1_000_000, "body_timeout_seconds": 120.0}
    budget = {"limits": {str(COMPANY_A): 1_000, str(COMPANY_B): LIMIT_B}}
    latencies: dict[str, list[float]] = {"pool": [], "inline": []}
    with guarded_server(guard=guard, budget=budget) as target:

        def candidate(name: str) -> Callable[[], Awaitable[float]]:
            async def sample() -> float:
                with _counting_inline(name == "inline"):
                    probes = await _probe_during_load(target.url, body, COMPANY_A)
                latencies[name].extend(probes)
                return _p99(probes) * 1e3

            return sample

        samples = asyncio.run(
            ainterleave(
                {"pool": candidate("pool"), "inline": candidate("inline")},
                ctx.size(5, 1),
                warmup=0,
            )
        )
    figure = comparison(
        f"/healthz p99 while 4 x {size / 1e6:g} MB CJK prompts are counted",
        samples,
        measured="pool",
        baseline="inline",
        baseline_label="counted inline",
        unit="ms",
        target=Target.value("<=", 100, "ms"),
        detail={
            "probes": {name: len(values) for name, values in latencies.items()},
            "p99_over_all_rounds_ms": {
                name: _p99(values) * 1e3 for name, values in latencies.items()
            },
            "median_ms": {name: median(values) * 1e3 for name, values in latencies.items()},
        },
    )
    return figure


class _counting_inline:
    """Makes every counter count on the loop, as the guard did before issue 12 (baseline)."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.saved: Any = None

    def __enter__(self) -> None:
        if self.active:
            self.saved = TokenCounter.acount_request

            async def inline(
                counter: TokenCounter, path: str, body: bytes, *, kind: str | None = None
            ) -> Any:
                return counter.count_request(path, body, kind=kind)

            TokenCounter.acount_request = inline  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        if self.active:
            TokenCounter.acount_request = self.saved  # type: ignore[method-assign]


async def _probe_during_load(url: str, body: bytes, company: object) -> list[float]:
    """Four big prompts from the over-budget company; /healthz and company B's small chat timed
    back to back until all four are answered. Returns the /healthz latencies (seconds)."""
    from tests.security.sec_support import ADMIN_KEY, ENDPOINT, KEY_A, KEY_B, bearer

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        spent = await http.post(
            ENDPOINT,
            json={"companyId": str(company), "tokensUsed": 1_000},
            headers=bearer(ADMIN_KEY),
        )
        assert spent.status_code == 200, spent.text
        headers = {**bearer(KEY_A), "Content-Type": "application/json"}
        big = [
            asyncio.create_task(http.post(CHAT_PATH, content=body, headers=headers))
            for _ in range(4)
        ]
        small = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
        health: list[float] = []
        while not all(task.done() for task in big):
            start = time.perf_counter()
            await http.get("/healthz")
            health.append(time.perf_counter() - start)
            await http.post(CHAT_PATH, json=small, headers=bearer(KEY_B))
            await asyncio.sleep(0.005)
        statuses = [task.result().status_code for task in big]
        assert statuses == [429] * 4, statuses
    return health


def _p99(values: list[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
