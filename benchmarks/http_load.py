"""Load generators for the HTTP benchmarks: ``wrk`` when it is installed, else an aiohttp driver.

Both are closed loops with a fixed number of keep-alive connections: each connection sends its
next request as soon as the previous answer is read, so at most ``connections`` requests are
ever in flight and the generator can never queue work faster than the server drains it. Both
run in a process of their own (``wrk``, or ``python -m benchmarks.http_load``), so the
generator's CPU time is its own, measured (``os.wait4``) and reported next to the figures.

``wrk`` (Debian's package, C, one thread) is the preferred generator: it spends a few
microseconds per request, so on this 2-core machine nearly all CPU goes to the servers being
compared. The aiohttp driver costs about as much CPU per request as the proxy itself; it is
the fallback (the smoke test must run where ``wrk`` is not installed), and ``BENCH_HTTP_DRIVER``
(``wrk`` or ``aiohttp``) forces a choice. Every answer is checked: a non-200 status or a
connection error fails the sample, so a fast error is never counted as throughput.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from benchmarks.http_server import process_cpu_seconds

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The percentiles every sample keeps (enough to draw its distribution).
PERCENTILES: tuple[float, ...] = (
    *(float(p) for p in range(1, 100)),
    99.5,
    99.9,
    99.99,
)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What every connection sends, over and over."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass(slots=True)
class LoadResult:
    """One timed run: completed requests, wall seconds, latency percentiles (ms), and the
    CPU seconds the generator itself used."""

    requests: int
    seconds: float
    percentiles_ms: dict[float, float]
    driver: str
    driver_cpu_seconds: float = float("nan")

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def p(self, percentile: float) -> float:
        return self.percentiles_ms[percentile]

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": self.seconds,
            "rate": self.rate,
            "driver": self.driver,
            "driver_cpu_seconds": self.driver_cpu_seconds,
            "percentiles_ms": {str(k): v for k, v in self.percentiles_ms.items()},
        }


class LoadFailed(RuntimeError):
    """The server answered errors or dropped connections during a timed run."""


class Driver(Protocol):
    name: str

    def run(
        self, base_url: str, request: HttpRequest, *, connections: int, seconds: float
    ) -> LoadResult: ...

    def close(self) -> None: ...


def open_driver(smoke: bool) -> Driver:
    """``wrk`` when installed (full runs), else aiohttp; smoke runs always use aiohttp, so the
    smoke test exercises the same path on every machine, with or without ``wrk``."""
    forced = os.environ.get("BENCH_HTTP_DRIVER")
    if forced == "wrk" or (forced is None and not smoke and shutil.which("wrk") is not None):
        return WrkDriver()
    return AiohttpDriver()


# -- wrk ---------------------------------------------------------------------------------------

_WRK_SCRIPT = """
wrk.method = {method}
wrk.body = {body}
{headers}
local percentiles = {{{percentiles}}}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-RESULT {{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"percentiles_us":[',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
  for i, p in ipairs(percentiles) do
    if i > 1 then io.write(",") end
    io.write(string.format("%d", latency:percentile(p)))
  end
  io.write("]}}\\n")
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal of ASCII text is a valid Lua string literal


def _wrk_script(request: HttpRequest) -> str:
    headers = "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in request.headers.items()
    )
    return _WRK_SCRIPT.format(
        method=_lua_string(request.method),
        body=_lua_string(request.body.decode("ascii")),
        headers=headers,
        percentiles=", ".join(f"{p:g}" for p in PERCENTILES),
    )


class WrkDriver:
    """One ``wrk`` process per timed run (it starts in milliseconds); its CPU time comes from
    ``os.wait4``."""

    name = "wrk"

    def run(
        self, base_url: str, request: HttpRequest, *, connections: int, seconds: float
    ) -> LoadResult:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(_wrk_script(request))
        argv = ["wrk", "--threads", "1", "--connections", str(connections)]
        argv += ["--duration", f"{max(1, round(seconds))}s", "--timeout", "10s"]
        argv += ["--script", script.name, base_url + request.path]
        try:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            assert process.stdout is not None
            output = process.stdout.read()
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        finally:
            os.unlink(script.name)
        if process.returncode != 0:
            raise LoadFailed(f"wrk exited with {process.returncode}: {output[-500:]}")
        line = next((x for x in output.splitlines() if x.startswith("BENCH-RESULT ")), None)
        if line is None:
            raise LoadFailed(f"wrk printed no result: {output[-500:]}")
        data = json.loads(line.removeprefix("BENCH-RESULT "))
        errors = {k: data[k] for k in ("connect", "read", "write", "status", "timeout") if data[k]}
        if errors or not data["requests"]:
            raise LoadFailed(f"wrk saw errors against {base_url + request.path}: {errors}")
        return LoadResult(
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            percentiles_ms={
                p: us / 1000 for p, us in zip(PERCENTILES, data["percentiles_us"], strict=True)
            },
            driver=self.name,
            driver_cpu_seconds=usage.ru_utime + usage.ru_stime,
        )

    def close(self) -> None:
        pass


# -- aiohttp -----------------------------------------------------------------------------------


class AiohttpDriver:
    """One generator process for the whole benchmark (``python -m benchmarks.http_load``),
    told what to run one JSON line at a time, so no run pays for starting Python; its CPU time
    per run comes from ``/proc``."""

    name = "aiohttp"

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.http_load"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(
        self, base_url: str, request: HttpRequest, *, connections: int, seconds: float
    ) -> LoadResult:
        assert self._process.stdin is not None and self._process.stdout is not None
        spec = {
            "url": base_url + request.path,
            "method": request.method,
            "body": request.body.decode("utf-8"),
            "headers": request.headers,
            "connections": connections,
            "seconds": seconds,
        }
        cpu = process_cpu_seconds(self._process.pid)
        self._process.stdin.write(json.dumps(spec) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        used = process_cpu_seconds(self._process.pid) - cpu
        if not line:
            raise LoadFailed(f"the aiohttp generator exited with {self._process.wait()}")
        data = json.loads(line)
        if "error" in data:
            raise LoadFailed(data["error"])
        return LoadResult(
            requests=data["requests"],
            seconds=data["seconds"],
            percentiles_ms={float(p): ms for p, ms in data["percentiles_ms"]},
            driver=self.name,
            driver_cpu_seconds=used,
        )

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def percentiles_of(latencies_ms: list[float]) -> dict[float, float]:
    """Nearest-rank percentiles of raw samples."""
    ordered = sorted(latencies_ms)
    last = len(ordered) - 1
    return {p: ordered[min(last, int(p / 100 * len(ordered)))] for p in PERCENTILES}


async def _aiohttp_load(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    body = spec["body"].encode("utf-8")
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=spec["connections"])
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        stop_at = started + spec["seconds"]

        async def worker() -> None:
            while (sent := time.perf_counter()) < stop_at:
                async with session.request(
                    spec["method"], spec["url"], data=body, headers=spec["headers"]
                ) as response:
                    await response.read()
                    if response.status != 200:
                        raise LoadFailed(f"{spec['url']} answered {response.status}")
                latencies.append((time.perf_counter() - sent) * 1000)

        await asyncio.gather(*(worker() for _ in range(spec["connections"])))
        elapsed = time.perf_counter() - started
    if not latencies:
        raise LoadFailed(f"no request to {spec['url']} completed")
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "percentiles_ms": list(percentiles_of(latencies).items()),
    }


def main() -> None:
    """The generator process: one JSON spec per input line, one JSON result per output line."""
    for line in sys.stdin:
        try:
            result = asyncio.run(_aiohttp_load(json.loads(line)))
        except Exception as exc:  # reported to the parent, which fails the sample
            result = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
