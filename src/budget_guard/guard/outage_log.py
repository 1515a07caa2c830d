"""Log lines about a store outage, at most one of each kind per interval.

Under an outage every request has the same news: a line each is thousands a second on a busy
worker (one run of the stream benchmark wrote 2,209 ``journaled for replay`` lines),
which buries everything else and grows the log without bound. The first line of a kind is
written at once; later ones within ``every`` seconds are counted, and when the interval ends
one line (the latest event's) says how many there were. That line comes from a timer on the
event loop, so the count is written even when the outage, or the traffic, stops right after;
``flush`` writes what is still held at shutdown. The metrics still count every event, and the
journal's replay line says how many entries it kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

LOG_EVERY_SECONDS = 10.0


class _Kind:
    """One kind's state: when its last line was written, and what was held back since."""

    __slots__ = ("held", "last", "latest", "timer")

    def __init__(self, last: float) -> None:
        self.last = last
        self.held = 0
        self.latest: tuple[int, str, tuple[object, ...]] | None = None
        self.timer: asyncio.TimerHandle | None = None


class OutageLog:
    __slots__ = ("_clock", "_every", "_kinds", "_logger")

    def __init__(
        self,
        logger: logging.Logger,
        *,
        every: float = LOG_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._every = every
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def log(self, level: int, kind: str, message: str, *args: object) -> None:
        """``message % args`` at ``level``, unless a line of ``kind`` was written less than
        ``every`` seconds ago (then it is counted, and told when the interval ends)."""
        now = self._clock()
        state = self._kinds.get(kind)
        if state is not None and now - state.last < self._every:
            state.held += 1
            state.latest = (level, message, args)
            if state.timer is None:
                self._schedule(kind, state, state.last + self._every - now)
            return
        if state is not None and state.held:  # held with no loop to time the summary
            self._write(kind, level, message, args, state.held, now)
            return
        self._kinds[kind] = _Kind(now)
        self._logger.log(level, message, *args)

    def flush(self) -> None:
        """Write every count still held (at shutdown: no later line would carry it)."""
        for kind, state in list(self._kinds.items()):
            self._summarise(kind, state)

    def _schedule(self, kind: str, state: _Kind, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next line of this kind carries the count
        state.timer = loop.call_later(max(delay, 0.0), self._summarise, kind, state)

    def _summarise(self, kind: str, state: _Kind) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if state.held and state.latest is not None:
            level, message, args = state.latest
            self._write(kind, level, message, args, state.held - 1, self._clock())

    def _write(
        self, kind: str, level: int, message: str, args: tuple[object, ...], more: int, now: float
    ) -> None:
        """The line of one event, with the ``more`` held back since the kind's last line."""
        state = self._kinds.get(kind)
        since = now - state.last if state is not None else 0.0
        if state is not None and state.timer is not None:
            state.timer.cancel()
        self._kinds[kind] = _Kind(now)
        if more:
            message += " (%d more like it in the last %.0f s, not logged one by one)"
            args = (*args, more, since)
        self._logger.log(level, message, *args)
