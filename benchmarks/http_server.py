"""The servers the HTTP benchmarks load: each one uvicorn worker in a process of its own.

    python -m benchmarks.http_server upstream --port 8101
    python -m benchmarks.http_server proxy --port 8102 --upstream http://127.0.0.1:8101 --bare
    python -m benchmarks.http_server proxy --port 8103 --upstream ... --store redis://... --strict

``proxy`` serves what ``budget-guard`` serves (:func:`budget_guard.app.build_app`, metrics on,
as by default); ``--bare`` serves the very same routes, proxy and lifespan without the guard
middleware, so the pair differs by the middleware and nothing else. Both add one trivial
Starlette endpoint, ``POST /bench/fixed-json``, the baseline of the usage endpoint figure.

The parent (:class:`ServerProcess`) starts these with ``subprocess``, waits until they answer,
reads their CPU time from ``/proc`` and stops them. Nothing is pinned to a core: the machine
has two, and the scheduler places the server, the upstream and the load generator as it would
in production.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

REPO_ROOT = Path(__file__).resolve().parent.parent

API_KEY = "bench-key-0123456789abcdef0123456789abcdef"
COMPANY_ID = uuid.UUID("00000000-0000-4000-8000-00000000be0c")
TOKEN_LIMIT = 2_000_000_000  # Int32 on the wire; never reached, so every request is admitted
FIXED_PATH = "/bench/fixed-json"
UNMETERED_PATH = "/v1/bench/unmetered-json"
# The size and shape of a usage answer, so the baseline writes as many bytes as the endpoint.
FIXED_BODY = (
    b'{"companyId":"00000000-0000-4000-8000-00000000be0c","tokensUsed":123456,'
    b'"tokenLimit":2000000000,"tokensRemaining":1999876544,"isWithinBudget":true,'
    b'"windowDays":30}'
)


async def _fixed_json(request: Request) -> Response:
    return Response(FIXED_BODY, media_type="application/json")


def proxy_app(
    upstream: str,
    store_url: str,
    prefix: str,
    *,
    strict: bool,
    bare: bool,
    connections: int | None = None,
    redis_py: bool = False,
    metrics: bool = True,
) -> ASGIApp:
    """The guarded proxy as the command builds it, or the same routes without the guard;
    ``connections`` raises the upstream pool (``[proxy] max_connections``) for many streams;
    ``redis_py`` runs the usage script over redis-py as before the lean transport (a
    benchmark-only switch, to compare the two in one run); ``metrics=False`` is the same app
    with ``[observability] metrics = false``."""
    if redis_py:
        _use_redis_py_for_scripts()
    from budget_guard.app import build_app
    from budget_guard.config import settings_from_mapping

    settings = settings_from_mapping(
        {
            "budget": {"default_token_limit": TOKEN_LIMIT},
            "store": {"url": store_url, "prefix": prefix},
            "auth": {"api_keys": [{"key": API_KEY, "company_id": str(COMPANY_ID)}]},
            # A path the guard forwards without reading the answer: the metering benchmark's
            # baseline (the same bytes as its metered embeddings answer).
            "guard": {
                "strict": strict,
                "routes": [{"method": "GET", "path": UNMETERED_PATH, "charge": "free"}],
            },
            **({"proxy": {"max_connections": connections}} if connections else {}),
            **({} if metrics else {"observability": {"metrics": False}}),
        }
    )
    guarded = build_app(settings, upstream_url=upstream)
    fixed = Route(FIXED_PATH, _fixed_json, methods=["POST"])
    if bare:
        return Starlette(routes=[*guarded.routes, fixed], lifespan=guarded.router.lifespan_context)
    guarded.router.routes.append(fixed)
    return guarded


def _use_redis_py_for_scripts() -> None:
    from functools import partial

    from budget_guard.stores.redis import RedisStore

    from_url = RedisStore.from_url
    RedisStore.from_url = partial(from_url, lean_script=False)  # type: ignore[method-assign]


def _serve(app: ASGIApp, port: int, connections: int | None = None) -> None:
    import uvicorn

    if connections:
        _serve_bounded(app, port, connections)
        return
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        workers=1,
        log_level="warning",
        access_log=False,
        # Longer than the proxy pool's 4 s idle expiry and than a pause between samples.
        timeout_keep_alive=60,
    )


def _serve_bounded(app: ASGIApp, port: int, connections: int) -> None:
    """Serve as ``budget-guard serve`` does (httptools, the connection-bounding protocol, the
    descriptor limit raised), with ``[server] max_connections`` at ``connections``."""
    import uvicorn

    from budget_guard.server.connections import BoundedConfig, ConnectionBounds
    from budget_guard.server.descriptors import raise_descriptor_limit

    limit = raise_descriptor_limit()
    if limit < 2 * connections + 512:
        raise SystemExit(f"descriptor limit {limit} too low for {connections} streams")
    config = BoundedConfig(
        app,
        bounds=ConnectionBounds(max_connections=connections),
        keep_alive_seconds=60,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        backlog=4096,
    )
    uvicorn.Server(config).run()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=["upstream", "proxy"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", help="the upstream base URL (proxy only)")
    parser.add_argument("--store", default="memory://", help="store URL (proxy only)")
    parser.add_argument("--prefix", default="budget-guard-bench:", help="Redis key prefix")
    parser.add_argument("--strict", action="store_true", help="reserve + settle")
    parser.add_argument("--bare", action="store_true", help="the same app without the guard")
    parser.add_argument("--redis-py", action="store_true", help="script over redis-py")
    parser.add_argument(
        "--connections", type=int, help="serve bounded, client and upstream connections at N"
    )
    args = parser.parse_args(argv)
    if args.role == "upstream":
        from budget_guard.proxy.demo_upstream import create_demo_upstream

        _serve(create_demo_upstream(), args.port)
    else:
        app = proxy_app(
            args.upstream,
            args.store,
            args.prefix,
            strict=args.strict,
            bare=args.bare,
            connections=args.connections,
            redis_py=args.redis_py,
        )
        _serve(app, args.port, args.connections)


# -- the parent's side -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far (Linux ``/proc``), NaN when it
    is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _TICKS


def process_rss_bytes(pid: int) -> float:
    """Resident memory of process ``pid`` now (Linux ``/proc``), NaN when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float("nan")


class ServerProcess:
    """One server subprocess on a free loopback port; a context manager that stops it."""

    def __init__(
        self, name: str, args: list[str], ready_path: str, module: str = "benchmarks.http_server"
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready_path = ready_path
        self._process = subprocess.Popen(
            [sys.executable, "-m", module, *args, "--port", str(self.port)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} server exited with {self._process.returncode}")
            try:
                with urllib.request.urlopen(self.url + self._ready_path, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} server did not come up in {timeout:g} s")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self._process.pid)

    def rss_bytes(self) -> float:
        return process_rss_bytes(self._process.pid)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def upstream_server() -> ServerProcess:
    return ServerProcess("upstream", ["upstream"], "/v1/models")


def proxy_server(
    name: str,
    upstream: str,
    *,
    store: str = "memory://",
    prefix: str = "budget-guard-bench:",
    strict: bool = False,
    bare: bool = False,
    connections: int | None = None,
    redis_py: bool = False,
) -> ServerProcess:
    args = ["proxy", "--upstream", upstream, "--store", store, "--prefix", prefix]
    args += ["--strict"] * strict + ["--bare"] * bare
    args += ["--connections", str(connections)] if connections else []
    args += ["--redis-py"] * redis_py
    return ServerProcess(name, args, "/healthz")


if __name__ == "__main__":
    main()
