"""Which httpx transport should `UpstreamProxy` use? Measure requests/second through the proxy.

Three processes, as in production: the demo upstream (uvicorn), the proxy (uvicorn serving
`UpstreamProxy` with the transport under test) and this load generator (aiohttp, N keep-alive
connections, each sending the next request as soon as the last answer is read). Each setting
gets a warm-up, then a timed run; the figure is completed requests per second, with p50/p99
latency. Every answer is checked (status 200, full body read), so a fast error is never counted.

    /work/venv/bin/python benchmarks/proxy_transport.py
    /work/venv/bin/python benchmarks/proxy_transport.py --connections 1 8 32 --seconds 5 --stream

The machine's core count matters: all three processes share it, as they do in the numbers the
issue quotes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import sys
import time
from dataclasses import dataclass

import aiohttp
import orjson
import uvicorn

from budget_guard.proxy import UpstreamProxy
from budget_guard.proxy.demo_upstream import create_demo_upstream

_CHAT = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say something short."},
        ],
    }
)
_CHAT_STREAM = orjson.dumps(
    {**orjson.loads(_CHAT), "stream": True, "stream_options": {"include_usage": True}}
)


@dataclass
class Result:
    transport: str
    connections: int
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve_upstream(port: int) -> None:
    uvicorn.run(
        create_demo_upstream(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=60,  # longer than the proxy pool's keep-alive, so no stale reuse
    )


def _serve_proxy(port: int, upstream: str, transport: str) -> None:
    proxy = UpstreamProxy(upstream, api_key="sk-benchmark", transport=transport)
    uvicorn.run(proxy, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _start(target: object, *args: object) -> multiprocessing.Process:
    process = multiprocessing.Process(target=target, args=args, daemon=True)  # type: ignore[arg-type]
    process.start()
    return process


async def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{url}/v1/models") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up")
            await asyncio.sleep(0.1)


async def _load(
    url: str, connections: int, seconds: float, stream: bool
) -> tuple[int, list[float]]:
    body = _CHAT_STREAM if stream else _CHAT
    headers = {"content-type": "application/json", "authorization": "Bearer client-key"}
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while True:
                started = time.perf_counter()
                if started >= stop_at:
                    return
                async with session.post(
                    f"{url}/v1/chat/completions", data=body, headers=headers
                ) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"proxy answered {response.status}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(connections)))
    return len(latencies), latencies


def _measure(
    transport: str, upstream: str, levels: list[int], seconds: float, warmup: float, stream: bool
) -> list[Result]:
    port = _free_port()
    proxy = _start(_serve_proxy, port, upstream, transport)
    url = f"http://127.0.0.1:{port}"
    results = []
    try:
        asyncio.run(_wait_ready(url))
        for connections in levels:
            asyncio.run(_load(url, connections, warmup, stream))
            started = time.perf_counter()
            count, latencies = asyncio.run(_load(url, connections, seconds, stream))
            elapsed = time.perf_counter() - started
            result = Result(transport, connections, count, elapsed, latencies)
            results.append(result)
            print(
                f"  {transport:8} {connections:3} conn  {result.rate:8.0f} req/s  "
                f"p50 {result.percentile(0.5):6.1f} ms  p99 {result.percentile(0.99):6.1f} ms",
                flush=True,
            )
    finally:
        proxy.terminate()
        proxy.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transports", nargs="+", default=["httpx", "aiohttp"])
    parser.add_argument("--connections", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=5.0, help="timed run per setting")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed run before each")
    parser.add_argument("--rounds", type=int, default=1, help="repeat all, report the median")
    parser.add_argument("--stream", action="store_true", help="streamed chat completions")
    args = parser.parse_args()

    upstream_port = _free_port()
    upstream = _start(_serve_upstream, upstream_port)
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{'streamed' if args.stream else 'non-streamed'} chat completions, "
        f"{args.seconds:g}s per setting, {args.rounds} round(s)",
        flush=True,
    )
    rates: dict[tuple[str, int], list[float]] = {}
    try:
        asyncio.run(_wait_ready(upstream_url))
        for round_number in range(args.rounds):
            print(f"round {round_number + 1}", flush=True)
            for transport in args.transports:
                for result in _measure(
                    transport,
                    upstream_url,
                    args.connections,
                    args.seconds,
                    args.warmup,
                    args.stream,
                ):
                    rates.setdefault((transport, result.connections), []).append(result.rate)
    finally:
        upstream.terminate()
        upstream.join()

    print("\nmedian req/s  " + "".join(f"{n:>8} conn" for n in args.connections))
    for transport in args.transports:
        row = "".join(f"{statistics.median(rates[transport, n]):13.0f}" for n in args.connections)
        print(f"{transport:13}{row}")


if __name__ == "__main__":
    main()
