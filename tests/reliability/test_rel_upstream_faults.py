"""The upstream failing in every way it can: refused connections, no answer in time, 500s,
and answers that break off mid-way. The company is charged at most what was produced:
nothing for an answer that never came, and for a broken one no more than its prompt plus the
text that was actually sent."""

from __future__ import annotations

import asyncio
import json
from contextlib import ExitStack
from pathlib import Path

import aiohttp

from budget_guard.counting import TokenCounter
from budget_guard.counting.encoding_lookup import count_text, encoding_for_model
from tests.proxy.servers import serve

from .faulty_upstream import FULL_ANSWER, PRODUCED, FaultyUpstream
from .support import CHAT_PATH, Company, budget_guard, companies, http_session, used, write_config

PROXY_TIMEOUT = 1.0
MODEL = "gpt-4o-mini"


def chat(scenario: str, *, stream: bool = False) -> dict[str, object]:
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": scenario}],
    }
    if stream:
        body["stream"] = True
    return body


def prompt_tokens(body: dict[str, object]) -> int:
    return TokenCounter().count_request(CHAT_PATH, json.dumps(body).encode()).input_tokens


def text_tokens(text: str) -> int:
    return count_text(encoding_for_model(MODEL), text)


async def ask(
    session: aiohttp.ClientSession, base: str, tenant: Company, body: dict[str, object]
) -> tuple[int, bool]:
    """The status, and whether the answer arrived whole. A client timeout fails the test."""
    async with session.post(base + CHAT_PATH, headers=tenant.auth, json=body) as response:
        try:
            await response.read()
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            return response.status, False
        return response.status, True


async def test_a_failing_upstream_never_charges_more_than_was_produced(tmp_path: Path) -> None:
    scenarios = {
        "fail-500": chat("fail-500"),
        "slow": chat("slow"),
        "cut": chat("cut", stream=True),
        "stall": chat("stall", stream=True),
        "cut-json": chat("cut-json"),
        "refused": chat("anything"),
    }
    tenants = dict(zip(scenarios, companies(len(scenarios)), strict=True))
    repeats = 3
    with ExitStack() as upstream_running:
        upstream = upstream_running.enter_context(
            serve(FaultyUpstream(stall=3 * PROXY_TIMEOUT), timeout_graceful_shutdown=1)
        )
        config = write_config(
            tmp_path / "upstream.toml",
            list(tenants.values()),
            upstream_url=upstream,
            proxy={"timeout_seconds": PROXY_TIMEOUT},
        )
        with budget_guard(config) as server:
            async with http_session(32) as session:
                broken = [name for name in scenarios if name != "refused"]
                answers = await asyncio.gather(
                    *(
                        ask(session, server.url, tenants[name], scenarios[name])
                        for name in broken
                        for _ in range(repeats)
                    )
                )
                outcome = dict(zip(broken, answers[::repeats], strict=True))
                upstream_running.close()  # nothing listens there any more
                refused = [
                    await ask(session, server.url, tenants["refused"], scenarios["refused"])
                    for _ in range(repeats)
                ]
                charged = {name: await used(session, server.url, t) for name, t in tenants.items()}
            log = server.log()
            assert server.alive

    assert outcome["fail-500"] == (500, True)
    assert outcome["slow"] == (504, True)
    assert refused == [(502, True)] * repeats
    for name in ("cut", "stall", "cut-json"):
        assert outcome[name] == (200, False), f"{name}: the client must see the answer cut off"
    # An upstream that failed, or that was never reached, billed nothing: nothing is charged.
    assert charged["fail-500"] == charged["refused"] == 0
    # One that did not answer in time may have finished, and billed, the answer anyway: the
    # counted prompt is charged, never less.
    assert charged["slow"] == repeats * prompt_tokens(scenarios["slow"])
    # A stream that broke off: the prompt plus exactly the text that was sent, per request.
    for name in ("cut", "stall"):
        produced = prompt_tokens(scenarios[name]) + text_tokens("".join(PRODUCED))
        assert charged[name] == repeats * produced, (name, charged[name], produced)
    # A JSON answer cut in half cannot be read: the prompt is charged, never more than the
    # whole answer would have cost.
    prompt = prompt_tokens(scenarios["cut-json"])
    assert repeats * prompt <= charged["cut-json"] <= repeats * (prompt + text_tokens(FULL_ANSWER))
    assert "Traceback" not in log
