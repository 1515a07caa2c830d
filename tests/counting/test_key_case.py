"""A key that differs only in case from one the guard reads is refused; the client's own names
(schema properties, metadata, a tool call's input) are left alone; references are matched in
any case."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import tiktoken

from budget_guard.counting import TokenCounter, routes
from budget_guard.counting.counter import _count_parsed
from budget_guard.counting.errors import InvalidRequestBody
from budget_guard.counting.key_case import READ_KEYS, fold, may_fold
from budget_guard.counting.references import may_refer, object_references

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"
IMAGES = "/v1/images/generations"
HI = [{"role": "user", "content": "hi"}]
KELVIN, LONG_S, DOTLESS_I, DOTTED_I = "\u212a", "\u017f", "\u0131", "\u0130"
FI, ST = "\ufb01", "\ufb06"  # ligatures


def _read(counter: TokenCounter, path: str, body: object) -> None:
    """As the guard reads a body: counted, or (the images route) read for what it names."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    if path == IMAGES:
        asyncio.run(counter.acount_other(raw, "application/json"))
    else:
        counter.count_request(path, raw)


def _refused(counter: TokenCounter, path: str, body: object) -> InvalidRequestBody:
    with pytest.raises(InvalidRequestBody) as refused:
        _read(counter, path, body)
    return refused.value


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (CHAT, {"model": "gpt-4o-mini", "Model": "o3", "messages": HI}, "Model"),
        (CHAT, {"model": "gpt-4o-mini", "MESSAGES": HI}, "MESSAGES"),
        (CHAT, {"model": "gpt-4o-mini", "messages": HI, "N": 8}, "N"),
        (CHAT, {"model": "gpt-4o-mini", "messages": HI, "Max_Tokens": 1}, "Max_Tokens"),
        (
            CHAT,
            {"model": "gpt-4o-mini", "messages": HI, "stream_options": {"Include_Usage": False}},
            "stream_options.Include_Usage",
        ),
        (
            CHAT,
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "conTent": "x"}]},
            "messages.[0].conTent",
        ),
        (
            CHAT,
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": [{"type": "text", "Text": "x"}]}],
            },
            "messages.[0].content.[0].Text",
        ),
        (
            CHAT,
            {
                "model": "gpt-4o-mini",
                "messages": HI,
                "tools": [{"type": "function", "function": {"Name": "f"}}],
            },
            "tools.[0].function.Name",
        ),
        (RESPONSES, {"model": "gpt-4o", "INPUT": "x"}, "INPUT"),
        (
            RESPONSES,
            {"model": "gpt-4o", "input": [{"Role": "user", "content": "x"}]},
            "input.[0].Role",
        ),
        (MESSAGES, {"model": "claude", "max_tokens": 9, "messages": HI, "System": "x"}, "System"),
        # Letters that some parser folds into an ASCII one: Go's Kelvin sign and long s, and
        # .NET's dotless i.
        (CHAT, {"model": "gpt-4o-mini", "messages": HI, f"{LONG_S}tream": True}, f"{LONG_S}tream"),
        (
            CHAT,
            {"model": "gpt-4o-mini", "messages": HI, f"max_to{KELVIN}ens": 1},
            f"max_to{KELVIN}ens",
        ),
        (RESPONSES, {"model": "gpt-4o", f"{DOTLESS_I}nput": "x"}, f"{DOTLESS_I}nput"),
        # Go's ToLower (json-iterator lower-cases keys) reads the dotted capital I as i; full
        # case mapping reads a ligature as its letters.
        (RESPONSES, {"model": "gpt-4o", f"{DOTTED_I}nstructions": "x"}, f"{DOTTED_I}nstructions"),
        (CHAT, {"model": "gpt-4o-mini", "messages": HI, f"{ST}ream": True}, f"{ST}ream"),
        # encoding/json/v2's case:ignore also ignores "_" and "-".
        (CHAT, {"model": "gpt-4o-mini", "messages": HI, "maxTokens": 1}, "maxTokens"),
        (
            CHAT,
            {"model": "gpt-4o-mini", "messages": HI, "max-completion-tokens": 1},
            "max-completion-tokens",
        ),
        # The same, escaped as JSON allows.
        (CHAT, b'{"model":"gpt-4o-mini","messages":[],"\\u004Dodel":"o3"}', "Model"),
        (CHAT, b'{"model":"gpt-4o-mini","messages":[],"\\u017ftream":true}', f"{LONG_S}tream"),
        # What a route of no counted shape is read for: how many outputs it asks for.
        (IMAGES, {"model": "dall-e-2", "prompt": "a cat", "N": 10}, "N"),
    ],
)
def test_a_key_the_guard_reads_in_another_case_is_refused(
    counter: TokenCounter, path: str, body: object, param: str
) -> None:
    refused = _refused(counter, path, body)
    assert refused.param == param
    read = next(key for key in READ_KEYS if fold(key) == fold(param.rpartition(".")[2]))
    assert f"Write it as '{read}'" in refused.message


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # A JSON schema's property names are the client's: only the schemas are read.
        (
            CHAT,
            {
                "model": "gpt-4o-mini",
                "messages": HI,
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "lookup",
                            "parameters": {
                                "type": "object",
                                "properties": {
                                    "Name": {"type": "string"},
                                    "Type": {"type": "object", "properties": {"ID": {}}},
                                    "Content": {"enum": [{"Model": 1}], "default": {"N": 2}},
                                },
                                "$defs": {"Text": {"type": "string"}},
                            },
                        },
                    }
                ],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "x",
                        "schema": {"type": "object", "properties": {"Messages": {}}},
                    },
                },
            },
        ),
        # Data, not fields: metadata, a tool call's input, and keys the guard never reads.
        (CHAT, {"model": "gpt-4o-mini", "messages": HI, "metadata": {"Model": "a", "N": "2"}}),
        (
            MESSAGES,
            {
                "model": "claude",
                "max_tokens": 9,
                "messages": [
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "name": "f", "input": {"Content": {"Type": 1}}}
                        ],
                    }
                ],
            },
        ),
        (CHAT, {"model": "gpt-4o-mini", "messages": HI, "Temperature": 0, "K": 1, "User": "u"}),
        # More maps of the client's names (a red-team pass found each refused): a pydantic
        # union's discriminator mapping, dependent schemas and requirements, schema
        # extensions, a replayed file search result's attributes, a shell call's environment.
        (
            CHAT,
            {
                "model": "gpt-4o-mini",
                "messages": HI,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "x",
                        "schema": {
                            "discriminator": {"propertyName": "kind", "mapping": {"Text": "#/T"}},
                            "dependentRequired": {"Name": ["x"]},
                            "dependentSchemas": {"Source": {"type": "object"}},
                            "dependencies": {"Data": ["y"]},
                            "x-enum-descriptions": {"Name": "n"},
                        },
                    },
                },
            },
        ),
        (
            RESPONSES,
            {
                "model": "gpt-4o",
                "input": [
                    {
                        "type": "file_search_call",
                        "results": [{"attributes": {"Source": "wiki"}, "text": "t"}],
                    },
                    {"type": "local_shell_call", "action": {"env": {"URL": "u"}}},
                ],
            },
        ),
        (IMAGES, {"model": "dall-e-2", "Prompt": "a cat", "Size": "256x256"}),
    ],
)
def test_the_clients_own_names_are_left_alone(
    counter: TokenCounter, path: str, body: dict[str, Any]
) -> None:
    _read(counter, path, body)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt-4o", "input": "x", "Previous_Response_Id": "resp_1"},
        {"model": "gpt-4o", "input": "x", f"previou{LONG_S}_re{LONG_S}pon{LONG_S}e_id": "resp_1"},
        {"model": "gpt-4o", "input": "x", "conversation": {"ID": "resp_1"}},
        {"x": [{"Type": "item_reference", "Id": "resp_1"}]},
        {"Metadata": {f"{KELVIN}": 1, "thread_ID": "resp_1"}},  # not read as the client's data
        {"model": "gpt-4o", "input": "x", "previousResponseId": "resp_1"},
        {"model": "gpt-4o", "input": "x", "previous-response-id": "resp_1"},
        {"model": "gpt-4o", "input": "x", f"previous_response_{DOTTED_I}d": "resp_1"},
        {"tools": [{"vector_store_ids": [], f"{FI}le_ids": ["resp_1"]}]},
    ],
)
def test_a_reference_is_found_in_any_case(body: dict[str, Any]) -> None:
    raw = orjson.dumps(body)
    assert may_refer(raw)
    assert object_references(orjson.loads(raw)) == ("resp_1",)


