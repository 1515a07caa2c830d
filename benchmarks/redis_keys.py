"""Redis helpers the store benchmarks share: count the commands a server ran, and delete
exactly the keys a benchmark wrote (never a FLUSH: ``--redis-url`` may point at a shared one)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis


async def command_calls(client: aioredis.Redis) -> dict[str, int]:
    """``INFO commandstats`` as ``{command: calls}`` (subcommands such as ``client|setinfo``
    keep their ``|``)."""
    stats: dict[str, Any] = await client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(entry["calls"])
        for name, entry in stats.items()
        if isinstance(entry, dict) and "calls" in entry
    }


def calls_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        name: after[name] - before.get(name, 0)
        for name in after
        if after[name] != before.get(name, 0)
    }


async def delete_prefixed(client: aioredis.Redis, prefix: str) -> int:
    deleted = 0
    batch: list[Any] = []
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += await client.unlink(*batch)
            batch = []
    if batch:
        deleted += await client.unlink(*batch)
    return deleted


async def server_version(client: aioredis.Redis) -> str:
    info: dict[str, Any] = await client.info("server")
    return str(info.get("redis_version", "?"))
