"""Prompt size: counting cost per 1k prompt tokens from 1k to 64k tokens, against tiktoken.

Cost must grow with the work, not faster: a request path that re-scans, copies or re-parses
per message would show as a cost per 1k tokens rising with the prompt. Each size is a chat
request whose user messages add up to that many tokens (several messages, as a long
conversation has), counted by ``TokenCounter.count_request`` (the guard's prompt count: JSON
parse, framing, tiktoken) and, in the same rounds, by ``len(encoding.encode(text))`` over the
same texts: what tiktoken alone costs, the part no counter can avoid.
"""

from __future__ import annotations

import time

import orjson

from benchmarks.bench_counting import CHAT_PATH, MODEL, prose
from benchmarks.harness import Context, Figure, Target, comparison, interleave, median
from budget_guard.counting import TokenCounter
from budget_guard.counting.encoding_lookup import encoding_for_model

GROUP = "prompt-sizes"

TOKENS_PER_MESSAGE = 1_000


def run(ctx: Context) -> list[Figure]:
    counter = TokenCounter()
    encoding = encoding_for_model(MODEL)
    sizes = (1_000, 4_000) if ctx.smoke else (1_000, 4_000, 16_000, 64_000)
    figures: list[Figure] = []
    per_1k: dict[int, float] = {}
    for tokens in sizes:
        messages = max(1, tokens // TOKENS_PER_MESSAGE)
        texts = [prose(tokens // messages, seed=i) for i in range(messages)]
        body = orjson.dumps(
            {"model": MODEL, "messages": [{"role": "user", "content": t} for t in texts]}
        )
        calls = max(1, ctx.size(40_000, 2_000) // tokens)
        scale = 1e6 / calls / (tokens / 1_000)

        def count(body: bytes = body, calls: int = calls, scale: float = scale) -> float:
            start = time.perf_counter()
            for _ in range(calls):
                counter.count_request(CHAT_PATH, body)
            return (time.perf_counter() - start) * scale

        def encode(texts: list[str] = texts, calls: int = calls, scale: float = scale) -> float:
            start = time.perf_counter()
            for _ in range(calls):
                for text in texts:
                    len(encoding.encode(text))
            return (time.perf_counter() - start) * scale

        samples = interleave({"count_request": count, "encode": encode}, ctx.size(7, 1))
        per_1k[tokens] = median(samples["count_request"])
        figures.append(
            comparison(
                f"count a {tokens:,}-token prompt ({messages} messages), per 1k tokens",
                samples,
                measured="count_request",
                baseline="encode",
                baseline_label="len(encode(text))",
                unit="us",
                target=Target.ratio("<=", 1.3),
                detail={"body_bytes": len(body), "calls_per_sample": calls},
            )
        )
    low, high = min(sizes), max(sizes)
    figures.append(
        Figure(
            f"counting cost per 1k tokens at {high:,} vs {low:,} tokens",
            per_1k[high],
            "us",
            baseline=per_1k[low],
            baseline_label=f"{low:,} tokens",
            target=Target.ratio("<=", 1.3),
        )
    )
    return figures