def test_a_variant_among_many_long_keys_is_found_in_one_pass(counter: TokenCounter) -> None:
    """Paths are built for the key refused only (one per key cost the length of every key
    above it: a red-team body of 2.4 MiB took 10 s)."""
    deep: dict[str, Any] = {"model": "gpt-4o-mini", "messages": HI, "metadata": {"Model": 1}}
    deep["k" * 200_000] = [{f"a{index}": 0 for index in range(5_000)}]
    _read(counter, CHAT, deep)
    deep["k" * 200_000][0]["Role"] = "user"
    assert _refused(counter, CHAT, deep).param == f"{'k' * 200_000}.[0].Role"


def test_keys_settled_without_folding_are_no_variants() -> None:
    from budget_guard.counting.key_case import _SETTLED

    assert not {fold(key) for key in _SETTLED - READ_KEYS} & {fold(key) for key in READ_KEYS}


def test_references_are_looked_for_only_where_a_key_may_name_one() -> None:
    assert not may_refer(orjson.dumps({"model": "gpt-4o", "messages": HI, "tool_call_id": "x"}))
    assert not may_refer('{"content": "caf\u00e9 \u017e"}'.encode())  # accents, unescaped
    assert may_refer(b'{"Thread_Id": "t"}')
    assert may_refer(b'{"\\u0074hread_id": "t"}')


