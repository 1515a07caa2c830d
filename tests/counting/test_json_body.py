"""A non-streamed body read as it passes: the same text, usage and id as reading it whole, in
any key order, whitespace, escaping and chunking; nothing held that grows with the body. A small
body is parsed whole instead of walked, and finds exactly what the walker finds."""

from __future__ import annotations

import json
import random
import tracemalloc
from collections.abc import Hashable
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from budget_guard.counting import RequestTokens, TokenCounter, TokenUsage
from budget_guard.counting.json_body import (
    MAX_PENDING_CHARS,
    MAX_USAGE_CHARS,
    WHOLE_BODY_BYTES,
    JsonBody,
)
from budget_guard.counting.usage import UsageReport

from .whole_body_oracle import collect_response


class Recorder:
    """The collector's interface, keeping every piece of text by key instead of counting."""

    def __init__(self) -> None:
        self.texts: dict[Hashable, str] = {}
        self.usage = UsageReport()
        self.response_id: str | None = None
        self.item_ids: dict[str, None] = {}

    def add_text(self, key: Hashable, text: object) -> None:
        if isinstance(text, str) and text:
            self.texts[key] = self.texts.get(key, "") + text

    def note_response_id(self, value: object) -> None:
        if self.response_id is None and isinstance(value, str) and 0 < len(value) <= 256:
            self.response_id = value

    def note_item_id(self, value: object) -> None:
        if isinstance(value, str) and 0 < len(value) <= 256:
            self.item_ids[value] = None

    def discard_text(self) -> None:
        self.texts.clear()
        self.item_ids.clear()


WALKED = 0
"""``whole_body_bytes`` for a body walked whatever its size."""


def read(
    raw: bytes, chunk_sizes: list[int] | None = None, whole_body_bytes: int = WHOLE_BODY_BYTES
) -> Recorder:
    recorder = Recorder()
    body = JsonBody(recorder, whole_body_bytes=whole_body_bytes)  # type: ignore[arg-type]
    sizes = chunk_sizes or [len(raw) or 1]
    position, turn = 0, 0
    while position < len(raw):
        size = sizes[turn % len(sizes)]
        body.feed(raw[position : position + size])
        position += size
        turn += 1
    body.close()
    return recorder


def oracle(body: dict[str, Any]) -> Recorder:
    recorder = Recorder()
    collect_response(recorder, body)  # type: ignore[arg-type]
    return recorder


texts = st.text(max_size=40)
maybe_text = st.one_of(st.none(), texts, st.integers())
usages = st.dictionaries(
    st.sampled_from(
        ["prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens"]
    ),
    st.integers(0, 10**6),
)
tool_calls = st.builds(
    lambda kind, name, arguments, slot: {
        "id": "call_1",
        "type": kind,
        kind: {"name": name, slot: arguments},
    },
    st.sampled_from(["function", "custom"]),
    texts,
    texts,
    st.sampled_from(["arguments", "input"]),
)
messages = st.fixed_dictionaries(
    {"role": st.just("assistant")},
    optional={
        "content": st.one_of(
            maybe_text,
            st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=3),
        ),
        "refusal": maybe_text,
        "reasoning_content": maybe_text,
        "reasoning": maybe_text,
        "tool_calls": st.lists(tool_calls, max_size=3),
        "function_call": st.fixed_dictionaries({"name": texts, "arguments": texts}),
        "annotations": st.lists(st.fixed_dictionaries({"text": texts}), max_size=2),
    },
)
choices = st.fixed_dictionaries(
    {"index": st.integers(0, 3), "finish_reason": st.just("stop")},
    optional={
        "message": messages,
        "text": maybe_text,
        "logprobs": st.fixed_dictionaries({"content": st.lists(texts, max_size=3)}),
    },
)
output_items = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["message", "reasoning", "web_search_call"]),
            "content": st.lists(
                st.fixed_dictionaries({"type": st.just("output_text")}, optional={"text": texts}),
                max_size=3,
            ),
            "summary": st.lists(st.fixed_dictionaries({"text": texts}), max_size=2),
        }
    ),
    st.fixed_dictionaries(  # no API sends both arguments and input: both would be counted
        {"type": st.sampled_from(["function_call", "mcp_call"])},
        optional={"name": texts, "arguments": texts},
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["custom_tool_call", "mcp_call"])},
        optional={"name": texts, "input": texts},
    ),
    st.fixed_dictionaries({"content": st.lists(st.fixed_dictionaries({"text": texts}))}),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)
