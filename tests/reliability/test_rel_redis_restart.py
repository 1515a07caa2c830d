"""Redis restarted empty (no persistence): the usage it held is gone and every budget counts
from zero again. That cannot be undone, so it must be noticed and reported: an ERROR line
once per process and ``RedisStore.restarts_detected``, while a record stays one round trip."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from budget_guard.budget.window import Window
from budget_guard.stores import RedisStore, StoreUnavailable
from tests.redis_servers import RedisServer

from .support import (
    PERSISTENT,
    USAGE_PATH,
    budget_guard,
    call,
    companies,
    http_session,
    write_config,
)

LIMIT = 1_000_000
RESTARTED = "redis restarted empty"


def open_store(url: str, prefix: str, **options: float) -> RedisStore:
    return RedisStore.from_url(url, Window(30), prefix=prefix, socket_timeout=0.5, **options)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def restart_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if RESTARTED in r.getMessage()]


async def test_a_restart_that_lost_the_data_is_reported_once_by_each_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    company = uuid.uuid4()
    prefix = f"r{uuid.uuid4().hex[:6]}:"
    with RedisServer() as redis:
        worker = open_store(redis.url, prefix)
        other_worker = open_store(redis.url, prefix)
        try:
            await worker.record(company, 700, LIMIT)
            await other_worker.ping()  # start-up does this: the marker is learned
            await asyncio.sleep(0.1)  # the first record's background check
            redis.kill()
            with pytest.raises(StoreUnavailable):
                await worker.record(company, 5, LIMIT)
            redis.start()  # same port, nothing kept
            with caplog.at_level(logging.ERROR, logger="budget_guard.stores.redis"):
                after = await worker.record(company, 40, LIMIT)
                await until(lambda: worker.restarts_detected == 1)
                for _ in range(20):
                    await worker.record(company, 1, LIMIT)
                await asyncio.sleep(0.1)
                assert worker.restarts_detected == 1
                await other_worker.ping()
                assert other_worker.restarts_detected == 1
                await other_worker.ping()
            assert after.snapshot.tokens_used == 40, "the 700 tokens recorded before are gone"
            assert other_worker.restarts_detected == 1
            errors = restart_errors(caplog)
            assert len(errors) == 2, "once per process that saw the data go"
            assert all(r.levelno == logging.ERROR for r in errors)
            assert "usage recorded before" in errors[0].getMessage()
            assert "is lost" in errors[0].getMessage()
        finally:
            await worker.aclose()
            await other_worker.aclose()


async def test_a_quiet_restart_is_noticed_by_the_periodic_check() -> None:
    """No call failed (nothing ran while Redis was down); the next check still sees it."""
    company = uuid.uuid4()
    with RedisServer() as redis:
        store = open_store(redis.url, "quiet:", restart_check_seconds=0.2)
        try:
            await store.record(company, 10, LIMIT)
            await asyncio.sleep(0.1)
            redis.kill()
            redis.start()
            await asyncio.sleep(0.3)
            await store.record(company, 10, LIMIT)  # succeeds on a fresh connection
            await until(lambda: store.restarts_detected == 1)
            assert store.restarts_detected == 1
        finally:
            await store.aclose()


async def test_a_restart_that_kept_the_data_is_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    company = uuid.uuid4()
    with RedisServer(extra_args=PERSISTENT) as redis:
        store = open_store(redis.url, "kept:", restart_check_seconds=0.1)
        try:
            await store.record(company, 300, LIMIT)
            await store.ping()
            redis.kill()
            with pytest.raises(StoreUnavailable):
                await store.record(company, 1, LIMIT)
            redis.start()
            with caplog.at_level(logging.ERROR, logger="budget_guard.stores.redis"):
                await asyncio.sleep(0.2)
                result = await store.record(company, 5, LIMIT)
                await asyncio.sleep(0.2)
                await store.ping()
            assert result.snapshot.tokens_used == 305
            assert store.restarts_detected == 0
            assert restart_errors(caplog) == []
        finally:
            await store.aclose()


async def test_the_running_command_reports_an_empty_restart(tmp_path: Path) -> None:
    """``budget-guard serve --workers 2``: Redis is SIGKILLed and comes back empty while
    usage is being recorded; the server keeps answering and its log says what was lost."""
    tenants = companies(3)
    with RedisServer() as redis:
        config = write_config(tmp_path / "restart.toml", tenants, store_url=redis.url)
        with budget_guard(config, workers=2) as server:
            async with http_session(8) as session:

                async def record(tokens: int) -> int:
                    answers = await asyncio.gather(
                        *(
                            call(
                                session,
                                "POST",
                                server.url + USAGE_PATH,
                                headers=t.auth,
                                json={"tokensUsed": tokens},
                            )
                            for t in tenants
                        )
                    )
                    return {a.status for a in answers}.pop() if answers else 0

                for _ in range(5):
                    assert await record(100) == 200
                redis.kill()
                assert await record(1) == 503
                redis.start()
                deadline = time.monotonic() + 15
                while RESTARTED not in server.log() and time.monotonic() < deadline:
                    await record(1)
                    await asyncio.sleep(0.1)
            log = server.log()
            assert server.alive
        assert 1 <= log.count(RESTARTED) <= 2, log[-2000:]  # once per worker that saw it
        assert "usage recorded before" in log and "Traceback" not in log


async def test_after_a_restart_the_first_call_on_each_pooled_connection_succeeds() -> None:
    """Redis closed every pooled connection when it went away. Once it answers again no call
    may fail on one of those dead connections (a spurious 503, or a fail-closed refusal)."""
    company = uuid.uuid4()
    with RedisServer(extra_args=PERSISTENT) as redis:
        store = open_store(redis.url, "pool:")
        try:
            await asyncio.gather(*(store.record(company, 10, LIMIT) for _ in range(8)))
            redis.kill()
            await asyncio.sleep(0.1)  # the event loop sees the connections close
            redis.start()
            results = await asyncio.gather(*(store.record(company, 1, LIMIT) for _ in range(8)))
            assert max(r.snapshot.tokens_used for r in results) == 88
        finally:
            await store.aclose()