class _Recording(dict[str, Any]):
    """A parsed object that notes each key the counter asks it for by name."""

    asked: set[str]

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)


def _recording(value: Any, asked: set[str]) -> Any:
    if isinstance(value, dict):
        recorded = _Recording({key: _recording(item, asked) for key, item in value.items()})
        recorded.asked = asked
        return recorded
    if isinstance(value, list):
        return [_recording(item, asked) for item in value]
    return value


_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
    "hQGAhKmMIQAAAABJRU5ErkJggg=="
)
_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "f",
            "description": "d",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "string", "enum": ["x"], "description": "e"}},
                "items": {"properties": {}},
            },
        },
    },
    {"type": "custom", "custom": {"name": "c"}},
    {"type": "function", "name": "flat", "parameters": {}},
]
_EVERY_SHAPE: list[tuple[str, dict[str, Any]]] = [
    (
        routes.CHAT,
        {
            "model": "gpt-4o",
            "n": 2,
            "stream": True,
            "max_tokens": 5,
            "max_completion_tokens": 5,
            "tools": _TOOLS,
            "functions": [{"name": "g", "parameters": {}}],
            "messages": [
                {"role": "system", "content": "s", "name": "n"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "t"},
                        {"type": "image_url", "image_url": {"url": _PNG, "detail": "high"}},
                        {"type": "image_url", "image_url": _PNG, "detail": "low"},
                        {"type": "refusal", "refusal": "r"},
                        {"type": "file", "file": {"file_id": "f"}},
                    ],
                },
                {
                    "role": "assistant",
                    "refusal": "r",
                    "tool_calls": [
                        {"function": {"name": "f", "arguments": "{}"}},
                        {"custom": {"name": "c", "input": "i"}},
                    ],
                    "function_call": {"name": "f", "arguments": "{}"},
                },
            ],
        },
    ),
    (
        routes.RESPONSES,
        {
            "model": "gpt-4o",
            "instructions": "i",
            "background": True,
            "max_output_tokens": 5,
            "tools": _TOOLS,
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "t"}]},
                {"type": "message", "role": "user", "content": "c"},
                {"type": "function_call", "name": "f", "arguments": "{}"},
                {"type": "custom_tool_call", "name": "c", "input": "i"},
                {"type": "function_call_output", "output": "o"},
                {
                    "type": "custom_tool_call_output",
                    "output": [{"type": "input_text", "text": "o"}],
                },
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}]},
                {"type": "item_reference", "id": "msg_1"},
            ],
        },
    ),
    (routes.RESPONSES, {"model": "gpt-4o", "input": "x"}),
    (
        routes.COMPLETIONS,
        {"model": "gpt-3.5-turbo-instruct", "prompt": ["a", [1, 2]], "suffix": "s", "best_of": 2},
    ),
    (routes.EMBEDDINGS, {"model": "text-embedding-3-small", "input": ["a", "b"]}),
    (
        routes.MESSAGES,
        {
            "model": "claude",
            "max_tokens": 9,
            "system": [{"type": "text", "text": "s"}],
            "tools": [{"name": "t", "description": "d", "input_schema": {"properties": {}}}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "t"},
                        {"type": "thinking", "thinking": "h"},
                        {"type": "tool_use", "name": "f", "input": {"a": 1}},
                        {"type": "tool_result", "content": [{"type": "text", "text": "r"}]},
                        {"type": "image", "source": {"type": "base64", "data": _PNG[22:]}},
                        {"type": "document", "source": {"type": "text", "data": "d"}},
                    ],
                }
            ],
        },
    ),
]


@pytest.mark.parametrize(("kind", "body"), _EVERY_SHAPE)
def test_every_key_the_counters_read_is_one_the_check_knows(
    kind: str, body: dict[str, Any], o200k: tiktoken.Encoding
) -> None:
    """Read back from the counters themselves: a key they start reading, the check must know,
    or a variant of it would pass."""
    asked: set[str] = set()
    data = _recording(body, asked)
    _count_parsed(kind, data.get("model"), data, o200k, object_references(data))
    assert asked, "nothing was read"
    assert asked <= READ_KEYS, sorted(asked - READ_KEYS)


def test_the_keys_the_stream_usage_option_is_read_by_are_known() -> None:
    """``guard.stream_usage.ask_for_usage`` reads these before the guard adds the option."""
    assert {"stream", "stream_options", "include_usage"} <= READ_KEYS


def test_every_character_fold_turns_into_ascii_makes_a_body_walked() -> None:
    """The raw-byte pre-scan sees each character some parser reads as an ASCII letter, so
    no key built with one skips the walk (the sharp s folds into "ss", say)."""
    missed = []
    for code in range(0x80, 0x110000):
        if 0xD800 <= code < 0xE000:
            continue
        key = f"a{chr(code)}b"
        if fold(key).isascii() and not may_fold(key.encode()):
            missed.append(hex(code))
    assert missed == []