blocks = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "thinking", "tool_use", "server_tool_use", "other"])},
    optional={
        "text": texts,
        "thinking": texts,
        "name": texts,
        "input": st.dictionaries(texts, json_values, max_size=3),
    },
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"object": st.just("chat.completion"), "choices": st.lists(choices, max_size=3)},
        optional={"id": texts, "usage": usages},
    ),
    st.fixed_dictionaries(
        {"object": st.just("response"), "output": st.lists(output_items, max_size=4)},
        optional={"id": texts, "usage": usages, "text": st.just({"format": {"type": "text"}})},
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["message", "error"]), "content": st.lists(blocks, max_size=4)},
        optional={"id": texts, "usage": usages, "role": st.just("assistant")},
    ),
    st.fixed_dictionaries(
        {"object": st.just("list"), "data": st.lists(json_values, max_size=4)},
        optional={"usage": usages, "id": st.integers()},
    ),
)


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [shuffled(item, rng) for item in value]
    return value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies,
    seed=st.integers(0, 2**32),
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
    chunk_sizes=st.lists(st.integers(1, 40), min_size=1, max_size=5),
)
def test_read_as_it_passes_equals_read_whole(
    body: dict[str, Any], seed: int, ascii_only: bool, indent: int | None, chunk_sizes: list[int]
) -> None:
    body = shuffled(body, random.Random(seed))
    raw = json.dumps(body, ensure_ascii=ascii_only, indent=indent).encode()

    whole = oracle(body)
    identifier = body.get("id")
    expected_id = identifier if isinstance(identifier, str) and identifier else None

    for whole_body_bytes in (WALKED, WHOLE_BODY_BYTES):
        read_back = read(raw, chunk_sizes, whole_body_bytes)
        assert read_back.texts == whole.texts
        assert usage_of(read_back) == usage_of(whole)
        assert read_back.response_id == expected_id


def usage_of(recorder: Recorder) -> tuple[object, ...]:
    """Every figure a charge reads from a usage report: totals, breakdown, finality."""
    usage = recorder.usage
    details = ("cached_tokens", "reasoning_tokens")
    anthropic = ("cache_creation_input_tokens", "cache_read_input_tokens")
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.total_tokens,
        usage.final,
        *(usage.detail(name) for name in (*details, *anthropic)),
    )


