"""``acount_request``: the same counts as ``count_request``, without holding the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import orjson
import pytest

from budget_guard.counting import InvalidRequestBody, TokenCounter, routes
from budget_guard.counting.counter import INLINE_MAX_BYTES
from budget_guard.counting.worker_pool import CountingPool

CJK = "お誕生日おめでとう日本語の文章です。"


def chat(text: str, model: str = "gpt-4o") -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": text}]})


BODIES = {
    "/v1/chat/completions": chat("hello there"),
    "/v1/completions": orjson.dumps({"model": "gpt-3.5-turbo-instruct", "prompt": ["a", [1, 2]]}),
    "/v1/embeddings": orjson.dumps({"model": "text-embedding-3-small", "input": "hello"}),
    "/v1/responses": orjson.dumps({"model": "gpt-4o", "input": "hi", "max_output_tokens": 9}),
    "/v1/messages": orjson.dumps(
        {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    ),
    "/openai/deployments/my-gpt4/chat/completions": chat("hi", model=""),
    "/v1/models": b"not json at all",
}


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize("pad", [0, INLINE_MAX_BYTES], ids=["inline", "pool"])
async def test_acount_request_equals_count_request(
    counter: TokenCounter, path: str, pad: int
) -> None:
    body = BODIES[path]
    if pad and body.startswith(b"{"):
        body = body[:-1] + b',"padding":"' + b" " * pad + b'"}'
    assert await counter.acount_request(path, body) == counter.count_request(path, body)


async def test_an_invalid_large_body_raises_from_the_pool(counter: TokenCounter) -> None:
    body = b'{"model":"gpt-4o","messages":"' + b"x" * (2 * INLINE_MAX_BYTES) + b'"}'
    with pytest.raises(InvalidRequestBody) as caught:
        await counter.acount_request("/v1/chat/completions", body)
    assert caught.value.param == "messages"


@pytest.mark.parametrize("pad", [0, INLINE_MAX_BYTES], ids=["inline", "pool"])
async def test_a_kind_skips_path_classification(counter: TokenCounter, pad: int) -> None:
    body = chat("hello there" + " " * pad)
    expected = counter.count_request("/v1/chat/completions", body)
    assert counter.count_request("/anything", body, kind=routes.CHAT) == expected
    assert await counter.acount_request("/anything", body, kind=routes.CHAT) == expected
    # An Azure path still names the model when the body does not: its deployment.
    azure = await counter.acount_request(
        "/openai/deployments/gpt-4/chat/completions", chat("hi", model=""), kind=routes.CHAT
    )
    assert azure.model == "gpt-4"
    assert counter.count_request("/v1/chat/completions", body, kind=routes.OTHER).kind == "other"
    with pytest.raises(ValueError, match="unknown request kind 'chat/completions'"):
        counter.count_request("/v1/chat/completions", body, kind="chat/completions")


async def test_counting_a_10_mb_prompt_leaves_the_loop_free(counter: TokenCounter) -> None:
    """The issue's case: while four 10 MB CJK prompts are counted, the loop keeps ticking."""
    body = chat(CJK * (10_000_000 // len(CJK.encode()) + 1))
    assert len(body) > 10_000_000
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    results = await asyncio.gather(
        *(counter.acount_request("/v1/chat/completions", body) for _ in range(4))
    )
    elapsed = time.perf_counter() - started
    ticker.cancel()
    assert len({r.input_tokens for r in results}) == 1
    assert results[0].input_tokens > 2_000_000
    # Generous for a loaded 2-core machine: counting took seconds, the loop never stopped for
    # more than a sliver of it (inline, it would have stopped for all of it).
    assert max(gaps) < 0.25, (max(gaps), elapsed)
    assert len(gaps) > elapsed / 0.25


# -- the pool's order ------------------------------------------------------------------------


def blocking_job(gate: threading.Event, name: str, done: list[str]) -> Callable[[], str]:
    def job() -> str:
        gate.wait(10)
        done.append(name)
        return name

    return job


async def test_a_small_job_overtakes_queued_huge_ones() -> None:
    """One tenant's queued 10 MB bodies wait behind another's 100 KB one, not the reverse."""
    pool = CountingPool(workers=1)
    gate, done = threading.Event(), []
    running = asyncio.ensure_future(pool.run(blocking_job(gate, "huge-0", done), 10_000_000))
    await asyncio.sleep(0.05)  # the only worker is now busy with it
    queued = [
        asyncio.ensure_future(pool.run(blocking_job(gate, f"huge-{i}", done), 10_000_000))
        for i in (1, 2, 3)
    ]
    await asyncio.sleep(0.01)
    small = asyncio.ensure_future(pool.run(blocking_job(gate, "small", done), 100_000))
    await asyncio.sleep(0.01)  # queued too
    gate.set()
    await asyncio.gather(running, *queued, small)
    assert done == ["huge-0", "small", "huge-1", "huge-2", "huge-3"]


async def test_a_huge_job_is_not_starved_by_later_small_ones() -> None:
    pool = CountingPool(workers=1)
    gate, done = threading.Event(), []
    running = asyncio.ensure_future(pool.run(blocking_job(gate, "first", done), 0))
    await asyncio.sleep(0.05)
    huge = asyncio.ensure_future(pool.run(blocking_job(gate, "huge", done), 2_000_000))
    await asyncio.sleep(0.2)  # past the huge job's estimated finish (0.1 s at 20 MB/s)
    later = asyncio.ensure_future(pool.run(blocking_job(gate, "later-small", done), 1_000))
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(running, huge, later)
    assert done == ["first", "huge", "later-small"]


async def test_a_cancelled_job_is_dropped_unrun() -> None:
    pool = CountingPool(workers=1)
    gate, done = threading.Event(), []
    running = asyncio.ensure_future(pool.run(blocking_job(gate, "first", done), 0))
    await asyncio.sleep(0.05)
    gone = asyncio.ensure_future(pool.run(blocking_job(gate, "gone", done), 0))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0.05)  # the cancellation reaches the queued job over a loop turn or two
    gate.set()
    await running
    assert await pool.run(lambda: "after", 0) == "after"
    assert done == ["first"]
