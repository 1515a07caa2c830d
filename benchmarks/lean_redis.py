"""A lean Redis client for the two hot scripts, as a benchmark candidate (not used by the store).

One asyncio connection speaking RESP2 by hand: a command is encoded into bytes, its future
queued, and the replies are matched to futures in order. With ``autopipeline`` every command
issued during one event-loop tick is written in one ``transport.write`` at the end of the tick
(what ioredis's ``enableAutoPipelining`` and Lettuce do): concurrent store calls share one
syscall and one TCP segment, each still its own ``EVALSHA`` (one atomic round trip per
record, nothing merged). Without it, each command is written at once.

A lost connection fails every command still waiting with :class:`ConnectionError`, never
re-sent: a script may have run before its reply was lost, and only the caller's dedupe key
can make a retry safe.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class ReplyError(Exception):
    """Redis answered with an error (``-ERR ...``, ``-NOSCRIPT ...``)."""


def encode(args: tuple[str | bytes | int, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Incomplete(Exception):
    pass


def _parse(buffer: bytes, pos: int) -> tuple[Any, int]:
    """One reply from ``buffer`` at ``pos``: (value, next position); raises _Incomplete."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line = buffer[pos : pos + 1], buffer[pos + 1 : end]
    pos = end + 2
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, pos
        if len(buffer) < pos + size + 2:
            raise _Incomplete
        return buffer[pos : pos + size].decode(), pos + size + 2
    if kind == b":":
        return int(line), pos
    if kind == b"+":
        return line.decode(), pos
    if kind == b"-":
        return ReplyError(line.decode()), pos
    if kind == b"*":
        count = int(line)
        items = []
        for _ in range(max(count, 0)):
            item, pos = _parse(buffer, pos)
            items.append(item)
        return (items if count >= 0 else None), pos
    raise ValueError(f"unknown RESP type {kind!r}")


class LeanRedis(asyncio.Protocol):
    def __init__(self, *, autopipeline: bool) -> None:
        self._autopipeline = autopipeline
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._buffer = b""
        self._pending: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def connect(cls, host: str, port: int, *, autopipeline: bool) -> LeanRedis:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: cls(autopipeline=autopipeline), host, port
        )
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError("connection lost; reply unknown"))

    def call(self, *args: str | bytes | int) -> asyncio.Future[Any]:
        if self._transport is None:
            raise ConnectionError("not connected")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._waiting.append(future)
        payload = encode(args)
        if not self._autopipeline:
            self._transport.write(payload)
        else:
            if not self._pending:
                self._loop.call_soon(self._flush)
            self._pending.append(payload)
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if self._transport is not None:
            self._transport.write(b"".join(pending))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        pos = 0
        try:
            while pos < len(buffer):
                value, pos = _parse(buffer, pos)
                future = self._waiting.popleft()
                if not future.done():
                    if isinstance(value, ReplyError):
                        future.set_exception(value)
                    else:
                        future.set_result(value)
        except _Incomplete:
            pass
        self._buffer = buffer[pos:]

    async def evalsha(
        self, sha: str, keys: tuple[str, ...], args: tuple[str | int, ...], script: str
    ) -> Any:
        """``EVALSHA``, loading the script once on ``NOSCRIPT`` (a script that was not there
        did not run, so that one re-send is safe)."""
        try:
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.call("SCRIPT", "LOAD", script)
        return await self.call("EVALSHA", sha, len(keys), *keys, *args)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
