"""Timeout and shield scopes that cost nothing when the awaited call never has to wait.

The request path runs two calls under an anyio scope: every ``receive()`` of a request body
under a deadline (a client must not trickle a body forever), and the usage recording under a
shield (a client that goes away still gets charged). Entering and leaving such a scope costs
3–8 µs, yet usually nothing can go wrong inside it: a small body (nearly every chat request
and usage recording) is already buffered by the server when it is asked for, and the memory
store records without ever suspending. A call that does not suspend can be neither late nor
cancelled, so it is first driven by hand one step; only when it really has to wait is the
rest of it awaited inside the scope, before any cancellation or timeout could have reached it.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

import anyio
from starlette.types import Message, Receive

__all__ = ["receive_with_deadline", "run_shielded"]

T = TypeVar("T")


def receive_with_deadline(receive: Receive, seconds: float) -> Receive:
    """``receive``, raising ``TimeoutError`` once ``seconds`` have passed since this call
    (one deadline for the whole body, however many messages it comes in)."""
    started = time.monotonic()

    async def bounded() -> Message:
        call = receive()
        if not isinstance(call, Coroutine):  # some other awaitable: no first step to take
            with anyio.fail_after(max(0.0, seconds - (time.monotonic() - started))):
                return await call
        try:
            pending = call.send(None)
        except StopIteration as done:
            message: Message = done.value
            return message
        with anyio.fail_after(max(0.0, seconds - (time.monotonic() - started))):
            return await _Resumed(call, pending)

    return bounded


async def run_shielded(call: Coroutine[Any, Any, T]) -> T:
    """Await ``call`` shielded from cancellation (as in ``anyio.CancelScope(shield=True)``)."""
    try:
        pending = call.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    with anyio.CancelScope(shield=True):
        return await _Resumed(call, pending)


class _Resumed:
    """Awaits the rest of a coroutine that already ran up to its first suspension: every
    value it yields goes to the event loop, everything sent or thrown in (a cancellation
    included) goes back to it, exactly as ``await`` would have done."""

    __slots__ = ("_call", "_pending")

    def __init__(self, call: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._call = call
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        call, pending = self._call, self._pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                call.close()
                raise
            except BaseException as exc:  # handed on to the coroutine as is, cancellation too
                try:
                    pending = call.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = call.send(sent)
                except StopIteration as done:
                    return done.value
