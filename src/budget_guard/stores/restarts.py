"""Noticing that Redis came back empty, so that lost usage is reported instead of silent.

A Redis restarted without persistence (or flushed, or failed over to a replica that lagged)
answers again as if nothing had ever been recorded: every budget counts from zero. That
cannot be undone, but an operator must hear about it. So a marker key is written the first
time a store reaches Redis, and is checked again later: a missing marker, or one another
process re-wrote, means the data it sat beside is gone too.

The check never runs on the record path (a record stays one round trip): it is a background
call at most once every ``interval`` seconds while the store is in use, at once after the store
was unreachable (a restart shows itself as an outage first), and inline in ``ping()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from budget_guard.failure import describe

log = logging.getLogger("budget_guard.stores.redis")

# One round trip: the marker as it stands, writing a fresh one when it is missing.
_MARKER_SCRIPT = """
local seen = redis.call('GET', KEYS[1])
if seen then return seen end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""


class RestartWatch:
    """Watches one Redis (one marker key) on behalf of one store."""

    def __init__(self, client: Any, key: str, *, interval: float = 5.0) -> None:
        self._script = client.register_script(_MARKER_SCRIPT)
        self._key = key
        self._interval = interval
        self._next_check = 0.0  # monotonic; 0: as soon as the store is used
        self._task: asyncio.Task[None] | None = None
        self._marker: str | None = None
        self._seen_at: float | None = None
        self.detected = 0
        """How many times this process found the data gone (each logged once at ERROR)."""
        self.last_detected_at: float | None = None

    def store_failed(self) -> None:
        """The store was unreachable: check as soon as it answers again."""
        self._next_check = 0.0

    def store_answered(self) -> None:
        """Cheap, called after every successful store call: starts a background check when
        one is due and none is running."""
        if not self._interval or time.monotonic() < self._next_check:
            return
        if self._task is not None and not self._task.done():
            return
        self._next_check = time.monotonic() + self._interval
        self._task = asyncio.get_running_loop().create_task(self._check_quietly())

    async def check(self) -> None:
        """Compare the marker with the one last seen; raises the client's errors."""
        fresh = f"{time.time():.3f} {secrets.token_hex(8)}"
        raw = await self._script(keys=[self._key], args=[fresh])
        current = raw.decode() if isinstance(raw, bytes) else str(raw)
        if self._marker is not None and current != self._marker:
            self.detected += 1
            self.last_detected_at = time.time()
            log.error(
                "redis restarted empty: usage recorded before %s is lost (this process last "
                "saw the data intact at %s); every budget counts from zero again",
                _when(_written_at(current)),
                _when(self._seen_at),
            )
        self._marker = current
        self._seen_at = time.time()

    async def _check_quietly(self) -> None:
        try:
            await self.check()
        except (RedisError, OSError):
            self.store_failed()
        except Exception as error:  # a background task must never die with an unread error
            log.error("checking whether redis restarted empty failed: %s", describe(error))

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _written_at(marker: str) -> float | None:
    try:
        return float(marker.split(" ", 1)[0])
    except ValueError:
        return None


def _when(t: float | None) -> str:
    if t is None:
        return "an unknown time"
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
