"""ServiceStack's JSV text format, both directions.

JSV is what ServiceStack.Text writes for ``text/jsv``: ``{Key:Value,Key2:[a,b]}`` with no
whitespace between tokens, strings bare unless they hold one of ``" : , { } [ ] CR LF``
(then wrapped in ``"`` with inner quotes doubled), ``""`` for the empty string, ``True`` /
``False`` for booleans and nulls left out. No Python library speaks it, so this module does.

JSV carries no types: ``loads`` returns every scalar as the text it was written as (``"1200"``,
``"True"``) and leaves typing to whoever knows the target field, exactly like ServiceStack's
reader. An empty unquoted value (``{A:}``) reads as ``None``, the same as ServiceStack's null.

Two deliberate supersets of ServiceStack's writer, both still read by ServiceStack:
strings with leading or trailing whitespace are quoted too (our reader trims whitespace around
bare tokens, so a bare ``" a"`` would not survive a round trip), and a ``None`` inside a list
is refused rather than written as an empty item that reads back ambiguously.
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

__all__ = ["MAX_DEPTH", "JsvDecodeError", "dumps", "loads"]

#: Nesting deeper than this is refused: request bodies never need it and recursion must not
#: be a way to crash the parser.
MAX_DEPTH = 64

_QUOTE = '"'
_ESCAPE_CHARS = frozenset('":,{}[]\r\n')
_WHITESPACE = " \t\r\n"


class JsvDecodeError(ValueError):
    """The text is not well-formed JSV; ``position`` is the offending character's index."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.position = position


# --------------------------------------------------------------------------- writing


def dumps(value: object) -> str:
    """Write ``value`` as JSV.

    Accepts dicts (insertion order kept, ``None`` values omitted, keys must be ``str``),
    lists and tuples, ``str``, ``bool``, ``int``, finite ``float``, ``UUID`` (32 lowercase hex
    digits, ServiceStack's ``Guid.ToString("N")``) and a top-level ``None`` (written as the
    empty text, as ServiceStack writes a null root).
    """
    if value is None:
        return ""
    parts: list[str] = []
    _write(value, parts, 0)
    return "".join(parts)


def _write(value: object, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"JSV nesting deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif isinstance(value, bool):
        out.append("True" if value else "False")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("JSV cannot carry NaN or infinity")
        out.append(repr(value))
    elif isinstance(value, UUID):
        out.append(value.hex)
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for key, item in value.items():
            if item is None:
                continue
            if not isinstance(key, str):
                raise TypeError(f"JSV object keys must be str, not {type(key).__name__}")
            if not first:
                out.append(",")
            first = False
            out.append(_encode_string(key))
            out.append(":")
            _write(item, out, depth + 1)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if item is None:
                raise ValueError("JSV lists cannot hold None")
            if index:
                out.append(",")
            _write(item, out, depth + 1)
        out.append("]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSV")


def _encode_string(text: str) -> str:
    if text == "":
        return '""'
    needs_quotes = (
        text[0] in _WHITESPACE
        or text[-1] in _WHITESPACE
        or any(char in _ESCAPE_CHARS for char in text)
    )
    if not needs_quotes:
        return text
    return _QUOTE + text.replace(_QUOTE, '""') + _QUOTE


# --------------------------------------------------------------------------- reading


def loads(text: str) -> object:
    """Read JSV text: objects become ``dict[str, object]``, lists ``list``, scalars ``str``.

    Whitespace (space, tab, CR, LF) is tolerated around keys, values and separators, so
    pretty-printed samples parse. Keys keep their spelling; match them case-insensitively
    where they are used. A repeated key keeps its last value. Empty or whitespace-only text
    reads as ``None``. Anything malformed raises :class:`JsvDecodeError`.
    """
    parser = _Parser(text)
    parser.skip_whitespace()
    if parser.at_end():
        return None
    value = parser.read_value(depth=0, closers="")
    parser.skip_whitespace()
    if not parser.at_end():
        raise JsvDecodeError("unexpected text after the value", parser.index)
    return value


class _Parser:
    """Recursive descent over one string; ``closers`` names the characters ending a bare value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.index = 0
        self.length = len(text)

    def at_end(self) -> bool:
        return self.index >= self.length

    def peek(self) -> str:
        return self.text[self.index] if self.index < self.length else ""

    def skip_whitespace(self) -> None:
        text, index, length = self.text, self.index, self.length
        while index < length and text[index] in _WHITESPACE:
            index += 1
        self.index = index

    def read_value(self, depth: int, closers: str) -> object:
        if depth > MAX_DEPTH:
            raise JsvDecodeError(f"nesting deeper than {MAX_DEPTH} levels", self.index)
        char = self.peek()
        if char == "{":
            return self.read_object(depth)
        if char == "[":
            return self.read_list(depth)
        if char == _QUOTE:
            return self.read_quoted()
        return self.read_bare(closers)

    def read_object(self, depth: int) -> dict[str, object]:
        self.index += 1  # "{"
        result: dict[str, object] = {}
        self.skip_whitespace()
        if self.peek() == "}":
            self.index += 1
            return result
        while True:
            self.skip_whitespace()
            if self.peek() == "}" and result:  # tolerate one trailing comma
                self.index += 1
                return result
            key = self.read_key()
            self.skip_whitespace()
            if self.peek() != ":":
                raise JsvDecodeError("expected ':' after an object key", self.index)
            self.index += 1
            self.skip_whitespace()
            result[key] = self.read_value(depth + 1, ",}")
            self.skip_whitespace()
            char = self.peek()
            if char == ",":
                self.index += 1
                continue
            if char == "}":
                self.index += 1
                return result
            raise JsvDecodeError("expected ',' or '}' in an object", self.index)

    def read_key(self) -> str:
        if self.peek() == _QUOTE:
            return self.read_quoted()
        start = self.index
        text, length = self.text, self.length
        index = start
        while index < length and text[index] != ":":
            if text[index] in ',{}[]"':
                raise JsvDecodeError("unexpected character in an object key", index)
            index += 1
        key = text[start:index].rstrip(_WHITESPACE)
        if not key:
            raise JsvDecodeError("expected an object key", start)
        self.index = index
        return key

    def read_list(self, depth: int) -> list[object]:
        self.index += 1  # "["
        result: list[object] = []
        self.skip_whitespace()
        if self.peek() == "]":
            self.index += 1
            return result
        while True:
            self.skip_whitespace()
            result.append(self.read_value(depth + 1, ",]"))
            self.skip_whitespace()
            char = self.peek()
            if char == ",":
                self.index += 1
                continue
            if char == "]":
                self.index += 1
                return result
            raise JsvDecodeError("expected ',' or ']' in a list", self.index)

    def read_quoted(self) -> str:
        start = self.index
        text, length = self.text, self.length
        index = start + 1
        pieces: list[str] = []
        while True:
            end = text.find(_QUOTE, index)
            if end == -1:
                raise JsvDecodeError("unterminated quoted string", start)
            pieces.append(text[index:end])
            if end + 1 < length and text[end + 1] == _QUOTE:
                pieces.append(_QUOTE)
                index = end + 2
                continue
            self.index = end + 1
            return "".join(pieces)

    def read_bare(self, closers: str) -> str | None:
        start = self.index
        text, length = self.text, self.length
        index = start
        stops = closers or ",}]"
        while index < length and text[index] not in stops:
            index += 1
        if not closers and index < length:
            raise JsvDecodeError("unexpected character in a value", index)
        self.index = index
        value = text[start:index].rstrip(_WHITESPACE)
        return value if value else None
