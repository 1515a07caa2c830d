"""An incremental Server-Sent Events decoder that accepts the byte stream split anywhere.

Lines end in LF, CR or CRLF (a CRLF split across two chunks is still one line end); an event is
dispatched at the blank line that ends it, its ``data`` lines joined by LF, as the WHATWG
specification says. Bytes are split on line ends before any decoding, so a chunk boundary inside
a UTF-8 character never matters. A line that grows past ``max_line_bytes`` is dropped rather than
buffered without bound. Only ``data`` matters here: every API counted puts its event type inside
the JSON payload too.
"""

from __future__ import annotations

from collections.abc import Callable

_MAX_LINE_BYTES = 8 * 1024 * 1024


class SseDecoder:
    __slots__ = (
        "_after_cr",
        "_data",
        "_data_bytes",
        "_discarding",
        "_max_line_bytes",
        "_on_data",
        "_partial",
        "_partial_bytes",
    )

    def __init__(
        self, on_data: Callable[[bytes], None], *, max_line_bytes: int = _MAX_LINE_BYTES
    ) -> None:
        self._on_data = on_data
        self._max_line_bytes = max_line_bytes
        self._partial: list[bytes] = []  # pieces of a line whose end has not arrived yet
        self._partial_bytes = 0
        self._discarding = False  # inside an over-long line: drop it up to its end
        self._after_cr = False  # previous chunk ended in CR: a leading LF belongs to it
        self._data: list[bytes] = []
        self._data_bytes = 0

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return
        if b"\n" not in chunk and b"\r" not in chunk:
            self._keep_partial(chunk)
            return
        if self._partial:
            self._partial.append(chunk)
            chunk = b"".join(self._partial)
            self._partial.clear()
            self._partial_bytes = 0
        discarding = self._discarding
        self._discarding = False
        lines = chunk.splitlines()
        last = chunk[-1:]
        if last == b"\r":
            self._after_cr = True
        elif last != b"\n":
            self._keep_partial(lines.pop())
        for line in lines:
            if discarding:  # the tail of a line already dropped
                discarding = False
                continue
            self._line(line)

    def close(self) -> None:
        """End of stream: a last event without its blank line is still delivered."""
        if self._partial and not self._discarding:
            self._line(b"".join(self._partial))
        self._partial.clear()
        self._line(b"")

    def _keep_partial(self, piece: bytes) -> None:
        if self._discarding:
            return
        self._partial_bytes += len(piece)
        if self._partial_bytes > self._max_line_bytes:
            self._partial.clear()
            self._partial_bytes = 0
            self._discarding = True
        else:
            self._partial.append(piece)

    def _line(self, line: bytes) -> None:
        if not line:
            if self._data:
                payload = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                self._data = []
                self._data_bytes = 0
                self._on_data(payload)
            return
        if not line.startswith(b"data"):
            return  # comments (":"), event, id, retry: nothing to count
        field, colon, value = line.partition(b":")
        if field != b"data":
            return
        if colon and value[:1] == b" ":
            value = value[1:]
        self._data_bytes += len(value)
        if self._data_bytes > self._max_line_bytes:
            self._data = []
            self._data_bytes = 0
            return
        self._data.append(value)
