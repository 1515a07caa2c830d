"""`guard.request_stream_usage`: reasoning tokens of streams that did not ask for usage are
charged, and the client still reads the stream it asked for. Official OpenAI SDK, real sockets."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from budget_guard.budget.window import ConfigError
from budget_guard.counting import TokenCounter
from budget_guard.counting.encoding_lookup import count_text, encoding_for_model
from budget_guard.guard import GuardSettings
from tests.proxy.servers import serve
from tests.proxy.upstreams import ReasoningStreamUpstream

from .conftest import COMPANY_A, KEY_A, guarded_proxy

CHAT = [{"role": "user", "content": "Think hard, answer briefly."}]
TEXT = "Forty-two."
ASKING = GuardSettings()


def _stream(url: str, **options: object) -> tuple[list[openai.types.chat.ChatCompletionChunk], str]:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY_A, max_retries=0)
    chunks = list(client.chat.completions.create(model="o3", messages=CHAT, stream=True, **options))
    return chunks, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def _used(ledger) -> int:  # type: ignore[no-untyped-def]
    return (await ledger.snapshot(COMPANY_A)).tokens_used


async def test_reasoning_tokens_are_charged_and_the_usage_chunk_is_hidden() -> None:
    upstream = ReasoningStreamUpstream(TEXT, prompt_tokens=12, reasoning_tokens=600)
    with serve(upstream) as url, guarded_proxy(url, settings=ASKING) as g:
        chunks, text = await asyncio.to_thread(_stream, g.url)
        assert text == TEXT
        # Code written for a stream without usage indexes choices[0] on every chunk.
        assert all(chunk.choices for chunk in chunks)
        assert all(chunk.usage is None for chunk in chunks)
        assert upstream.bodies[0]["stream_options"] == {"include_usage": True}
        assert upstream.bodies[0]["messages"] == CHAT
        assert await _used(g.ledger) == 12 + 5 + 600


async def test_a_client_that_asks_for_usage_still_gets_it() -> None:
    upstream = ReasoningStreamUpstream(TEXT)
    with serve(upstream) as url, guarded_proxy(url, settings=ASKING) as g:
        chunks, _ = await asyncio.to_thread(_stream, g.url, stream_options={"include_usage": True})
        usage = [chunk.usage for chunk in chunks if chunk.usage]
        assert len(usage) == 1 and usage[0].total_tokens == 617
        assert await _used(g.ledger) == 617


async def test_turned_off_the_body_is_unchanged_and_the_text_is_counted() -> None:
    """Off, the body is handed on unchanged; the cost is that a stream without usage is
    counted with tiktoken, which cannot see reasoning tokens."""
    upstream = ReasoningStreamUpstream(TEXT)
    off = GuardSettings(request_stream_usage=False)
    with serve(upstream) as url, guarded_proxy(url, settings=off) as g:
        _, text = await asyncio.to_thread(_stream, g.url)
        assert "stream_options" not in upstream.bodies[0]
        body = json.dumps({"model": "o3", "messages": CHAT, "stream": True}).encode()
        prompt = TokenCounter().count_request("/v1/chat/completions", body).input_tokens
        assert await _used(g.ledger) == prompt + count_text(encoding_for_model("o3"), text)


def test_the_setting_is_read_from_config_and_checked() -> None:
    assert GuardSettings.from_table({}).request_stream_usage  # on unless turned off
    assert not GuardSettings.from_table({"request_stream_usage": False}).request_stream_usage
    with pytest.raises(ConfigError, match=r"guard\.request_stream_usage"):
        GuardSettings.from_table({"request_stream_usage": "yes"})
