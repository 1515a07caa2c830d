"""HTTP: the guard's added latency and throughput cost, TTFB, and the usage endpoint, over loopback.

Every server is a uvicorn worker in a process of its own: the demo upstream; the bare proxy
(the routes, proxy and lifespan ``budget-guard`` serves, without the guard middleware); and
the guarded proxy as the command builds it (metrics on) with the memory store, the Redis
store, and the Redis store in strict mode (reserve + settle). The load generator is a process
too (see :mod:`benchmarks.http_load`), a closed loop over a fixed number of keep-alive
connections, so it never queues more than that and its own CPU time is measured.

Each block runs its candidates round by round in alternating order after a warm-up round, and
every figure is the median over rounds against a baseline from the same rounds:

- 1 connection: latency p50 and p99 per request (the guard's added latency is the
  difference of medians); the upstream alone is run too, as the floor.
- ``CONNECTIONS`` connections: requests/s, the servers saturated. The upstream alone must
  serve well above the proxied rate, or the figure would measure the mock.
- Time to first byte of a streamed answer (raw socket client, one connection).
- ``POST /assistant/ai-chat/usage`` requests/s vs a trivial Starlette endpoint returning a
  fixed JSON body of the same size from the same server.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import orjson

from benchmarks.harness import (
    Context,
    Figure,
    Target,
    Unavailable,
    ainterleave,
    comparison,
    interleave,
    median,
)
from benchmarks.http_load import PERCENTILES, Driver, HttpRequest, LoadResult, open_driver
from benchmarks.http_plots import plot_latency, plot_ttfb
from benchmarks.http_server import (
    API_KEY,
    FIXED_PATH,
    ServerProcess,
    proxy_server,
    upstream_server,
)
from benchmarks.http_ttfb import raw_request, time_to_first_byte

GROUP = "http"

CONNECTIONS = 16
"""Enough to keep a single-worker proxy busy at all times; few enough that the generator's
share of the two cores stays small."""

_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Say something short."},
]
_AUTH = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
CHAT = HttpRequest(
    "/v1/chat/completions",
    orjson.dumps({"model": "gpt-4o-mini", "messages": _MESSAGES}),
    _AUTH,
)
CHAT_STREAM_BODY = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": _MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
)
USAGE = HttpRequest("/assistant/ai-chat/usage", b'{"TokensUsed":1}', _AUTH)
FIXED = HttpRequest(FIXED_PATH, b'{"TokensUsed":1}', _AUTH)

UPSTREAM = "upstream alone"
BARE = "bare proxy"
MEMORY = "guard, memory"
REDIS = "guard, Redis"
STRICT = "guard, Redis strict"
REDIS_PY = "guard, Redis via redis-py"
"""The Redis store with the usage script over redis-py, as before the lean transport."""


class _Sizes:
    def __init__(self, ctx: Context) -> None:
        self.seconds = 0.2 if ctx.smoke else 3.0
        self.rounds = ctx.size(5, 1)
        self.warmup = ctx.size(1, 0)
        self.ttfb_requests = ctx.size(400, 10)


def run(ctx: Context) -> list[Figure]:
    redis_note = ""
    try:
        redis_url: str | None = ctx.redis_url()
    except Unavailable as exc:
        redis_url, redis_note = None, str(exc)
    with ExitStack() as stack:
        # All start at once (a proxy needs its upstream only for requests): start-up is the
        # bulk of a smoke run.
        upstream = stack.enter_context(upstream_server())
        servers = {UPSTREAM: upstream}
        servers[BARE] = stack.enter_context(proxy_server(BARE, upstream.url, bare=True))
        servers[MEMORY] = stack.enter_context(proxy_server(MEMORY, upstream.url))
        if redis_url is not None:
            prefix = ctx.key_prefix
            stack.callback(_delete_keys, redis_url, prefix)  # after the servers have stopped
            for name, strict in ((REDIS, False), (STRICT, True)):
                servers[name] = stack.enter_context(
                    proxy_server(name, upstream.url, store=redis_url, prefix=prefix, strict=strict)
                )
            servers[REDIS_PY] = stack.enter_context(
                proxy_server(REDIS_PY, upstream.url, store=redis_url, prefix=prefix, redis_py=True)
            )
        driver = open_driver(ctx.smoke)
        stack.callback(driver.close)
        ctx.meta["http_driver"] = driver.name
        for server in servers.values():
            server.wait_ready()
        # Other work on the machine shows in the figures' spread; the load says how much.
        ctx.meta["http_load_average_before"] = os.getloadavg()
        figures = _HttpRun(ctx, driver, servers).figures()
        ctx.meta["http_load_average_after"] = os.getloadavg()
    if redis_url is None:
        for name in (REDIS, STRICT):
            figures.append(
                Figure.unavailable(f"{name}: latency and throughput", "SKIP", redis_note)
            )
    return figures


def _delete_keys(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    from benchmarks.redis_keys import delete_prefixed

    async def delete() -> None:
        client = aioredis.Redis.from_url(url)
        try:
            await delete_prefixed(client, prefix)
        finally:
            await client.aclose()

    asyncio.run(delete())


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


class _HttpRun:
    def __init__(self, ctx: Context, driver: Driver, servers: dict[str, ServerProcess]) -> None:
        self.ctx = ctx
        self.driver = driver
        self.servers = servers
        self.sizes = _Sizes(ctx)
        self.guards = [name for name in (MEMORY, REDIS, STRICT, REDIS_PY) if name in servers]

    def figures(self) -> list[Figure]:
        single = self._load_block(CHAT, 1)
        loaded = self._load_block(CHAT, CONNECTIONS)
        ttfb = self._ttfb_block()
        usage = self._usage_block()
        self._plot(single, loaded, ttfb)
        return [
            *self._latency_figures(single),
            *self._throughput_figures(loaded),
            *self._cpu_figures(loaded),
            self._upstream_figure(loaded),
            self._generator_figure(loaded),
            *self._ttfb_figures(ttfb),
            *self._usage_figures(usage),
        ]

    # -- running -------------------------------------------------------------------------------

    def _sampler(
        self, name: str, server: str, request: HttpRequest, connections: int, into: dict[str, Any]
    ) -> Callable[[], float]:
        """One timed load run as an interleave candidate: keeps the whole result (and the
        server's CPU seconds over the run) in ``into`` and returns requests/s."""
        process = self.servers[server]
        upstream = self.servers[UPSTREAM]

        def sample() -> float:
            cpu, upstream_cpu = process.cpu_seconds(), upstream.cpu_seconds()
            result = self.driver.run(
                process.url,
                request,
                connections=connections,
                seconds=self.sizes.seconds,
            )
            into.setdefault(name, []).append(
                {
                    "result": result,
                    "server_cpu": process.cpu_seconds() - cpu,
                    "upstream_cpu": upstream.cpu_seconds() - upstream_cpu,
                }
            )
            return result.rate

        return sample

    def _load_block(self, request: HttpRequest, connections: int) -> dict[str, Any]:
        _progress(f"{request.path}, {connections} connection(s), driver {self.driver.name}")
        runs: dict[str, Any] = {}
        names = [UPSTREAM, BARE, *self.guards]
        rates = interleave(
            {name: self._sampler(name, name, request, connections, runs) for name in names},
            self.sizes.rounds,
            warmup=self.sizes.warmup,
        )
        kept = {name: runs[name][-self.sizes.rounds :] for name in names}
        return {"rates": rates, "runs": kept, "connections": connections}

    def _ttfb_block(self) -> dict[str, Any]:
        _progress(f"time to first byte, {self.sizes.ttfb_requests} streamed requests per sample")
        names = [BARE, *self.guards[:2]]  # strict mode's reservation is covered by the load runs
        raw: dict[str, list[list[float]]] = {name: [] for name in names}

        def candidate(name: str) -> Callable[[], Any]:
            url = self.servers[name].url
            request = raw_request(url.removeprefix("http://"), CHAT.path, CHAT_STREAM_BODY, _AUTH)

            async def sample() -> float:
                samples = await time_to_first_byte(url, request, self.sizes.ttfb_requests)
                raw[name].append(samples)
                return median(samples)

            return sample

        async def measure() -> dict[str, list[float]]:
            return await ainterleave(
                {name: candidate(name) for name in names},
                self.sizes.rounds,
                warmup=self.sizes.warmup,
            )

        medians = asyncio.run(measure())
        kept = {name: raw[name][-self.sizes.rounds :] for name in names}
        return {"medians": medians, "raw": kept}

    def _usage_block(self) -> dict[str, Any]:
        _progress(f"usage endpoint, {CONNECTIONS} connections")
        candidates = {
            "fixed JSON, memory server": self._sampler(
                "fixed JSON, memory server", MEMORY, FIXED, CONNECTIONS, {}
            ),
            "usage endpoint, memory": self._sampler(
                "usage endpoint, memory", MEMORY, USAGE, CONNECTIONS, {}
            ),
        }
        if REDIS in self.servers:
            candidates["fixed JSON, Redis server"] = self._sampler(
                "fixed JSON, Redis server", REDIS, FIXED, CONNECTIONS, {}
            )
            candidates["usage endpoint, Redis"] = self._sampler(
                "usage endpoint, Redis", REDIS, USAGE, CONNECTIONS, {}
            )
        return interleave(candidates, self.sizes.rounds, warmup=self.sizes.warmup)

    # -- figures -------------------------------------------------------------------------------

    def _percentile_medians(self, block: dict[str, Any], name: str) -> dict[float, float]:
        results: list[LoadResult] = [run["result"] for run in block["runs"][name]]
        return {p: median([r.p(p) for r in results]) for p in PERCENTILES}

    def _latency_figures(self, single: dict[str, Any]) -> list[Figure]:
        bare = self._percentile_medians(single, BARE)
        figures = []
        for name in self.guards:
            guard = self._percentile_medians(single, name)
            for percentile, target in ((50.0, Target.value("<=", 0.5, "ms")), (99.0, None)):
                if name != MEMORY and percentile == 50.0:
                    target = None
                figures.append(
                    Figure(
                        f"{name}: added latency p{percentile:g}, 1 conn",
                        guard[percentile] - bare[percentile],
                        "ms",
                        baseline=bare[percentile],
                        baseline_label=f"{BARE} p{percentile:g}",
                        ratio=guard[percentile] / bare[percentile],
                        target=target,
                        detail={
                            "guard_ms": guard[percentile],
                            "bare_ms": bare[percentile],
                            "curves_ms": {BARE: bare, name: guard} if percentile == 50.0 else {},
                            "per_round": self._per_round_percentiles(single, percentile),
                            "driver": self.driver.name,
                        },
                    )
                )
        return figures

    def _per_round_percentiles(self, block: dict[str, Any], percentile: float) -> dict[str, Any]:
        return {
            name: [run["result"].p(percentile) for run in runs]
            for name, runs in block["runs"].items()
        }

    def _throughput_figures(self, loaded: dict[str, Any]) -> list[Figure]:
        targets = {MEMORY: 0.9, REDIS: 0.75, STRICT: 0.65}  # issue 16
        bounds = {name: Target.ratio(">=", ratio) for name, ratio in targets.items()}
        return [
            comparison(
                f"{name}: req/s, {CONNECTIONS} conn",
                loaded["rates"],
                measured=name,
                baseline=BARE,
                unit="req/s",
                target=bounds.get(name),
                detail={
                    "connections": CONNECTIONS,
                    "driver": self.driver.name,
                    "server_cpu_share": self._cpu_shares(loaded, name),
                    "bare_cpu_share": self._cpu_shares(loaded, BARE),
                    "runs": [self._run_json(run) for run in loaded["runs"][name]],
                },
            )
            for name in self.guards
        ]

    def _cpu_per_request(self, block: dict[str, Any], name: str) -> list[float]:
        return [run["server_cpu"] / run["result"].requests * 1e6 for run in block["runs"][name]]

    def _cpu_figures(self, loaded: dict[str, Any]) -> list[Figure]:
        """The proxy process's CPU time per request (``/proc``), guard vs bare: what the
        throughput ratio is made of while the proxy is the saturated process, and steadier
        than req/s when other work shares the machine."""
        samples = {name: self._cpu_per_request(loaded, name) for name in (BARE, *self.guards)}
        return [
            comparison(
                f"{name}: proxy CPU per request, {CONNECTIONS} conn",
                samples,
                measured=name,
                baseline=BARE,
                unit="µs",
                target=None,
            )
            for name in self.guards
        ]

    def _run_json(self, run: dict[str, Any]) -> dict[str, Any]:
        return {**run["result"].as_json(), "server_cpu": run["server_cpu"]}

    def _cpu_shares(self, block: dict[str, Any], name: str) -> dict[str, float]:
        """Median share of one core used by the server, the upstream and the generator."""
        runs = block["runs"][name]
        return {
            "server": median([r["server_cpu"] / r["result"].seconds for r in runs]),
            "upstream": median([r["upstream_cpu"] / r["result"].seconds for r in runs]),
            "generator": median(
                [r["result"].driver_cpu_seconds / r["result"].seconds for r in runs]
            ),
        }

    def _upstream_figure(self, loaded: dict[str, Any]) -> Figure:
        """The mock must not be the bottleneck: alone it must serve well above the proxied
        rate, and while proxied it must leave CPU idle."""
        return comparison(
            f"upstream mock alone: req/s, {CONNECTIONS} conn",
            loaded["rates"],
            measured=UPSTREAM,
            baseline=BARE,
            unit="req/s",
            target=Target.ratio(">=", 1.5),
            detail={
                "upstream_cpu_share_while_proxied": {
                    name: self._cpu_shares(loaded, name)["upstream"]
                    for name in (BARE, *self.guards)
                }
            },
        )

    def _generator_figure(self, loaded: dict[str, Any]) -> Figure:
        """What the load generator spends per request, next to what the bare proxy spends:
        the generator's share of the machine is small, so it does not starve the servers."""
        runs = loaded["runs"][BARE]
        generator = median([r["result"].driver_cpu_seconds / r["result"].requests for r in runs])
        proxy = median([r["server_cpu"] / r["result"].requests for r in runs])
        return Figure(
            f"load generator ({self.driver.name}) CPU per request, {CONNECTIONS} conn",
            generator * 1e6,
            "µs",
            baseline=proxy * 1e6,
            baseline_label=f"{BARE} CPU",
            detail={"cpu_shares": {n: self._cpu_shares(loaded, n) for n in loaded["runs"]}},
        )

    def _ttfb_figures(self, ttfb: dict[str, Any]) -> list[Figure]:
        medians: dict[str, list[float]] = ttfb["medians"]
        bare = median(medians[BARE])
        figures = []
        for name in self.guards[:2]:
            value = median(medians[name])
            figures.append(
                Figure(
                    f"{name}: added time to first byte, streamed",
                    value - bare,
                    "ms",
                    baseline=bare,
                    baseline_label=f"{BARE} TTFB",
                    ratio=value / bare,
                    target=Target.value("<=", 1.0, "ms") if name == MEMORY else None,
                    detail={
                        "medians_per_round": medians,
                        "requests_per_round": self.sizes.ttfb_requests,
                    },
                )
            )
        return figures

    def _usage_figures(self, usage: dict[str, list[float]]) -> list[Figure]:
        figures = [
            comparison(
                f"usage endpoint req/s, memory, {CONNECTIONS} conn",
                usage,
                measured="usage endpoint, memory",
                baseline="fixed JSON, memory server",
                baseline_label="fixed JSON endpoint",
                unit="req/s",
                target=Target.ratio(">=", 0.7),
            )
        ]
        if "usage endpoint, Redis" in usage:
            figures.append(
                comparison(
                    f"usage endpoint req/s, Redis, {CONNECTIONS} conn",
                    usage,
                    measured="usage endpoint, Redis",
                    baseline="fixed JSON, Redis server",
                    baseline_label="fixed JSON endpoint",
                    unit="req/s",
                    target=None,
                )
            )
        return figures

    # -- pictures ------------------------------------------------------------------------------

    def _plot(self, single: dict[str, Any], loaded: dict[str, Any], ttfb: dict[str, Any]) -> None:
        suffix = "-smoke" if self.ctx.smoke else ""
        self.ctx.results_dir.mkdir(parents=True, exist_ok=True)
        note = (
            f"{self.ctx.stamp}: median over {self.sizes.rounds} interleaved round(s) of "
            f"{self.sizes.seconds:g} s each; load generator: {self.driver.name}; "
            "python benchmarks/run.py --only http"
        )
        names = [UPSTREAM, BARE, *self.guards]
        plot_latency(
            self.ctx.results_dir / f"latency{suffix}.png",
            {
                "non-streamed chat completion, 1 connection": {
                    n: self._percentile_medians(single, n) for n in names
                },
                f"non-streamed chat completion, {CONNECTIONS} connections": {
                    n: self._percentile_medians(loaded, n) for n in names
                },
            },
            note,
        )
        pooled = {name: [x for part in parts for x in part] for name, parts in ttfb["raw"].items()}
        if all(pooled.values()) and not any(math.isnan(x) for v in pooled.values() for x in v):
            plot_ttfb(self.ctx.results_dir / f"ttfb{suffix}.png", pooled, note)
