"""The abandoned-client deadline (``guard.abandoned_seconds``) never cuts short the recording
of what an exchange cost. The deadline is asyncio's, whose cancel passes through the anyio
shield around the write: a deadline that fired while the store was writing once left the
exchange uncharged (found by a red-team pass)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from budget_guard.auth import ApiKey, ApiKeyAuthenticator
from budget_guard.budget.ledger import Ledger
from budget_guard.budget.policy import BudgetPolicy
from budget_guard.budget.window import Window
from budget_guard.guard import BudgetGuardMiddleware, GuardSettings
from budget_guard.stores import MemoryStore

COMPANY = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
KEY = "bg-red-abandoned"
BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})
SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/v1/chat/completions",
    "raw_path": b"/v1/chat/completions",
    "query_string": b"",
    "root_path": "",
    "headers": [
        (b"host", b"test"),
        (b"authorization", f"Bearer {KEY}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ],
    "client": ("127.0.0.1", 1),
    "server": ("127.0.0.1", 80),
}
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json")],
}

App = Callable[..., Awaitable[None]]


class SlowRecordStore(MemoryStore):
    """A store whose writes take a network round trip (as Redis's do), here a long one."""

    async def record(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)
        return await super().record(*args, **kwargs)


def answer(total: int) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}],
            "usage": {
                "prompt_tokens": total - 100,
                "completion_tokens": 100,
                "total_tokens": total,
            },
        }
    )


Receive = Callable[[], Awaitable[dict[str, Any]]]


def guarded(
    app: App, *, abandoned_seconds: float, receive_later: Receive
) -> tuple[BudgetGuardMiddleware, Ledger, Receive]:
    """The guard in front of ``app``, its store slow to write, and a ``receive`` that hands
    over the body, then answers with ``receive_later``."""
    window = Window(30)
    ledger = Ledger(SlowRecordStore(window), BudgetPolicy(window, default_token_limit=1_000_000))
    guard = BudgetGuardMiddleware(
        app,
        ledger=ledger,
        authenticator=ApiKeyAuthenticator([ApiKey(KEY, COMPANY, name="a")]),
        settings=GuardSettings(abandoned_seconds=abandoned_seconds),
    )
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        return await receive_later()

    return guard, ledger, receive


def charged(
    app: App,
    *,
    abandoned_seconds: float,
    receive_later: Receive,
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> int:
    """What the company was charged for one request through the guard."""

    async def main() -> int:
        guard, ledger, receive = guarded(
            app, abandoned_seconds=abandoned_seconds, receive_later=receive_later
        )
        await guard(dict(SCOPE), receive, send)
        return (await ledger.snapshot(COMPANY)).tokens_used

    return asyncio.run(main())


async def _never() -> dict[str, Any]:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


def test_a_deadline_that_fires_while_the_usage_is_being_recorded_does_not_lose_it() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(START)
        await asyncio.sleep(0.05)  # the client has left meanwhile
        await send({"type": "http.response.body", "body": answer(1000), "more_body": False})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            raise OSError("client gone")  # a server other than uvicorn, client left

    assert charged(app, abandoned_seconds=0.1, receive_later=_never, send=send) == 1000


def test_a_client_that_leaves_while_the_usage_is_being_written_does_not_cut_it_short() -> None:
    """The disconnect arrives (through ``receive``, as uvicorn delivers it) while the store is
    writing: the write ends, and the exchange is charged."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        listener = asyncio.get_running_loop().create_task(receive())  # hears the disconnect
        await send(START)
        await send({"type": "http.response.body", "body": answer(500), "more_body": False})
        await listener

    async def disconnect_mid_write() -> dict[str, Any]:
        await asyncio.sleep(0.1)  # the store takes 0.3 s
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    assert (
        charged(app, abandoned_seconds=0.05, receive_later=disconnect_mid_write, send=send) == 500
    )


def test_a_shutdown_cancel_that_meets_the_deadline_is_not_taken_for_it() -> None:
    """The server cancels the request (shutdown) while the app is closing its upstream
    connection, and the abandoned deadline fires then too: the shutdown's cancel still ends
    the request, and the exchange is charged (found by a red-team pass)."""

    async def main() -> tuple[bool, int]:
        reading = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send(START)  # the client has gone: the deadline is armed
            await send({"type": "http.response.body", "body": answer(700)[:40], "more_body": True})
            reading.set()
            try:
                await asyncio.sleep(10)  # reading the upstream
            except asyncio.CancelledError:
                await asyncio.sleep(0.2)  # closing it; the deadline fires meanwhile
                raise

        async def gone(message: dict[str, Any]) -> None:
            raise OSError("client gone")

        guard, ledger, receive = guarded(app, abandoned_seconds=0.1, receive_later=_never)
        request = asyncio.get_running_loop().create_task(guard(dict(SCOPE), receive, gone))
        await reading.wait()
        await asyncio.sleep(0.05)
        request.cancel()  # the server shuts down
        try:
            await request
        except asyncio.CancelledError:
            cancelled = True
        else:
            cancelled = False
        return cancelled, (await ledger.snapshot(COMPANY)).tokens_used

    cancelled, tokens = asyncio.run(main())
    assert cancelled
    assert tokens > 0  # the prompt, counted: the answer never ended
