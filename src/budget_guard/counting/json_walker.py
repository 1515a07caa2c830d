"""An incremental JSON reader that walks only the parts of a document its router asks for.

A response body is metered as it passes, so it is never held whole: bytes are decoded to text
chunk by chunk, and the walker keeps only the few characters a chunk boundary can split (an
escape sequence, a surrogate pair). For every value it reaches, it asks the router what to do:

- a container is *walked* (its members are visited), *skipped* (its text is jumped over, one
  regular-expression match per run of characters that are not brackets or quotes: an
  embeddings vector is a single match), or *captured* (its raw text is handed to a sink as it
  passes, for the router to keep or drop);
- a string is skipped, or its decoded text is handed to a sink piece by piece, so a long answer
  is never held here either;
- numbers, booleans and null are skipped.

That is the whole bound: what the router's sinks choose to keep, plus a short key. The walker
is lenient (a missing comma is not an error) but stops reading at anything that cannot be
JSON, and says whether the document ended.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Hashable
from typing import Protocol, cast

PathKey = tuple[Hashable, ...]

WALK = "walk"
SKIP = "skip"

_MAX_KEY_CHARS = 256
_WHITESPACE = re.compile(r"[ \t\r\n]*")
_HIGH_SURROGATE = re.compile(r"[dD][89abAB][0-9a-fA-F]{2}")
_SCALAR = re.compile(r'[^,:\[\]{}"\s]*')

# States between two chunks.
_VALUE, _KEY, _COLON, _AFTER, _STRING, _SKIPPING, _SCALAR_TAIL, _DONE, _FAILED = range(9)


class Sink(Protocol):
    """Where a string's decoded text, or a captured container's raw text, goes as it passes."""

    def write(self, text: str) -> None: ...

    def close(self) -> None: ...


class Router(Protocol):
    """Decides, by a value's path (object keys and array indices from the root), what to read."""

    def container(self, path: PathKey, is_object: bool) -> str | Sink:
        """``WALK``, ``SKIP``, or a sink that receives the container's raw text."""
        ...

    def string(self, path: PathKey) -> Sink | None:
        """A sink for the string's decoded text, or None to skip it."""
        ...

    def closed(self, path: PathKey) -> None:
        """A walked container ended."""
        ...


class ShortValue:
    """A string, or a container's raw text, read whole if it is short; None if it is not."""

    __slots__ = ("_limit", "_on_close", "_pieces", "_size")

    def __init__(self, limit: int, on_close: Callable[[str | None], None]) -> None:
        self._limit, self._on_close = limit, on_close
        self._pieces: list[str] = []
        self._size = 0

    def write(self, text: str) -> None:
        self._size += len(text)
        if self._size <= self._limit:
            self._pieces.append(text)
        else:
            self._pieces.clear()

    def close(self) -> None:
        self._on_close("".join(self._pieces) if self._size <= self._limit else None)


class _KeySink:
    """An object key: short, or not one any router asks about."""

    __slots__ = ("overlong", "pieces", "size")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.size = 0
        self.overlong = False

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > _MAX_KEY_CHARS:
            self.overlong = True
            self.pieces.clear()
        elif not self.overlong:
            self.pieces.append(text)

    def close(self) -> None:
        pass

    def value(self) -> str | None:
        return None if self.overlong else "".join(self.pieces)


