"""Redis failing under load: SIGKILLed and restarted (with its data kept on disk), or frozen
(SIGSTOP) so that calls time out instead of being refused.

Through all of it every request is answered within the client's deadline and the server
keeps running. Fail-open serves the proxy path and journals what it could not record, then
replays it: the final totals are exact. Fail-closed refuses the proxy path with 503 while the
store is down and records nothing for what it refused. The usage endpoint answers 503 while
the store is down, and a retry with the same Idempotency-Key afterwards is counted once.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.redis_servers import RedisServer

from .support import (
    CHAT_PATH,
    PERSISTENT,
    USAGE_PATH,
    Answer,
    Company,
    budget_guard,
    call,
    companies,
    eventually_used,
    http_session,
    write_config,
)

WORKERS = 12
MAX_REQUESTS_PER_WORKER = 400
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}


@dataclass
class Book:
    """What the clients sent and were told, to compare with the server's totals."""

    sent: Counter[Company] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    to_retry: list[tuple[Company, int, str]] = field(default_factory=list)
    slowest: float = 0.0
    """The longest any request took (reported, not asserted: the client deadline is)."""


async def drive(
    session: aiohttp.ClientSession,
    base: str,
    tenants: list[Company],
    stop: asyncio.Event,
    book: Book,
    *,
    fail_closed: bool,
) -> None:
    """Mixed traffic from WORKERS concurrent clients until ``stop`` (or a request cap)."""
    rng = random.Random(11)

    async def client(number: int) -> None:
        for i in range(MAX_REQUESTS_PER_WORKER):
            if stop.is_set():
                return
            tenant = rng.choice(tenants)
            started = time.monotonic()
            if i % 2:
                answer = await call(
                    session, "POST", base + CHAT_PATH, headers=tenant.auth, json=CHAT
                )
                book.statuses["chat", answer.status] += 1
                assert answer.body is not None
                if answer.status == 200:
                    book.sent[tenant] += answer.body["usage"]["total_tokens"]
                else:
                    assert fail_closed and answer.status == 503, answer
                    assert answer.body["error"]["code"] == "budget_store_unavailable"
            else:
                tokens, key = rng.randint(1, 900), f"w{number}-{i}"
                headers = {**tenant.auth, "Idempotency-Key": key}
                answer = await call(
                    session, "POST", base + USAGE_PATH, headers=headers, json={"tokensUsed": tokens}
                )
                book.statuses["record", answer.status] += 1
                if answer.status == 200:
                    book.sent[tenant] += tokens
                else:
                    assert answer.status == 503, answer
                    book.to_retry.append((tenant, tokens, key))
            book.slowest = max(book.slowest, time.monotonic() - started)

    await asyncio.gather(*(client(n) for n in range(WORKERS)))


async def retry_refused(session: aiohttp.ClientSession, base: str, book: Book) -> None:
    """Every recording refused with 503, sent again with its Idempotency-Key."""
    for tenant, tokens, key in book.to_retry:
        headers = {**tenant.auth, "Idempotency-Key": key}
        answer = await call(
            session, "POST", base + USAGE_PATH, headers=headers, json={"tokensUsed": tokens}
        )
        assert answer.status == 200, answer
        book.sent[tenant] += tokens


async def explicit_turn(session: aiohttp.ClientSession, base: str, tenant: Company) -> Answer:
    """One explicit recording of 777 tokens, always under the same Idempotency-Key."""
    return await call(
        session,
        "POST",
        base + USAGE_PATH,
        headers={**tenant.auth, "Idempotency-Key": "explicit-turn"},
        json={"tokensUsed": 777},
    )


async def explicit_post_while_down(
    session: aiohttp.ClientSession, base: str, tenant: Company
) -> None:
    answer = await explicit_turn(session, base, tenant)
    assert answer.status == 503, answer
    assert answer.headers.get("Retry-After") == "1"


async def explicit_retry_counts_once(
    session: aiohttp.ClientSession, base: str, tenant: Company, book: Book
) -> None:
    for attempt in range(2):
        answer = await explicit_turn(session, base, tenant)
        assert answer.status == 200, answer
        if attempt == 1:
            assert answer.headers.get("idempotent-replayed") == "true"
        # The first retry may be a replay too: a call that timed out against a frozen Redis
        # still ran once Redis woke up. Either way the turn is counted once.
    book.sent[tenant] += 777


async def outage_under_load(
    tmp_path: Path, *, mode: str, fault: str
) -> tuple[Book, dict[Company, int], str]:
    tenants = companies(6)
    book = Book()
    with RedisServer(extra_args=PERSISTENT) as redis:
        config = write_config(
            tmp_path / f"{mode}-{fault}.toml",
            tenants,
            store_url=redis.url,
            guard={"on_store_error": mode},
        )
        with budget_guard(config, workers=2) as server:
            async with http_session(WORKERS + 4) as session:
                stop = asyncio.Event()
                load = asyncio.create_task(
                    drive(session, server.url, tenants, stop, book, fail_closed=mode == "closed")
                )
                await asyncio.sleep(1.0)
                assert redis.proc is not None
                if fault == "kill":
                    await asyncio.to_thread(redis.kill)
                else:
                    os.kill(redis.proc.pid, signal.SIGSTOP)
                await asyncio.sleep(0.3)
                await explicit_post_while_down(session, server.url, tenants[0])
                await asyncio.sleep(1.2)
                if fault == "kill":
                    await asyncio.to_thread(redis.start)  # same port and data directory
                else:
                    os.kill(redis.proc.pid, signal.SIGCONT)
                await asyncio.sleep(1.0)
                stop.set()
                await load
                await retry_refused(session, server.url, book)
                await explicit_retry_counts_once(session, server.url, tenants[0], book)
                totals = {
                    t: await eventually_used(session, server.url, t, book.sent[t]) for t in tenants
                }
            log = server.log()
            assert server.alive, log[-3000:]
    return book, totals, log


@pytest.mark.parametrize("fault", ["kill", "freeze"])
async def test_fail_open_serves_through_a_redis_outage_and_loses_nothing(
    tmp_path: Path, fault: str
) -> None:
    book, totals, log = await outage_under_load(tmp_path, mode="open", fault=fault)
    print(f"\nfail-open {fault}: {dict(book.statuses)}, slowest answer {book.slowest:.2f} s")
    assert {status for kind, status in book.statuses if kind == "chat"} == {200}
    assert book.statuses["record", 503] > 0, "some recordings met the outage"
    assert book.to_retry, book.statuses
    assert "journaled for replay" in log and "journal replayed" in log
    assert totals == {t: book.sent[t] for t in totals}, "exact: nothing lost, nothing twice"
    assert "Traceback" not in log and "restarted empty" not in log


async def test_fail_closed_refuses_during_a_redis_outage_and_records_nothing_partial(
    tmp_path: Path,
) -> None:
    book, totals, log = await outage_under_load(tmp_path, mode="closed", fault="kill")
    print(f"\nfail-closed kill: {dict(book.statuses)}, slowest answer {book.slowest:.2f} s")
    assert book.statuses["chat", 503] > 0, "the proxy path refused while Redis was down"
    assert book.statuses["chat", 200] > 0
    assert totals == {t: book.sent[t] for t in totals}, "exactly what was served, once"
    assert "Traceback" not in log and "restarted empty" not in log
