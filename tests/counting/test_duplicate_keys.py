"""A body that names one key twice in an object is refused, naming the key: the guard and the
upstream could read different values."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from budget_guard.counting import InvalidRequestBody, TokenCounter

CHAT = "/v1/chat/completions"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model":"gpt-4o","model":"gpt-4o-mini","messages":[]}', "model"),
        (
            b'{"model":"gpt-4o","messages":[{"role":"user","content":"a","content":"b"}]}',
            "messages.[0].content",
        ),
        # The same key spelled with an escape is the same key.
        (b'{"model":"gpt-4o","messages":[],"\\u006dodel":"o1"}', "model"),
        # An escaped colon elsewhere cannot hide the dropped member's colon.
        (b'{"model":"a\\u003ab","messages":[],"n":1,"n":2}', "n"),
        # The dropped value's own colons are not needed to tell.
        (
            b'{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"messages":[]}',
            "messages",
        ),
        (b'{"model":"gpt-4o","messages":[],"metadata":{"a":"1","a":"2"}}', "metadata.a"),
    ],
)
def test_a_repeated_key_is_refused_naming_it(
    counter: TokenCounter, body: bytes, param: str
) -> None:
    with pytest.raises(InvalidRequestBody) as raised:
        counter.count_request(CHAT, body)
    assert raised.value.param == param
    assert f"'{param}'" in raised.value.message


async def test_a_repeated_key_is_refused_on_every_route(counter: TokenCounter) -> None:
    with pytest.raises(InvalidRequestBody):
        await counter.acount_request(CHAT, b'{"model":"a","messages":[],"model":"b"}')
    with pytest.raises(InvalidRequestBody):  # a route the guard only reads object ids from
        await counter.acount_other(b'{"file_id":"file-a","file_id":"file-b"}', "application/json")
    prompt = b"x" * 40_000
    large = b'{"model":"a","messages":[{"role":"user","content":"' + prompt + b'"}],"n":1,"n":9}'
    with pytest.raises(InvalidRequestBody):  # counted in the pool
        await counter.acount_request(CHAT, large)


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"a: b, c: d"}]}',
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"x\\u003ay \\u00e9"}]}',
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}',
        b'{ "model" : "gpt-4o" ,\n "messages" : [ ] , "a:b" : { "a:b" : ":" } }',
    ],
)
def test_the_same_key_in_different_objects_passes(counter: TokenCounter, body: bytes) -> None:
    assert counter.count_request(CHAT, body).model == "gpt-4o"


_KEYS = st.sampled_from(["a", "b", "a:b", ":", "é", "c\\"])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(alphabet='ab:"\\é\n', max_size=6),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(st.tuples(_KEYS, inner), max_size=4),  # an object as pairs, repeats allowed
    ),
    max_leaves=12,
)


def _write(value: Any, escape: bool) -> str:
    """JSON text keeping every pair as given; ``escape`` writes non-ASCII and ':' as \\u."""
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        return "{" + ",".join(f"{_string(k, escape)}:{_write(v, escape)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_write(item, escape) for item in value) + "]"
    if isinstance(value, str):
        return _string(value, escape)
    return json.dumps(value)


def _string(text: str, escape: bool) -> str:
    written = json.dumps(text, ensure_ascii=escape)
    return written.replace(":", "\\u003a") if escape else written


def _repeats(value: Any) -> bool:
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        keys = [key for key, _ in value]
        return len(set(keys)) < len(keys) or any(_repeats(v) for _, v in value)
    if isinstance(value, list):
        return any(_repeats(item) for item in value)
    return False


@settings(max_examples=400, deadline=None)
@given(pairs=st.lists(st.tuples(_KEYS, _VALUES), max_size=5), escape=st.booleans())
def test_refused_exactly_when_some_object_repeats_a_key(
    counter: TokenCounter, pairs: list[tuple[str, Any]], escape: bool
) -> None:
    pairs = [("model", "gpt-4o"), ("messages", []), *pairs]
    body = _write(pairs, escape).encode()
    orjson.loads(body)  # well-formed JSON
    if _repeats(pairs):
        with pytest.raises(InvalidRequestBody):
            counter.count_request(CHAT, body)
    else:
        counter.count_request(CHAT, body)
