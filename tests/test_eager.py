"""The hot path's cheap timeout and shield behave exactly like anyio's scopes."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from budget_guard.eager import receive_with_deadline, run_shielded


async def test_a_message_already_there_is_returned_without_waiting() -> None:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"x", "more_body": False}

    bounded = receive_with_deadline(receive, 0.0)  # even a spent deadline: nothing waited
    assert (await bounded())["body"] == b"x"


async def test_a_message_that_comes_in_time_is_returned() -> None:
    async def receive() -> dict[str, object]:
        await asyncio.sleep(0.01)
        return {"type": "http.request", "body": b"late", "more_body": False}

    assert (await receive_with_deadline(receive, 5.0)())["body"] == b"late"


async def test_one_deadline_covers_every_message_of_the_body() -> None:
    async def receive() -> dict[str, object]:
        await asyncio.sleep(0.2)
        return {"type": "http.request", "body": b"a", "more_body": True}

    bounded = receive_with_deadline(receive, 0.3)
    await bounded()  # 0.2 s of the 0.3 s used
    with pytest.raises(TimeoutError):
        await bounded()  # the second message would end past the deadline


async def test_a_shielded_call_that_never_waits_just_runs() -> None:
    async def quick() -> int:
        return 7

    assert await run_shielded(quick()) == 7


async def test_a_shielded_call_finishes_though_its_scope_is_cancelled() -> None:
    finished: list[str] = []

    async def record() -> str:
        await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)
        finished.append("recorded")
        return "done"

    results: list[str] = []
    with anyio.CancelScope() as scope:

        async def cancel_soon() -> None:
            await asyncio.sleep(0.01)
            scope.cancel()

        task = asyncio.get_running_loop().create_task(cancel_soon())
        results.append(await run_shielded(record()))
        await asyncio.sleep(1)  # the cancellation lands here, after the shielded call
        results.append("not reached")
    await task
    assert finished == ["recorded"]
    assert results == ["done"]


async def test_a_shielded_call_passes_its_exception_on() -> None:
    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("store said no")

    with pytest.raises(ValueError, match="store said no"):
        await run_shielded(failing())
