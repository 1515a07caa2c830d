"""A small fixed pool of threads that counts large bodies away from the event loop.

Counting a 10 MB prompt takes about half a second of CPU; on the loop that is half a second in
which no other request, health check included, gets an answer. tiktoken releases the GIL while
it encodes, so in a thread the loop keeps running (orjson's parse holds the GIL, but only for
milliseconds per megabyte).

The pool is fixed (``min(4, cpus)`` threads) because more threads than cores only queue for
CPU in the kernel instead of here, where the order can be chosen. Waiting jobs are served by
earliest estimated finish: arrival time plus the body's size at a nominal counting rate. A
100 KB body arriving behind four queued 10 MB ones is estimated to finish long before them and
goes first, so one tenant's huge uploads delay others by at most the jobs already running; yet
a huge job is never starved, since any job arriving after its estimated finish sorts behind it.
A job whose caller has gone (client disconnected, task cancelled) is dropped unrun.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
# (estimated finish, arrival order to break ties, the caller's future, the job)
_Entry = tuple[float, int, "concurrent.futures.Future[Any]", Callable[[], Any]]

NOMINAL_BYTES_PER_SECOND = 20e6
"""Counting speed used only to order waiting jobs (measured: 15-25 MB/s for prose and CJK)."""


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


class CountingPool:
    """Threads started on first use; daemons, so a process never waits on them to exit."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self._queue: list[_Entry] = []
        self._sequence = itertools.count()
        self._ready = threading.Condition()
        self._started = False

    async def run(self, job: Callable[[], T], cost_bytes: int) -> T:
        """``job()`` on a pool thread; cancelling the awaiting task drops it if not yet started."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        finish_estimate = time.monotonic() + cost_bytes / NOMINAL_BYTES_PER_SECOND
        with self._ready:
            if not self._started:
                self._start()
            heapq.heappush(self._queue, (finish_estimate, next(self._sequence), future, job))
            self._ready.notify()
        return await asyncio.wrap_future(future)

    def _start(self) -> None:
        for index in range(self.workers):
            threading.Thread(
                target=self._serve, name=f"budget-guard-count-{index}", daemon=True
            ).start()
        self._started = True

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                _, _, future, job = heapq.heappop(self._queue)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = job()
            except BaseException as exc:  # handed to the awaiting task, which re-raises it
                future.set_exception(exc)
            else:
                future.set_result(result)


_shared: CountingPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> CountingPool:
    """One pool per process: every counter shares it, so the thread count stays fixed."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = CountingPool()
    return _shared
