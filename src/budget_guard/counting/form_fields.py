"""The fields the guard must read from a form: ``n``, and the ``model``.

Image edits and variations are uploads, and their ``n`` multiplies what a route charges per
image when the upstream reports no usage (and what strict mode holds): unread, ten images
would be charged as one. A ``multipart/form-data`` body is parsed with python-multipart, the
parser Starlette's own forms use (a boundary search over bytes: a 10 MiB upload in about
2 ms); only a short field named ``n`` is kept, file data passes by. An
``application/x-www-form-urlencoded`` body, which the same servers read as a form too, is
read with the standard library. The ``model`` is read because a fine-tuned one is an object
that must be the calling company's (an upstream such as LiteLLM reads a form on any route).

As with JSON, what the guard cannot read as every upstream will is refused: a body that is
not whole multipart, ``n`` twice, an ``n`` that is not a plain integer, a charset other than
UTF-8 (Starlette decodes field names with it: ``name="+AG4-"`` is ``n`` in UTF-7), a field
name with a backslash escape or a ``name*`` (parsers disagree on both), a part with two
``Content-Disposition`` headers, and more than ``MAX_FIELDS`` fields (Starlette's own bound;
it also keeps a tenant's body of a million empty parts from holding a counting thread).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from budget_guard.counting.errors import InvalidRequestBody
from budget_guard.counting.key_case import refuse_other_variant
from budget_guard.counting.upstream_controls import refuse_upstream_controls

MAX_FIELD_BYTES = 32
"""An ``n`` longer than this is no count of images."""
MAX_MODEL_BYTES = 256
"""A model name longer than this is no model's."""
MAX_FIELDS = 1000
"""Fields and files in one form, as Starlette's ``Request.form()`` allows by default."""
_INTEGER = re.compile(rb"[0-9]+")
_OUTPUTS = b"n"
_MODEL = b"model"
_KEPT = {_OUTPUTS: MAX_FIELD_BYTES, _MODEL: MAX_MODEL_BYTES}
_MULTIPART = b"multipart/form-data"
_URLENCODED = b"application/x-www-form-urlencoded"
_CHARSETS = frozenset({b"utf-8", b"utf8", b"us-ascii", b"ascii"})
_ESCAPED_NAME = re.compile(rb'(?:^|;)\s*name\s*=\s*"[^"]*\\', re.IGNORECASE)


def _bad_n() -> InvalidRequestBody:
    return InvalidRequestBody("Invalid 'n': expected a whole number of outputs, given once.", "n")


def is_form(content_type: str | None) -> bool:
    """Whether the request says it is a multipart or URL-encoded form (its media type, as
    Starlette tests it)."""
    return content_type is not None and parse_options_header(content_type)[0] in (
        _MULTIPART,
        _URLENCODED,
    )


def read_form(body: bytes, content_type: str) -> tuple[int | None, str | None]:
    """The form's ``n`` and ``model`` (each None when absent); raises ``InvalidRequestBody``."""
    media_type, options = parse_options_header(content_type)
    charset = options.get(b"charset")
    if charset is not None and charset.lower() not in _CHARSETS:
        raise InvalidRequestBody("A form must be UTF-8: other charsets rename its fields.", None)
    values = _urlencoded(body) if media_type == _URLENCODED else _multipart(body, options)
    outputs = values.get(_OUTPUTS)
    if outputs is not None and not _INTEGER.fullmatch(outputs):
        raise _bad_n()
    model = values.get(_MODEL)
    return (
        None if outputs is None else int(outputs),
        None if model is None else model.decode("utf-8", "replace"),
    )


def _refuse_other_reading(name: str) -> None:
    """A field some upstream reads as one the guard keeps, or as an upstream's control."""
    refuse_other_variant(name)  # Go's form binders and ASP.NET ignore case
    if name.endswith("[]") and name[:-2].encode("utf-8") in _KEPT:
        raise _bad_field(name[:-2].encode("utf-8"))  # LiteLLM reads model[] as model
    refuse_upstream_controls((name,))


def _bad_field(name: bytes) -> InvalidRequestBody:
    if name == _OUTPUTS:
        return _bad_n()
    return InvalidRequestBody("Invalid 'model': expected one model name, given once.", "model")


def _urlencoded(body: bytes) -> dict[bytes, bytes]:
    try:
        fields = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestBody(
            "We could not read the form in the body of your request.", None
        ) from None
    values: dict[bytes, bytes] = {}
    for name, value in fields:
        key = name.encode("utf-8")
        bound = _KEPT.get(key)
        if bound is None:
            _refuse_other_reading(name)
            continue
        encoded = value.encode("utf-8")
        if key in values or len(encoded) > bound:
            raise _bad_field(key)
        values[key] = encoded
    return values


def _multipart(body: bytes, options: dict[bytes, bytes]) -> dict[bytes, bytes]:
    boundary = options.get(b"boundary")
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
    return reader.values


class _Fields:
    """python-multipart's callbacks, keeping the values of the fields ``n`` and ``model``."""

    __slots__ = ("_field", "_field_value", "_headers", "_kept", "_parts", "complete", "values")

    def __init__(self) -> None:
        self.complete = False
        self.values: dict[bytes, bytes] = {}
        self._headers: dict[bytes, bytes] = {}
        self._field = self._field_value = b""  # the part header being read
        self._kept: bytes | None = None  # the kept field whose value is being read
        self._parts = 0

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
        self._parts += 1
        if self._parts > MAX_FIELDS:
            raise InvalidRequestBody(f"A form may have at most {MAX_FIELDS} fields.", None)
        self._headers = {}
        self._field = self._field_value = b""
        self._kept = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._field_value += data[start:end]

    def _header_end(self) -> None:
        name = self._field.lower()
        if name == b"content-disposition" and name in self._headers:
            # Parsers disagree on which of two counts (Starlette the last, Go the first).
            raise InvalidRequestBody(
                "A multipart part may have one Content-Disposition header.", None
            )
        self._headers[name] = self._field_value
        self._field = self._field_value = b""

    def _headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"")
        if b"name*" in disposition.lower() or _ESCAPED_NAME.search(disposition):
            # RFC 7578 forbids the extended name (python-multipart ignores it), and parsers
            # disagree on escapes in a quoted name (Go reads name="\n" as n): either could
            # hide an ``n`` from this parser.
            raise InvalidRequestBody("A multipart field name may not use name* or escapes.", None)
        name = parse_options_header(disposition)[1].get(b"name")
        if name not in _KEPT:
            if name:
                _refuse_other_reading(name.decode("utf-8", "replace"))
            return
        if name in self.values:
            raise _bad_field(name)
        self.values[name] = b""
        self._kept = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        kept = self._kept
        if kept is None:
            return
        value = self.values[kept] + data[start:end]
        if len(value) > _KEPT[kept]:
            raise _bad_field(kept)
        self.values[kept] = value

    def _end(self) -> None:
        self.complete = True