# Bodies where a looser reading of each API would differ from the walker's: the parsed path
# must still find the same text, usage and id.
_EDGE_BODIES: list[bytes] = [
    b'{"choices": [{"message": {"tool_calls": [{"index": 5, "function": {"name": "a",'
    b' "input": "x", "arguments": "y"}, "custom": {"name": "b", "input": "z"}}]}}]}',
    b'{"choices": [{"message": {"function_call": {"input": "1", "name": "f", "arguments": "2"},'
    b' "content": {"text": "not a part list"}}, "text": "t"}, "skip", [1]]}',
    b'{"output": [{"type": "message", "content": [{"refusal": "r", "text": "t"}]},'
    b' {"input": "i", "type": "function_call", "arguments": "a", "name": "n"},'
    b' {"type": "reasoning", "summary": [{"text": "s"}, "x"]}, {"type": 3, "name": "no"}]}',
    b'{"type": "message", "content": [{"type": "tool_use", "name": "t", "input": "raw text"},'
    b' {"type": "tool_use", "input": [1, {"a": 2}]}, {"type": "tool_use", "input": {}},'
    b' {"type": "server_tool_use", "input": 7}, {"type": "thinking", "thinking": "th",'
    b' "text": "no"}], "id": 12}',
    b'{"type": "message", "content": [{"type": "' + b"t" * 80 + b'", "text": "long type"}]}',
    b'{"id": "' + b"r" * 257 + b'", "choices": {"0": {"text": "not a list"}}}',
    b'{"usage": {"prompt_tokens": 10, "completion_tokens": 4, "prompt_tokens_details":'
    b' {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 2}}}',
    b'{"usage": {"input_tokens": 10, "output_tokens": 4, "cache_creation_input_tokens": 5,'
    b' "cache_read_input_tokens": 6, "input_tokens_details": {"cached_tokens": 1},'
    b' "output_tokens_details": {"reasoning_tokens": 2}}, "usage_extra": true}',
    b'{"usage": [1], "choices": [{"text": "a"}]} trailing',  # orjson refuses: walked
    b'{"choices": [{"text": "no comma"} {"text": "b"}]}',  # lenient walker, orjson refuses
    b'{"choices": [{"text": "escaped \\t, raw \t control char"}]}',
    b'{"choices": [{"text": "lone \\ud800 surrogate"}]}',
    b'{"choices": [{"text": "bad \xff utf-8 \xff"}], "usage": {"prompt_tokens": 1}}',
    b'[{"choices": [{"text": "root array"}]}]',
    b'\xef\xbb\xbf{"choices": [{"text": "after a BOM"}]}',
    b'{"choices": [{"text": "huge number"}], "n": 1e400}',
    b'"a string"',
    b'{"choices": [{"text": "cut',
    b"",
]


def test_a_small_body_read_whole_finds_what_the_walker_finds() -> None:
    for raw in _EDGE_BODIES:
        walked = read(raw, [7], WALKED)
        whole = read(raw, [7])
        assert whole.texts == walked.texts, raw
        assert usage_of(whole) == usage_of(walked), raw
        assert whole.response_id == walked.response_id, raw


def test_a_body_either_side_of_the_whole_body_bound_is_read_the_same() -> None:
    head = b'{"id": "chatcmpl-1", "choices": [{"message": {"content": "'
    tail = b'"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 9}}'
    for size in (WHOLE_BODY_BYTES - 1, WHOLE_BODY_BYTES, WHOLE_BODY_BYTES + 1):
        text = "w" * (size - len(head) - len(tail))
        raw = head + text.encode() + tail
        for chunks in ([4096], [size], [1000, 7]):
            whole, walked = read(raw, chunks), read(raw, chunks, WALKED)
            assert whole.texts == walked.texts == {(0, "content"): text}
            assert usage_of(whole) == usage_of(walked)
            assert whole.response_id == walked.response_id == "chatcmpl-1"


def test_escapes_and_surrogate_pairs_split_at_every_byte() -> None:
    text = 'a "quoted" \\ back\\slash\n\t 🌍 日本 \u2028 \x01 end'
    body = {"choices": [{"message": {"content": text}}], "id": "chatcmpl-é"}
    for ascii_only in (True, False):
        raw = json.dumps(body, ensure_ascii=ascii_only).encode()
        for size in (1, 2, 3, 5, 7):
            recorder = read(raw, [size])
            assert recorder.texts == {(0, "content"): text}, (ascii_only, size)
            assert recorder.response_id == "chatcmpl-é"


def test_type_after_the_text_still_decides() -> None:
    raw = (
        b'{"content": [{"text": "late", "type": "text"}, {"text": "no", "type": "image"}],'
        b' "output": [{"arguments": "{}", "name": "f", "type": "function_call"}],'
        b' "type": "message"}'
    )
    assert read(raw, [3]).texts == {
        ("blk", 0): "late",
        ("out", 0, "name"): "f",
        ("out", 0, "arguments"): "{}",
    }


