"""A lean transport for the usage script: ``EVALSHA`` over raw asyncio, RESP2 by hand.

Measured (``benchmarks/bench_redis_client.py``): redis-py spends ~90-100 us of CPU per
``EVALSHA`` on its connection pool, command packing and reply parsing; the same command over
one asyncio connection costs ~20 us. The usage script is the one command on the request
path, so only it goes this way (:class:`RedisStore` keeps redis-py for everything else:
pings, the restart marker, object owners, reads off the hot path).

Concurrent calls share a few long-lived connections (replies come back in order on each,
matched to their callers by a queue), and with ``autopipeline`` every command issued in one
event-loop tick while others are in flight goes out in one write at the end of the tick (a
lone call is written at once). Each call is still its own ``EVALSHA``: one atomic
round trip per operation, nothing merged, nothing re-ordered.

A reply that does not come is never re-sent: the script may have run before it was lost.
Every call still waiting on a connection that breaks or times out fails with
:class:`ConnectionLost` (an ``OSError``), which the store reports as unavailable; the
caller's dedupe key is what makes its own retry safe. The one re-send is after
``NOSCRIPT``: Redis says the script did not run.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections import deque
from typing import Any

from redis.asyncio.connection import parse_url
from redis.exceptions import ResponseError

Arg = str | bytes | int


class ConnectionLost(ConnectionError):
    """The connection broke (or a reply was overdue) with calls waiting: their outcome is
    unknown."""


def encode(args: tuple[Arg, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8", "surrogatepass")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Incomplete(Exception):
    pass


def parse(buffer: bytes, pos: int) -> tuple[Any, int]:
    """One RESP2 reply at ``pos``: ``(value, next position)``; strings decoded as UTF-8, an
    error reply returned (not raised) as :class:`ResponseError`."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line = buffer[pos], buffer[pos + 1 : end]
    pos = end + 2
    if kind == 36:  # $ bulk string
        size = int(line)
        if size < 0:
            return None, pos
        if len(buffer) < pos + size + 2:
            raise _Incomplete
        return buffer[pos : pos + size].decode("utf-8", "replace"), pos + size + 2
    if kind == 58:  # : integer
        return int(line), pos
    if kind == 43:  # + simple string
        return line.decode("utf-8", "replace"), pos
    if kind == 45:  # - error
        return ResponseError(line.decode("utf-8", "replace")), pos
    if kind == 42:  # * array
        count = int(line)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            item, pos = parse(buffer, pos)
            items.append(item)
        return items, pos
    raise ValueError(f"not a RESP2 reply: {bytes([kind])!r}")


_running_loop = asyncio.get_running_loop


class _Connection(asyncio.Protocol):
    """One multiplexed connection: commands written in order, replies matched in order."""

    def __init__(self, timeout: float, autopipeline: bool) -> None:
        self._timeout = timeout
        self._autopipeline = autopipeline
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._buffer = b""
        self._pending: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.loop = self._loop = asyncio.get_running_loop()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._abandon("redis connection lost")

    def _abandon(self, why: str) -> None:
        self.closed = True
        transport, self._transport = self._transport, None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._pending.clear()
        waiting, self._waiting = self._waiting, deque()
        if self._loop.is_closed():  # a connection left on a finished loop: nothing to wake
            return
        if transport is not None:
            transport.abort()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(ConnectionLost(f"{why}; outcome unknown"))

    def call(self, args: tuple[Arg, ...]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()
        transport = self._transport
        if transport is None or self.closed:
            future.set_exception(ConnectionLost("redis connection closed; not sent"))
            return future
        self._waiting.append((future, time.monotonic() + self._timeout))
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self._timeout, self._check_overdue)
        payload = encode(args)
        if not self._autopipeline or (len(self._waiting) == 1 and not self._pending):
            # Nothing else in flight: written at once, no tick's delay for a lone call.
            transport.write(payload)
        else:
            if not self._pending:
                self._loop.call_soon(self._flush)
            self._pending.append(payload)
        return future

    def _flush(self) -> None:
        if self._pending and self._transport is not None:
            self._transport.write(b"".join(self._pending))
        self._pending.clear()

    def _check_overdue(self) -> None:
        """Replies come in order, so the oldest call alone can be overdue. Once one is, the
        connection is useless (a late reply would be matched to the wrong caller): close it."""
        self._watchdog = None
        if not self._waiting:
            return
        deadline = self._waiting[0][1]
        now = time.monotonic()
        if now >= deadline:
            self._abandon(f"no reply from redis within {self._timeout:g} s")
            return
        self._watchdog = self._loop.call_later(deadline - now, self._check_overdue)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        pos = 0
        try:
            while pos < len(buffer):
                value, pos = parse(buffer, pos)
                if not self._waiting:
                    self._abandon("redis sent a reply nobody asked for")
                    return
                future, _ = self._waiting.popleft()
                if future.done():  # its caller was cancelled: the reply is read all the same
                    continue
                if isinstance(value, ResponseError):
                    future.set_exception(value)
                else:
                    future.set_result(value)
        except _Incomplete:
            pass
        self._buffer = buffer[pos:]
        if not self._waiting and self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def close(self) -> None:
        self._abandon("closed")


