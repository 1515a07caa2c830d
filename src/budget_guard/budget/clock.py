"""Clocks.

Every store takes a clock instead of calling ``time.time()`` itself so that tests (and the
clock-jump tests in particular) can move time without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""A function returning the current time as seconds since the Unix epoch."""

system_clock: Clock = time.time


class ManualClock:
    """A clock that only moves when told to: the tests' time machine."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def set(self, when: float) -> None:
        self.now = float(when)