def test_text_waiting_for_its_type_is_bounded() -> None:
    big = "x" * (MAX_PENDING_CHARS + 10)
    raw = orjson.dumps({"content": [{"text": big, "type": "text"}], "type": "message"})
    counted = read(raw, [65536]).texts[("blk", 0)]
    assert 0 < len(counted) <= MAX_PENDING_CHARS  # past the bound, the rest is not counted


def test_a_body_that_does_not_end_counts_no_text_but_keeps_a_whole_usage() -> None:
    raw = orjson.dumps(
        {"usage": {"prompt_tokens": 3, "completion_tokens": 4}, "choices": [{"text": "hello"}]}
    )
    for cut in range(1, len(raw)):
        recorder = read(raw[:cut], [5])
        assert recorder.texts == {}
        whole_usage = cut > raw.index(b"}")
        assert recorder.usage.final is whole_usage, cut


def test_what_cannot_be_json_stops_the_reading_without_raising() -> None:
    for raw in (
        b"<html>502 Bad Gateway</html>",
        b'["usage", {"usage": {"prompt_tokens": 1}}]',
        b'"a string"',
        b'{"choices": [{"text": "bad \\x escape"}]}',
        b'{"choices": [{"text": "bad \\u12G4 escape"}]}',
        b'{"choices" [{"text": "x"}]}',
        b"\xff\xfe{}",
        b"",
    ):
        recorder = read(raw, [3])
        assert recorder.texts == {}
        assert recorder.usage.final is False


def test_usage_over_its_bound_is_not_read() -> None:
    usage = {"prompt_tokens": 5, "padding": "x" * MAX_USAGE_CHARS}
    assert read(orjson.dumps({"usage": usage}), [65536]).usage.final is False


def test_an_overlong_id_is_not_kept() -> None:
    assert read(orjson.dumps({"id": "r" * 257})).response_id is None
    assert read(orjson.dumps({"id": "r" * 256})).response_id == "r" * 256
    assert read(orjson.dumps({"data": {"id": "nested"}})).response_id is None


def test_a_large_tool_input_is_counted_as_sent() -> None:
    value = {"blob": "y" * (1 << 20)}
    raw = orjson.dumps(
        {"type": "message", "content": [{"type": "tool_use", "name": "t", "input": value}]}
    )
    recorder = read(raw, [4096])
    assert recorder.texts[("blk", 0)] == orjson.dumps(value).decode()


def test_deep_nesting_in_skipped_data_costs_no_recursion() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    raw = b'{"data": ' + deep + b', "usage": {"prompt_tokens": 9, "total_tokens": 9}}'
    recorder = read(raw, [65536])
    assert recorder.usage.input_tokens == 9


def test_embeddings_are_skipped_without_being_held(counter: TokenCounter) -> None:
    """16 MB of vectors, float and base64, read in 64 KiB chunks: the reader's own allocations
    stay under 1 MiB at their peak, the chunk it is handed aside."""
    vectors = [
        {"object": "embedding", "index": i, "embedding": [0.0123456789] * 1536} for i in range(700)
    ]
    vectors += [{"object": "embedding", "index": i, "embedding": "QUJD" * 2048} for i in range(500)]
    raw = orjson.dumps(
        {"object": "list", "data": vectors, "usage": {"prompt_tokens": 4321, "total_tokens": 4321}}
    )
    del vectors
    assert len(raw) > 16_000_000
    chunks = [raw[start : start + 65536] for start in range(0, len(raw), 65536)]
    request = RequestTokens("embeddings", "text-embedding-3-small", 4000, False, None)
    meter = counter.meter(request, "application/json")
    tracemalloc.start()
    try:
        for chunk in chunks:
            meter.feed(chunk)
        usage = meter.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert usage == TokenUsage(4321, 0, "upstream")
    assert peak < 1 << 20, peak


def test_the_meter_names_the_object_the_response_created(counter: TokenCounter) -> None:
    request = RequestTokens("responses", "gpt-4.1", 30, False, None)
    meter = counter.meter(request, "application/json")
    meter.feed(b'{"id": "resp_67ccd2bed1ec8190", "object": "response", "output": []}')
    meter.finish()
    assert meter.response_id == "resp_67ccd2bed1ec8190"


