"""Log lines about a store outage, at most one of each kind per interval.

Under an outage every request has the same news: a line each is thousands a second on a busy
worker (one run of the stream benchmark wrote 2,209 ``journaled for replay`` lines),
which buries everything else and grows the log without bound. The first line of a kind is
written at once; later ones within ``every`` seconds are counted, and the next line of that
kind says how many there were. The metrics still count every event, and the journal's
replay line says how many entries it kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

LOG_EVERY_SECONDS = 10.0


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
        # kind -> [when its last line was written, events held back since]
        self._kinds: dict[str, list[float]] = {}

    def log(self, level: int, kind: str, message: str, *args: object) -> None:
        """``message % args`` at ``level``, unless a line of ``kind`` was written less than
        ``every`` seconds ago (then it is only counted)."""
        now = self._clock()
        state = self._kinds.get(kind)
        if state is not None and now - state[0] < self._every:
            state[1] += 1
            return
        held = int(state[1]) if state is not None else 0
        self._kinds[kind] = [now, 0]
        if held:
            message += " (%d more like it in the last %.0f s, not logged one by one)"
            args = (*args, held, now - state[0])  # type: ignore[index]
        self._logger.log(level, message, *args)
