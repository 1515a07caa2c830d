"""The guard on a real 3-node Redis Cluster while the node holding a company's keys freezes:
fail-open serves, journals what it could not record, and replays it exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid

import httpx

from budget_guard.budget.window import Window
from budget_guard.stores import RedisStore
from tests.redis_servers import RedisCluster, RedisServer

from .conftest import COMPANY_A, guarded_proxy, journal_replayed, served_burst


def _node_holding(cluster: RedisCluster, company: uuid.UUID) -> RedisServer:
    """The node serving the slot of ``company``'s hash tag, read from ``CLUSTER NODES``
    (one line per node: ``id ip:port@cport flags master - ... connected 0-5460 ...``)."""

    def ask(*command: str) -> str:
        port = str(cluster.nodes[0].port)
        done = subprocess.run(["redis-cli", "-p", port, *command], capture_output=True, text=True)
        return done.stdout.strip()

    slot = int(ask("cluster", "keyslot", f"{{{company}}}"))
    for line in ask("cluster", "nodes").splitlines():
        fields = line.split()
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        for served in fields[8:]:
            low, _, high = served.partition("-")
            if low.isdigit() and int(low) <= slot <= int(high or low):
                return next(node for node in cluster.nodes if node.port == port)
    raise AssertionError(f"no node serves slot {slot}")


async def test_a_frozen_node_loses_and_doubles_nothing(demo_upstream_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}:"
    with RedisCluster() as cluster:
        frozen = _node_holding(cluster, COMPANY_A)
        store = RedisStore.from_url(
            cluster.url, Window(30), cluster=True, prefix=prefix, socket_timeout=0.5
        )
        with guarded_proxy(demo_upstream_url, store=store) as g:
            async with httpx.AsyncClient(base_url=g.url, timeout=30) as http:
                total = await served_burst(http, 20)
                middleware = g.middleware()
                assert middleware is not None and frozen.proc is not None
                # Frozen until the guard has journaled usage it could not record, and never
                # as long as the cluster's 2 s node timeout (the cluster stays up meanwhile).
                os.kill(frozen.proc.pid, signal.SIGSTOP)
                burst = asyncio.create_task(served_burst(http, 20))
                try:
                    deadline = time.monotonic() + 1.5
                    while not middleware.journal and time.monotonic() < deadline:
                        await asyncio.sleep(0.02)
                    journaled = len(middleware.journal)
                finally:
                    os.kill(frozen.proc.pid, signal.SIGCONT)
                total += await burst
                assert journaled > 0, "the freeze cost no recording: nothing was tested"
                total += await served_burst(http, 5)
                await journal_replayed(g)
        # A reader of its own: the server's client belongs to the server's event loop.
        reader = RedisStore.from_url(cluster.url, Window(30), cluster=True, prefix=prefix)
        snapshot = await reader.read(COMPANY_A, 1_000_000)
        await reader.aclose()
    assert snapshot.tokens_used == total, "every token, once, from before, during and after"
