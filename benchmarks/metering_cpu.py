"""CPU per MB of metering a non-streamed answer as it passes (``counting.json_body``) against
``orjson.loads`` of the whole body, the parse the reader it replaced paid before reading it.

Three bodies of about ``size`` bytes: float embeddings and base64 embeddings (skipped, but for
their ``usage``), and a chat completion whose one long answer (quotes, newlines, accents and
emoji, so escapes and multi-byte characters throughout) is read. The reader gets 64 KiB
chunks, as the proxy hands them over, and a collector that keeps nothing, so the figure is the
reading alone: counting the text with tiktoken costs the same either way.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable, Hashable

import orjson

from benchmarks.embeddings_upstream import embeddings_body
from benchmarks.harness import interleave
from budget_guard.counting.json_body import JsonBody
from budget_guard.counting.usage import UsageReport

CHUNK_BYTES = 64 * 1024


class _Discard:
    """The collector's interface, keeping nothing."""

    def __init__(self) -> None:
        self.usage = UsageReport()
        self.response_id: str | None = None

    def add_text(self, key: Hashable, text: object) -> None:
        pass

    def note_response_id(self, value: object) -> None:
        pass

    def discard_text(self) -> None:
        pass


def bodies(size: int) -> dict[str, bytes]:
    rng = random.Random(64)
    vector = base64.b64encode(rng.randbytes(6144)).decode()
    count = max(1, size // (len(vector) + 50))
    sentence = 'Bonjour à tous 🌍! "quoted" text,\nthen a line. '
    return {
        "float embeddings": embeddings_body(size),
        "base64 embeddings": orjson.dumps(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": vector} for i in range(count)
                ],
                "usage": {"prompt_tokens": 8, "total_tokens": 8},
            }
        ),
        "chat answer text": orjson.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": sentence * max(1, size // (len(sentence) + 12)),
                        },
                    }
                ],
                "usage": {"prompt_tokens": 8, "completion_tokens": 9, "total_tokens": 17},
            }
        ),
    }


def _read(body: bytes) -> Callable[[], float]:
    chunks = [body[start : start + CHUNK_BYTES] for start in range(0, len(body), CHUNK_BYTES)]

    def once() -> float:
        collector = _Discard()
        reader = JsonBody(collector)  # type: ignore[arg-type]
        started = time.process_time()
        for chunk in chunks:
            reader.feed(chunk)
        reader.close()
        elapsed = time.process_time() - started
        if not collector.usage.final:
            raise AssertionError("the usage was not read")
        return elapsed

    return once


def _parse(body: bytes) -> Callable[[], float]:
    def once() -> float:
        started = time.process_time()
        orjson.loads(body)
        return time.process_time() - started

    return once


def cpu_ms_per_mb(size: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Per body: samples of the reader's and of ``orjson.loads``'s CPU milliseconds per MB."""
    results = {}
    for name, body in bodies(size).items():
        megabytes = len(body) / 1e6
        samples = interleave({"reader": _read(body), "orjson": _parse(body)}, rounds)
        results[name] = {
            side: [seconds * 1e3 / megabytes for seconds in values]
            for side, values in samples.items()
        }
    return results