def test_the_meter_names_the_created_object_without_being_finished(counter: TokenCounter) -> None:
    """A free route (a file upload) asks for the id without measuring the answer."""
    request = RequestTokens("other", None, 0, False, None)
    meter = counter.meter(request, "application/json", read_other=True)
    meter.feed(b'{"object": "file", "id": "file-abc123", "bytes": 12}')
    assert meter.response_id == "file-abc123"


def test_the_ids_of_a_responses_answers_items_are_found_walked_or_whole() -> None:
    """They become the company's objects: a later request may send the items back by id."""
    items = [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "hi"}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f"},
        {"type": "message", "id": 7},  # not an id
        {"type": "message", "content": [{"type": "output_text", "id": "not_an_item"}]},
    ]
    raw = orjson.dumps({"id": "resp_1", "object": "response", "output": items})
    for whole_body_bytes in (WHOLE_BODY_BYTES, WALKED):
        for chunks in ([len(raw)], [3]):
            recorder = read(raw, chunks, whole_body_bytes)
            assert list(recorder.item_ids) == ["rs_1", "msg_1", "fc_1"]
            assert recorder.response_id == "resp_1"


def test_an_audio_answer_and_a_code_execution_container_are_found() -> None:
    """A later turn replays the audio by its id, and a replayed code interpreter call names
    its container: both are the company's, walked or whole."""
    chat = {
        "id": "chatcmpl-1",
        "choices": [
            {"message": {"role": "assistant", "audio": {"id": "audio_1", "transcript": "hi"}}}
        ],
    }
    responses = {
        "id": "resp_1",
        "output": [{"type": "code_interpreter_call", "id": "ci_1", "container_id": "cntr_1"}],
    }
    anthropic = {
        "id": "msg_01",
        "type": "message",
        "content": [{"type": "text", "text": "done"}],
        "container": {"id": "container_1", "expires_at": "2026-12-02T00:00:00Z"},
    }
    for body, ids in (
        (chat, ["audio_1"]),
        (responses, ["ci_1", "cntr_1"]),
        (anthropic, ["container_1"]),
    ):
        raw = orjson.dumps(body)
        for whole_body_bytes in (WHOLE_BODY_BYTES, WALKED):
            assert list(read(raw, [5], whole_body_bytes).item_ids) == ids


def test_a_file_a_code_interpreter_wrote_is_found_in_its_citation() -> None:
    """A later request that sends the message back names the file and its container; other
    citations name nothing the answer made, whatever order a citation's fields come in."""
    annotations = [
        {"file_id": "cfile_1", "type": "container_file_citation", "container_id": "cntr_1"},
        {"type": "file_citation", "file_id": "file-searched", "index": 3},
        {"type": "url_citation", "url": "https://example.com", "title": "t"},
        {"container_id": "cntr_1", "file_id": "cfile_2", "type": "container_file_citation"},
    ]
    body = {
        "id": "resp_1",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "content": [{"type": "output_text", "text": "see", "annotations": annotations}],
            }
        ],
    }
    raw = orjson.dumps(body)
    for whole_body_bytes in (WHOLE_BODY_BYTES, WALKED):
        for chunks in ([len(raw)], [3]):
            found = list(read(raw, chunks, whole_body_bytes).item_ids)
            assert found == ["msg_1", "cfile_1", "cntr_1", "cfile_2"], (whole_body_bytes, chunks)


def test_an_answer_cut_short_names_no_item() -> None:
    """Its client could not read it either: its text is dropped, and so are its ids."""
    raw = b'{"output": [{"type": "message", "id": "msg_1", "content": [{"text": "a"}]}, {"te'
    for whole_body_bytes in (WHOLE_BODY_BYTES, WALKED):
        recorder = read(raw, [4], whole_body_bytes)
        assert recorder.item_ids == {}
        assert recorder.texts == {}
