"""Token counting: a 10k-token chat prompt vs tiktoken alone, and metering a streamed answer
per chunk vs parsing its SSE lines alone.

The prompt baseline is what counting cannot avoid, ``len(encoding.encode(text))`` on the
message text; the ratio is what the request path adds (JSON parse of the body, route and
model lookup, message framing). The stream baseline is the least any reader of the stream
does: split the bytes on newlines and JSON-parse each ``data:`` line (with orjson, which the
meter uses too; stdlib ``json`` is timed alongside and kept in the raw results). The meter
is timed from creation to ``finish()``, so its end-of-stream tiktoken count is included.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

import orjson

from benchmarks.harness import Context, Figure, Target, comparison, interleave, median
from budget_guard.counting import TokenCounter
from budget_guard.counting.encoding_lookup import encoding_for_model

GROUP = "counting"

MODEL = "gpt-4o"
CHAT_PATH = "/v1/chat/completions"

_PROSE = (
    "the budget guard counts every token a company sends to the model and every token the "
    "model sends back so that no team can spend more than its share of the monthly allowance "
    "requests are counted before they leave and answers are metered as they stream through "
    "usage is kept in buckets of six hours and old buckets fall out of the rolling window "
    "engineers asked whether the numbers match what the provider bills and they do within a "
    "token or two for chat completions with plain text messages tools and images included"
)
_WORDS = tuple(_PROSE.split())


def run(ctx: Context) -> list[Figure]:
    counter = TokenCounter()
    figures = [_prompt(ctx, counter)]
    chunks = ctx.size(2_000, 50)
    figures.append(_stream(ctx, counter, chunks, with_usage=True))
    figures.append(_stream(ctx, counter, chunks, with_usage=False))
    return figures


def prose(tokens: int, seed: int = 6) -> str:
    """Deterministic English-like text of exactly ``tokens`` tokens (o200k_base)."""
    rng = random.Random(seed)
    encoding = encoding_for_model(MODEL)
    sentences = []
    while len(sentences) * 12 < tokens * 1.2:
        words = rng.choices(_WORDS, k=rng.randint(6, 18))
        sentences.append(" ".join(words).capitalize() + rng.choice((".", ".", ",", "?", ";")))
    text = " ".join(sentences)
    return encoding.decode(encoding.encode_ordinary(text)[:tokens])


# -- a 10k-token prompt ------------------------------------------------------------------------


def _prompt(ctx: Context, counter: TokenCounter) -> Figure:
    tokens = ctx.size(10_000, 200)
    text = prose(tokens)
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": text}]})
    encoding = encoding_for_model(MODEL)
    calls = ctx.size(20, 5)

    def count_request() -> float:
        return _ms_per_call(lambda: counter.count_request(CHAT_PATH, body), calls)

    def encode() -> float:
        return _ms_per_call(lambda: len(encoding.encode(text)), calls)

    samples = interleave(
        {"count_request": count_request, "encoding.encode": encode}, ctx.size(21, 1)
    )
    counted = counter.count_request(CHAT_PATH, body).input_tokens
    return comparison(
        f"count a {tokens:,}-token chat prompt",
        samples,
        measured="count_request",
        baseline="encoding.encode",
        baseline_label="len(encode(text))",
        unit="ms",
        target=Target.ratio("<=", 1.2),
        detail={
            "text_tokens": len(encoding.encode(text)),
            "counted_input_tokens": counted,
            "body_bytes": len(body),
            "calls_per_sample": calls,
        },
    )


def _ms_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


# -- a streamed answer -------------------------------------------------------------------------


def sse_stream(deltas: int, *, with_usage: bool, seed: int = 7) -> list[bytes]:
    """A Chat Completions stream as the upstream sends it: one network chunk per event, each
    delta about one token, in OpenAI's exact chunk shape (see tests/counting/streams)."""
    rng = random.Random(seed)
    head = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1730000000,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_bench",
    }

    def event(choices: list[object], usage: object = None) -> bytes:
        return b"data: " + orjson.dumps({**head, "choices": choices, "usage": usage}) + b"\n\n"

    def choice(delta: dict[str, object], finish: str | None = None) -> list[object]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    chunks = [event(choice({"role": "assistant", "content": "", "refusal": None}))]
    chunks += [event(choice({"content": " " + rng.choice(_WORDS)})) for _ in range(deltas)]
    chunks.append(event(choice({}, "stop")))
    if with_usage:
        usage = {"prompt_tokens": 24, "completion_tokens": deltas, "total_tokens": 24 + deltas}
        chunks.append(event([], usage))
    chunks.append(b"data: [DONE]\n\n")
    return chunks


def _parse_lines(chunks: list[bytes], loads: Callable[[bytes], object]) -> None:
    """The baseline: the least any reader of the stream does."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b"data: ") and line[6:] != b"[DONE]":
                loads(line[6:])


def _stream(ctx: Context, counter: TokenCounter, deltas: int, *, with_usage: bool) -> Figure:
    chunks = sse_stream(deltas, with_usage=with_usage)
    body = orjson.dumps(
        {
            "model": MODEL,
            "stream": True,
            "messages": [{"role": "user", "content": "Tell me about budgets."}],
        }
    )
    request = counter.count_request(CHAT_PATH, body)
    per_chunk = 1e6 / len(chunks)
    result = {}

    def meter() -> float:
        start = time.perf_counter()
        m = counter.meter(request, "text/event-stream")
        for chunk in chunks:
            m.feed(chunk)
        result["usage"] = m.finish()
        return (time.perf_counter() - start) * per_chunk

    def parse(loads: Callable[[bytes], object]) -> Callable[[], float]:
        def sample() -> float:
            start = time.perf_counter()
            _parse_lines(chunks, loads)
            return (time.perf_counter() - start) * per_chunk

        return sample

    samples = interleave(
        {"meter": meter, "orjson lines": parse(orjson.loads), "json lines": parse(json.loads)},
        ctx.size(15, 1),
    )
    usage = result["usage"]
    return comparison(
        "stream metering per chunk, "
        + ("upstream usage reported" if with_usage else "no usage: tiktoken at end"),
        samples,
        measured="meter",
        baseline="orjson lines",
        baseline_label="split + orjson.loads",
        unit="µs",
        target=None,
        detail={
            "chunks": len(chunks),
            "stream_bytes": sum(map(len, chunks)),
            "usage": {
                "input": usage.input_tokens,
                "output": usage.output_tokens,
                "source": usage.source,
            },
            "stdlib_json_lines_median_us": median(samples["json lines"]),
        },
    )
