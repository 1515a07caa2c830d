"""Metering in bounded memory: the guarded proxy's peak RSS while 100 clients each fetch a
~15.6 MB embeddings answer, against the same load where nothing is metered.

Three servers, each a uvicorn worker in a process of its own (:mod:`benchmarks.http_server`),
in front of one mock upstream (:mod:`benchmarks.embeddings_upstream`) that answers with the
same large JSON body, sliced as a real upstream sends it:

- ``metered``: the guarded proxy as the command builds it, ``POST /v1/embeddings`` (the guard
  reads every answer as it passes, ``counting.json_body``);
- ``unmetered``: the same guarded proxy, the same bytes from ``GET`` of a path configured
  ``charge = "free"`` (``http_server.UNMETERED_PATH``): authenticated and forwarded, its
  answer not read. This is the baseline the
  target is on: the two differ by the metering and nothing else;
- ``bare``: the same routes without the guard (``--bare``), ``POST /v1/embeddings``. Its
  start is lighter by what the guard loads once (tiktoken encodings, counting workers:
  136 MiB here), so its ratio is reported, with the growth under load (peak minus start)
  next to it.

A peak resident set (``VmHWM``) is a process's whole-life maximum, so every sample is a fresh
server: started, loaded once with ``CONCURRENCY`` simultaneous requests (each answer read to
its last byte and checked), read from ``/proc/<pid>/status``, stopped. Rounds rotate the order
of the three; figures are medians.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import orjson

from benchmarks.harness import Context, Figure, Target, comparison
from benchmarks.http_server import API_KEY, UNMETERED_PATH, ServerProcess, proxy_server
from benchmarks.metering_cpu import cpu_ms_per_mb

GROUP = "metering"

CONCURRENCY = 100
BODY_BYTES = 15_600_000
TARGET = Target.ratio("<=", 1.2)
SIDES = ("metered", "unmetered", "bare")
_REQUEST = orjson.dumps({"model": "text-embedding-3-small", "input": "The food was delicious."})
_HEADERS = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
_READ_BYTES = 256 * 1024
_KIB_PER_MIB = 1024


@dataclass(frozen=True, slots=True)
class Sample:
    """One fresh server under one load, in MiB: at start, its peak, and after the load."""

    start: float
    peak: float
    after: float
    seconds: float

    @property
    def growth(self) -> float:
        return self.peak - self.start


def status_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory field in KiB (``VmHWM`` is the peak resident set)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


async def fetch_concurrently(base_url: str, concurrency: int, *, metered: bool) -> int:
    """``concurrency`` requests at once, for the embeddings answer (``metered``) or the same
    bytes on the unmetered path; every answer must be a whole 200. Returns an answer's size."""

    async def fetch(session: aiohttp.ClientSession) -> int:
        if metered:
            request = session.post(base_url + "/v1/embeddings", data=_REQUEST)
        else:
            request = session.get(base_url + UNMETERED_PATH)
        async with request as response:
            if response.status != 200:
                raise AssertionError(f"status {response.status}: {await response.text()}")
            size = 0
            async for chunk in response.content.iter_chunked(_READ_BYTES):
                size += len(chunk)
            if response.content_length is not None and size != response.content_length:
                raise AssertionError(f"read {size} of {response.content_length} bytes")
            return size

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=_HEADERS
    ) as session:
        sizes = await asyncio.gather(*(fetch(session) for _ in range(concurrency)))
    if len(set(sizes)) != 1:
        raise AssertionError(f"answers of different sizes: {sorted(set(sizes))}")
    return sizes[0]


def sample(upstream_url: str, side: str, concurrency: int) -> Sample:
    """A fresh server for ``side`` (one of ``SIDES``), loaded once."""
    loop = asyncio.new_event_loop()
    try:
        with proxy_server(side, upstream_url, bare=side == "bare") as server:
            server.wait_ready()
            start = status_kib(server.pid, "VmRSS") / _KIB_PER_MIB
            began = loop.time()
            loop.run_until_complete(
                fetch_concurrently(server.url, concurrency, metered=side != "unmetered")
            )
            seconds = loop.time() - began
            peak = status_kib(server.pid, "VmHWM") / _KIB_PER_MIB
            after = status_kib(server.pid, "VmRSS") / _KIB_PER_MIB
    finally:
        loop.close()
    return Sample(start, peak, after, seconds)


def measure(
    concurrency: int, body_bytes: int, rounds: int, sides: tuple[str, ...] = SIDES
) -> dict[str, list[Sample]]:
    """``rounds`` samples of each side behind one upstream, the order rotating each round."""
    samples: dict[str, list[Sample]] = {side: [] for side in sides}
    upstream = ServerProcess(
        "embeddings upstream",
        ["--bytes", str(body_bytes)],
        "/v1/models",
        module="benchmarks.embeddings_upstream",
    )
    with upstream:
        upstream.wait_ready(timeout=60)
        for index in range(rounds):
            shift = index % len(sides)
            for side in sides[shift:] + sides[:shift]:
                samples[side].append(sample(upstream.url, side, concurrency))
    return samples


def run(ctx: Context) -> list[Figure]:
    concurrency = ctx.size(CONCURRENCY, 4)
    body_bytes = ctx.size(BODY_BYTES, 1_000_000)
    samples = measure(concurrency, body_bytes, ctx.size(3, 1))
    load = f"{concurrency} × {body_bytes / 1e6:.1f} MB"

    def median(side: str, attribute: str) -> float:
        return statistics.median(getattr(s, attribute) for s in samples[side])

    detail = {
        "concurrency": concurrency,
        "body_bytes": body_bytes,
        "samples": {
            side: [{**asdict(s), "growth": s.growth} for s in runs]
            for side, runs in samples.items()
        },
    }

    def figure(name: str, attribute: str, baseline: str, unit: str = "MiB") -> Figure:
        return Figure(
            name,
            median("metered", attribute),
            unit,
            baseline=median(baseline, attribute),
            baseline_label=f"{baseline} path" if baseline == "unmetered" else "bare proxy",
        )

    peak = figure(f"metered peak RSS (VmHWM), {load} embeddings", "peak", "unmetered")
    peak.target, peak.detail = TARGET, detail
    cpu = [
        comparison(
            f"metering CPU per MB, {name}",
            samples,
            measured="reader",
            baseline="orjson",
            unit="ms/MB",
            target=None,
            baseline_label="orjson.loads of the whole body",
        )
        for name, samples in cpu_ms_per_mb(body_bytes, ctx.size(7, 1)).items()
    ]
    return [
        *cpu,
        peak,
        figure(f"metered peak RSS vs the bare proxy, {load}", "peak", "bare"),
        figure(f"metered growth under load (peak - start), {load}", "growth", "bare"),
        figure(f"metered RSS after the load, {load}", "after", "unmetered"),
        figure("guarded RSS at start (encodings loaded)", "start", "bare"),
        figure(f"time to serve {load}", "seconds", "unmetered", unit="s"),
    ]
