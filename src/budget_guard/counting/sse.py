"""An incremental Server-Sent Events decoder that accepts the byte stream split anywhere.

Lines end in LF, CR or CRLF (a CRLF split across two chunks is still one line end); an event is
dispatched at the blank line that ends it, its ``data`` lines joined by LF, as the WHATWG
specification says. Bytes are split on line ends before any decoding, so a chunk boundary inside
a UTF-8 character never matters. Only ``data`` matters here: every API counted puts its event
type inside the JSON payload too.

Memory is bounded by ``max_event_bytes``: an event whose data grows past it is not buffered.
With a ``large`` sink, its data is handed over as it passes (what was buffered, then each
further piece, LF between data lines) and the sink is told where it ends; without one it is
dropped. Any other line past the bound (a comment, say) is dropped up to its end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

MAX_EVENT_BYTES = 1 << 20


class LargeEvent(Protocol):
    """Receives an event too large to buffer, piece by piece."""

    def start(self) -> None: ...

    def write(self, data: bytes) -> None: ...

    def end(self) -> None: ...


# What the line being read is, while its end has not arrived.
_BUFFERING, _DISCARDING, _STREAMING = range(3)


class SseDecoder:
    __slots__ = (
        "_after_cr",
        "_data",
        "_data_bytes",
        "_large",
        "_line_mode",
        "_max_event_bytes",
        "_need_lf",
        "_on_data",
        "_partial",
        "_partial_bytes",
        "_streaming_event",
    )

    def __init__(
        self,
        on_data: Callable[[bytes], None],
        *,
        max_event_bytes: int = MAX_EVENT_BYTES,
        large: LargeEvent | None = None,
    ) -> None:
        self._on_data = on_data
        self._max_event_bytes = max_event_bytes
        self._large = large
        self._partial: list[bytes] = []  # pieces of a line whose end has not arrived yet
        self._partial_bytes = 0
        self._line_mode = _BUFFERING
        self._after_cr = False  # previous chunk ended in CR: a leading LF belongs to it
        self._data: list[bytes] = []
        self._data_bytes = 0
        self._streaming_event = False  # this event's data goes to ``large`` as it passes
        self._need_lf = False  # a data line of it was handed over: the next one follows an LF

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        # (``find``, not ``in``: a bytes ``in`` first tries its operand as an integer and
        # pays for the exception, a third of this check's cost.)
        if (
            chunk[-2:] == b"\n\n"
            and chunk[:6] == b"data: "
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk.find(b"\r") < 0
            and not self._partial
            and not self._data
            and not self._after_cr
            and not self._streaming_event
            and self._line_mode == _BUFFERING
            and len(chunk) - 8 <= self._max_event_bytes
        ):
            # One whole event of one data line, nothing pending: how nearly every chunk of
            # an OpenAI-style stream arrives. Dispatched as the general path below would.
            self._on_data(chunk[6:-2])
            return
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return
        if chunk.find(b"\n") < 0 and chunk.find(b"\r") < 0:
            self._keep_partial(chunk)
            return
        if self._partial:
            self._partial.append(chunk)
            chunk = b"".join(self._partial)
            self._partial.clear()
            self._partial_bytes = 0
        mode = self._line_mode
        self._line_mode = _BUFFERING
        lines = chunk.splitlines()
        last = chunk[-1:]
        tail = None
        if last == b"\r":
            self._after_cr = True
        elif last != b"\n":
            tail = lines.pop()
        for index, line in enumerate(lines):
            if index == 0 and mode != _BUFFERING:  # the end of a line already let go
                if mode == _STREAMING and self._large is not None:
                    self._large.write(line)
                continue
            self._line(line)
        if tail is not None:
            self._keep_partial(tail)

    def close(self) -> None:
        """End of stream: a last event without its blank line is still delivered."""
        if self._partial and self._line_mode == _BUFFERING:
            self._line(b"".join(self._partial))
        self._partial.clear()
        self._line_mode = _BUFFERING
        self._line(b"")

    def _keep_partial(self, piece: bytes) -> None:
        mode = self._line_mode
        if mode == _STREAMING:
            if self._large is not None:
                self._large.write(piece)
            return
        if mode == _DISCARDING:
            return
        self._partial.append(piece)
        self._partial_bytes += len(piece)
        if self._partial_bytes + self._data_bytes <= self._max_event_bytes:
            return
        pieces = self._partial
        self._partial = []
        self._partial_bytes = 0
        skip = _data_prefix(pieces)
        if skip is not None and (self._streaming_event or self._begin_large()):
            self._stream_pieces(pieces, skip)  # not joined: that would copy the bound's worth
            self._line_mode = _STREAMING
        else:
            self._line_mode = _DISCARDING

    def _line(self, line: bytes) -> None:
        if not line:
            if self._streaming_event:
                self._streaming_event = self._need_lf = False
                if self._large is not None:
                    self._large.end()
            elif self._data:
                payload = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                self._data = []
                self._data_bytes = 0
                self._on_data(payload)
            return
        value = _data_value(line)
        if value is None:
            return  # comments (":"), event, id, retry: nothing to count
        if self._streaming_event:
            self._stream(value)
            return
        self._data_bytes += len(value)
        if self._data_bytes > self._max_event_bytes:
            if self._begin_large():
                self._stream(value)
            else:
                self._data = []
                self._data_bytes = 0
            return
        self._data.append(value)

    def _begin_large(self) -> bool:
        """Hand this event over as it passes, starting with what was buffered; False (and the
        buffered data dropped) without a sink to take it."""
        buffered, self._data, self._data_bytes = self._data, [], 0
        large = self._large
        if large is None:
            return False
        self._streaming_event = True
        large.start()
        for value in buffered:
            self._stream(value)
        return True

    def _stream_pieces(self, pieces: list[bytes], skip: int) -> None:
        """The start of a data line, in pieces, its first ``skip`` bytes (``data: ``) left out."""
        self._stream(b"")
        large = self._large
        for piece in pieces:
            if skip >= len(piece):
                skip -= len(piece)
                continue
            if large is not None:
                large.write(piece[skip:] if skip else piece)
            skip = 0

    def _stream(self, value: bytes) -> None:
        """A data line (or its start) of the event being handed over."""
        large = self._large
        if large is None:
            return
        if self._need_lf:
            large.write(b"\n")
        self._need_lf = True
        large.write(value)


def _data_prefix(pieces: list[bytes]) -> int | None:
    """How many bytes of a line, given in pieces, come before a ``data`` value; None if it is
    another field. (The line is longer than any prefix: it is past the bound.)"""
    head = b""
    for piece in pieces:
        head += piece[: 6 - len(head)]
        if len(head) >= 6:
            break
    if head.startswith(b"data:"):
        return 6 if head[5:6] == b" " else 5
    return None


def _data_value(line: bytes) -> bytes | None:
    """A ``data`` line's value (without the one space after the colon); None for another."""
    if not line.startswith(b"data"):
        return None
    field, colon, value = line.partition(b":")
    if field != b"data":
        return None
    return value[1:] if colon and value[:1] == b" " else value
