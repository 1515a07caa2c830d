"""The one JSON codec of the wire layer, orjson, for reading requests and writing responses.

orjson is fast, keeps dict insertion order (ServiceStack writes members in declaration order),
writes compact output like ServiceStack.Text, and refuses invalid UTF-8 instead of guessing.
Integers beyond 64 bits come back from it as floats, which the binder rejects like any other
non-integer, so oversized numbers never reach an ``int`` conversion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson

__all__ = ["JsonDecodeError", "dumps_json", "loads_json"]

_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonDecodeError(ValueError):
    """The bytes are not one well-formed UTF-8 JSON document."""


def loads_json(data: bytes | str) -> object:
    """Parse one JSON document; a leading UTF-8 byte order mark is skipped, as .NET does."""
    if isinstance(data, bytes) and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif isinstance(data, str) and data.startswith("\ufeff"):
        data = data[1:]
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise JsonDecodeError(str(error)) from None


def dumps_json(value: object) -> bytes:
    """Write compact UTF-8 JSON.

    Text that cannot be UTF-8 (lone surrogates, which a query string can smuggle into an
    echoed error message) is replaced with U+FFFD instead of failing the response.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return orjson.dumps(_scrub(value))


def _scrub(value: object) -> object:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {_scrub(key): _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value
