"""The one field the guard must read from a ``multipart/form-data`` request: ``n``.

Image edits and variations are uploads, and their ``n`` multiplies what a route charges per
image when the upstream reports no usage (and what strict mode holds): unread, ten images
would be charged as one. The body is parsed with python-multipart, the parser Starlette's own
forms use (a boundary search over bytes: a 10 MiB upload in about 2 ms); only a short field
named ``n`` is kept, file data passes by. As with JSON, what the guard cannot read as the
upstream will is refused: a body that is not whole multipart, ``n`` twice, or an ``n`` that
is not a plain integer.
"""

from __future__ import annotations

import re

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from budget_guard.counting.errors import InvalidRequestBody

MAX_FIELD_BYTES = 32
"""An ``n`` longer than this is no count of images."""
_INTEGER = re.compile(rb"[0-9]+")
_OUTPUTS = b"n"


def is_form(content_type: str | None) -> bool:
    return content_type is not None and content_type.lower().lstrip().startswith(
        "multipart/form-data"
    )


def form_outputs(body: bytes, content_type: str) -> int | None:
    """The form's ``n``, or None when it has none; raises ``InvalidRequestBody``."""
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise InvalidRequestBody("A multipart/form-data request needs a boundary.", None)
    reader = _Fields()
    parser = MultipartParser(boundary, reader.callbacks())
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError:
        reader.complete = False
    if not reader.complete:
        raise InvalidRequestBody(
            "We could not parse the multipart/form-data body of your request.", None
        )
    value = reader.value
    if value is None:
        return None
    if not _INTEGER.fullmatch(value):
        raise InvalidRequestBody("Invalid 'n': expected a whole number of outputs.", "n")
    return int(value)


class _Fields:
    """python-multipart's callbacks, keeping the value of the one field ``n``."""

    __slots__ = ("_field", "_field_value", "_headers", "_in_n", "complete", "value")

    def __init__(self) -> None:
        self.complete = False
        self.value: bytes | None = None
        self._headers: dict[bytes, bytes] = {}
        self._field = self._field_value = b""  # the part header being read
        self._in_n = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._field = self._field_value = b""
        self._in_n = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._field_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._field_value
        self._field = self._field_value = b""

    def _headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"")
        if b"name*" in disposition.lower():
            # RFC 7578 forbids the extended name (python-multipart ignores it): a parser that
            # honoured it could read an ``n`` this one does not see.
            raise InvalidRequestBody(
                "A multipart field may not name itself with name* (RFC 7578).", None
            )
        name = parse_options_header(disposition)[1].get(b"name")
        if name != _OUTPUTS:
            return
        if self.value is not None:
            raise InvalidRequestBody(
                "The field 'n' appears more than once in your request: parsers disagree on "
                "which value counts.",
                "n",
            )
        self.value = b""
        self._in_n = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_n:
            return
        value = (self.value or b"") + data[start:end]
        if len(value) > MAX_FIELD_BYTES:
            raise InvalidRequestBody("Invalid 'n': expected a whole number of outputs.", "n")
        self.value = value

    def _end(self) -> None:
        self.complete = True
