"""Red team: the abandoned-client deadline (``guard.abandoned_seconds``) must never cut short
the recording of what an exchange cost. The recording runs shielded; a deadline that fires
while it waits on the store must not cancel it, or the exchange is never charged."""

from __future__ import annotations

import asyncio
import uuid

import orjson

from budget_guard.auth import ApiKey, ApiKeyAuthenticator
from budget_guard.budget.ledger import Ledger
from budget_guard.budget.policy import BudgetPolicy
from budget_guard.budget.window import Window
from budget_guard.guard import BudgetGuardMiddleware, GuardSettings
from budget_guard.stores import MemoryStore

COMPANY = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
KEY = "bg-red-abandoned"


class SlowRecordStore(MemoryStore):
    """A store whose writes take a network round trip (as Redis's do), here a long one."""

    async def record(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.3)
        return await super().record(*args, **kwargs)


def test_a_deadline_that_fires_while_the_usage_is_being_recorded_does_not_lose_it() -> None:
    answer = orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 100, "total_tokens": 1000},
        }
    )

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await asyncio.sleep(0.05)  # the client has left meanwhile
        await send({"type": "http.response.body", "body": answer, "more_body": False})

    async def main() -> int:
        window = Window(30)
        ledger = Ledger(
            SlowRecordStore(window), BudgetPolicy(window, default_token_limit=1_000_000)
        )
        guard = BudgetGuardMiddleware(
            app,
            ledger=ledger,
            authenticator=ApiKeyAuthenticator([ApiKey(KEY, COMPANY, name="a")]),
            settings=GuardSettings(abandoned_seconds=0.1),
        )
        body = orjson.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
        )
        scope = {
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
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        sent = False

        async def receive():  # type: ignore[no-untyped-def]
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)

        async def send(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                raise OSError("client gone")  # a server other than uvicorn, client left

        await guard(scope, receive, send)
        # The deadline cut the exchange short while the store was still writing: the write
        # goes on by itself and lands (as it would have, had nobody cancelled anything).
        for _ in range(100):
            used = (await ledger.snapshot(COMPANY)).tokens_used
            if used:
                return used
            await asyncio.sleep(0.02)
        return 0

    assert asyncio.run(main()) == 1000


def test_a_client_that_leaves_while_the_usage_is_being_written_does_not_cut_it_short() -> None:
    """The disconnect arrives (through ``receive``, as uvicorn delivers it) while the store is
    writing: the deadline it sets waits for the write, then ends the exchange."""
    answer = orjson.dumps(
        {
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}],
            "usage": {"prompt_tokens": 400, "completion_tokens": 100, "total_tokens": 500},
        }
    )

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await receive()

        async def listen() -> None:
            await receive()  # held back by the guard until the response has ended

        listener = asyncio.get_running_loop().create_task(listen())
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer, "more_body": False})
        await listener

    async def main() -> int:
        window = Window(30)
        ledger = Ledger(
            SlowRecordStore(window), BudgetPolicy(window, default_token_limit=1_000_000)
        )
        guard = BudgetGuardMiddleware(
            app,
            ledger=ledger,
            authenticator=ApiKeyAuthenticator([ApiKey(KEY, COMPANY, name="a")]),
            settings=GuardSettings(abandoned_seconds=0.05),
        )
        body = orjson.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
        )
        scope = {
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
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        delivered = 0

        async def receive():  # type: ignore[no-untyped-def]
            nonlocal delivered
            delivered += 1
            if delivered == 1:
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(0.1)  # mid-write: the store takes 0.3 s
            return {"type": "http.disconnect"}

        async def send(message):  # type: ignore[no-untyped-def]
            return None

        await guard(scope, receive, send)
        return (await ledger.snapshot(COMPANY)).tokens_used

    assert asyncio.run(main()) == 500