class JsonWalker:
    __slots__ = (
        "_capture",
        "_decoder",
        "_depth",
        "_in_string",
        "_is_object",
        "_key",
        "_path",
        "_rest",
        "_router",
        "_sink",
        "_state",
    )

    def __init__(self, router: Router) -> None:
        self._router = router
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._rest = ""  # text a chunk boundary split: part of an escape sequence
        self._state = _VALUE
        self._is_object: list[bool] = []  # the walked containers, innermost last
        self._path: list[Hashable] = []  # the member being read in each of them
        self._key: _KeySink | None = None  # the key being read, while in a key
        self._sink: Sink | None = None  # where the string being read goes
        self._capture: Sink | None = None  # where the container being skipped goes
        self._depth = 0  # nesting inside the container being skipped
        self._in_string = False  # inside a string of the container being skipped

    @property
    def complete(self) -> bool:
        """The document's root value ended."""
        return self._state == _DONE

    def feed(self, chunk: bytes) -> None:
        if self._state >= _DONE:
            return
        text = self._decoder.decode(chunk)
        if self._rest:
            text = self._rest + text
            self._rest = ""
        try:
            self._walk(text)
        except ValueError:  # an escape JSON does not have: nothing after it can be trusted
            self._state = _FAILED

    def close(self) -> None:
        """End of the body: a string or container still open is not whole, and is dropped."""
        if self._state < _DONE:
            self._state = _FAILED

    def _walk(self, text: str) -> None:
        position, end = 0, len(text)
        while position < end:
            state = self._state
            if state == _STRING:
                position = self._string(text, position)
                if self._state == _STRING:  # the buffer ended inside it
                    self._rest = text[position:]
                    return
            elif state == _SKIPPING:
                position = self._skip(text, position)
            elif state == _SCALAR_TAIL:
                position = _SCALAR.match(text, position).end()
                if position < end:
                    self._state = _AFTER
            else:
                position = _WHITESPACE.match(text, position).end()
                if position < end:
                    position = self._token(text, position)
            if self._state >= _DONE:
                return

    def _token(self, text: str, position: int) -> int:
        char = text[position]
        state = self._state
        if state == _VALUE:
            if char in "{[":
                self._open(char == "{")
            elif not self._is_object:
                self._state = _FAILED  # the root is not an object or array
            elif char == '"':
                self._sink = self._router.string(tuple(self._path))
                self._state = _STRING
            elif char == "]" and not self._is_object[-1]:
                self._close()  # an empty array
            else:
                self._state = _SCALAR_TAIL
            return position + 1
        if state == _KEY:
            if char == '"':
                self._key = _KeySink()
                self._sink = self._key
                self._state = _STRING
            elif char == "}":
                self._close()
            else:
                self._state = _FAILED
            return position + 1
        if state == _COLON:
            self._state = _VALUE if char == ":" else _FAILED
            return position + 1
        # _AFTER a value
        if char == ",":
            if self._is_object[-1]:
                self._state = _KEY
            else:
                self._path[-1] = cast(int, self._path[-1]) + 1  # an array's member: its index
                self._state = _VALUE
        elif char in "}]":
            self._close()
        else:
            self._state = _FAILED
        return position + 1

    def _open(self, is_object: bool) -> None:
        decision = self._router.container(tuple(self._path), is_object)
        if decision == WALK:
            self._is_object.append(is_object)
            self._path.append(None if is_object else 0)
            self._state = _KEY if is_object else _VALUE
            return
        self._depth = 1
        self._in_string = False
        if isinstance(decision, str):
            self._capture = None
        else:
            self._capture = decision
            decision.write("{" if is_object else "[")
        self._state = _SKIPPING

    def _close(self) -> None:
        self._is_object.pop()
        self._path.pop()
        self._router.closed(tuple(self._path))
        self._state = _AFTER if self._is_object else _DONE

    def _string(self, text: str, position: int) -> int:
        """Read a string's text up to its closing quote or the end of the buffer.

        A string that is read and ends in this buffer is decoded by the json module's C
        scanner in one pass (escapes and all); one that goes on is decoded up to where a chunk
        boundary cannot split an escape, and the rest waits. One that is skipped is only
        searched for its closing quote."""
        sink = self._sink
        if sink is None:
            quote = _closing_quote(text, position)
            if quote < 0:
                return len(text) - (1 if _odd_backslashes_before(text, position, len(text)) else 0)
            return self._string_ended(quote + 1)
        try:
            value, after = _scanstring(text, position, False)
        except ValueError as error:
            cut = getattr(error, "pos", 0) >= len(text) - 6  # an escape the buffer's end split
            if not (cut or getattr(error, "msg", "").startswith("Unterminated string")):
                raise  # an escape JSON does not have
        else:
            if value:
                sink.write(value)
            sink.close()
            return self._string_ended(after)
        end = _whole_escapes_end(text, position)
        if end > position:
            piece = text[position:end]
            if "\\" in piece:
                piece = _scanstring(f'"{piece}"', 1, False)[0]
            sink.write(piece)
        return end

    def _string_ended(self, after: int) -> int:
        self._sink = None
        key = self._key
        if key is not None:
            self._key = None
            self._path[-1] = key.value()
            self._state = _COLON
        else:
            self._state = _AFTER if self._is_object else _DONE
        return after

    def _skip(self, text: str, position: int) -> int:
        """Jump over the container being skipped, counting brackets outside its strings.

        Each kind of bracket is found with ``str.find`` (a memchr), and the next one of each is
        remembered, so a run of numbers or a base64 string costs one scan, not a step per
        character."""
        start, end = position, len(text)
        depth, in_string = self._depth, self._in_string
        upcoming = [_find(text, char, position, end) for char in _BRACKETS]
        while True:
            if in_string:
                quote = _closing_quote(text, position)
                if quote < 0:
                    position = end
                    break
                position = quote + 1
                in_string = False
                for index, found in enumerate(upcoming):
                    if found < position:  # a bracket inside the string: not one
                        upcoming[index] = _find(text, _BRACKETS[index], position, end)
            nearest = min(upcoming)
            if nearest >= end:
                position = end
                break
            char = text[nearest]
            position = nearest + 1
            if char == '"':
                in_string = True
                continue
            index = _BRACKETS.index(char)
            upcoming[index] = _find(text, char, position, end)
            depth += 1 if char in "[{" else -1
            if depth == 0:
                break
        capture = self._capture
        written = position
        if in_string and _odd_backslashes_before(text, start, end):
            # The buffer ends on a backslash: the character it escapes comes next.
            self._rest = "\\"
            written = end - 1
        if capture is not None:
            capture.write(text[start:written])
        self._depth, self._in_string = depth, in_string
        if depth == 0:
            if capture is not None:
                self._capture = None
                capture.close()
            self._state = _AFTER if self._is_object else _DONE
        return position