class LeanScript:
    """``await script(keys=..., args=...)`` as redis-py's ``Script`` is called, over
    ``connections`` multiplexed connections opened on first use and re-opened after a
    failure."""

    def __init__(
        self,
        url: str,
        script: str,
        *,
        connections: int = 2,
        connect_timeout: float = 1.0,
        socket_timeout: float = 2.0,
        autopipeline: bool = True,
    ) -> None:
        options = parse_url(url)
        if "connection_class" in options:  # rediss:// (TLS): not this transport's job
            raise ValueError("the lean script transport speaks plain TCP or a unix socket")
        self._host = options.get("host", "localhost")
        self._port = int(options.get("port", 6379))
        self._path: str | None = options.get("path")
        self._username: str | None = options.get("username")
        self._password: str | None = options.get("password")
        self._db = int(options.get("db", 0) or 0)
        self._script = script
        self._sha = hashlib.sha1(script.encode()).hexdigest()
        self._connect_timeout = connect_timeout
        self._socket_timeout = socket_timeout
        self._autopipeline = autopipeline
        self._slots: list[_Connection | None] = [None] * max(1, connections)
        self._opening: list[asyncio.Future[_Connection] | None] = [None] * len(self._slots)
        self._turn = itertools.cycle(range(len(self._slots)))

    async def __call__(self, keys: tuple[str, ...], args: tuple[Arg, ...]) -> Any:
        slot = next(self._turn)
        connection = self._slots[slot]
        if connection is None or connection.closed or connection.loop is not _running_loop():
            connection = await self._open(slot)
        command = ("EVALSHA", self._sha, len(keys), *keys, *args)
        try:
            return await connection.call(command)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        # Redis had no such script, so nothing ran: load it and send the call once more.
        await connection.call(("SCRIPT", "LOAD", self._script))
        return await connection.call(command)

    async def _open(self, slot: int) -> _Connection:
        """The slot's connection, opened once however many callers wait for it (and kept,
        even if the caller that started the opening is cancelled meanwhile)."""
        opening = self._opening[slot]
        if opening is None or opening.get_loop() is not _running_loop():
            opening = asyncio.ensure_future(self._fill(slot))
            self._opening[slot] = opening
        return await asyncio.shield(opening)

    async def _fill(self, slot: int) -> _Connection:
        try:
            old = self._slots[slot]
            if old is not None:
                old.close()  # closed already, or left on an event loop no longer running
            connection = await self._connect()
            self._slots[slot] = connection
            return connection
        finally:
            self._opening[slot] = None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()

        def factory() -> _Connection:
            return _Connection(self._socket_timeout, self._autopipeline)

        if self._path:
            opening = loop.create_unix_connection(factory, self._path)
        else:
            opening = loop.create_connection(factory, self._host, self._port)
        _, connection = await asyncio.wait_for(opening, self._connect_timeout)
        try:
            if self._password:
                auth = (self._username, self._password) if self._username else (self._password,)
                await connection.call(("AUTH", *auth))
            if self._db:
                await connection.call(("SELECT", self._db))
        except BaseException:
            connection.close()
            raise
        return connection

    async def aclose(self) -> None:
        for connection in self._slots:
            if connection is not None:
                connection.close()
        self._slots = [None] * len(self._slots)