_BRACKETS = '"[]{}'
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]


def _find(text: str, char: str, start: int, end: int) -> int:
    found = text.find(char, start)
    return end if found < 0 else found


def _odd_backslashes_before(text: str, start: int, position: int) -> bool:
    run = position
    while run > start and text[run - 1] == "\\":
        run -= 1
    return (position - run) % 2 == 1


def _closing_quote(text: str, position: int) -> int:
    """The quote that ends the string whose text starts at ``position``, or -1 if not here."""
    quote = text.find('"', position)
    while quote >= 0 and _odd_backslashes_before(text, position, quote):
        quote = text.find('"', quote + 1)
    return quote


def _whole_escapes_end(text: str, start: int) -> int:
    """How much of an unfinished string's text can be decoded now: not an escape sequence cut
    by the buffer's end, nor a surrogate pair's first half (its second is in the next chunk)."""
    end = len(text)
    cut = end
    backslash = text.rfind("\\", max(start, end - 6), end)
    if backslash >= 0 and not _odd_backslashes_before(text, start, backslash):
        if text.startswith("u", backslash + 1):
            if end - backslash < 6 or _HIGH_SURROGATE.match(text, backslash + 2):
                cut = backslash
        elif end - backslash < 2:
            cut = backslash
    if cut < end:  # an escape waits: so does a pair's first half just before it
        before = cut - 6
        if (
            before >= start
            and text.startswith("\\u", before)
            and _HIGH_SURROGATE.match(text, before + 2)
            and not _odd_backslashes_before(text, start, before)
        ):
            cut = before
    return cut
