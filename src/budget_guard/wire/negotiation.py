"""Which wire format and which name casing a response uses, decided the way ServiceStack does.

The format is chosen by ``?format=``, then the route's ``.json`` / ``.jsv`` suffix, then the
``Accept`` header, then the request's own Content-Type, then JSON. A source that names nothing
we speak (``?format=xml``, ``Accept: */*``, ``Accept: text/html``) does not decide and the next
one is asked, so a browser or a curl default still gets JSON rather than an error.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "JSON_MEDIA_TYPES",
    "JSV_MEDIA_TYPES",
    "TextCase",
    "WireFormat",
    "media_type",
    "negotiate",
    "text_case",
]


class WireFormat(Enum):
    """A response format; ``content_type`` is the header value to send with it."""

    JSON = "json"
    JSV = "jsv"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]


_CONTENT_TYPES = {
    WireFormat.JSON: "application/json; charset=utf-8",
    WireFormat.JSV: "text/jsv; charset=utf-8",
}

#: Media types read and written as JSON. ``text/json`` is what some older clients send.
JSON_MEDIA_TYPES = frozenset({"application/json", "text/json"})
#: Media types read and written as JSV; ServiceStack registers both spellings.
JSV_MEDIA_TYPES = frozenset({"text/jsv", "application/jsv"})


class TextCase(Enum):
    """Casing of member names in responses. ServiceStack on .NET Core defaults to camelCase."""

    CAMEL = "camel"
    PASCAL = "pascal"


def media_type(content_type: str | None) -> str:
    """The bare, lowercased media type of a Content-Type or Accept item (parameters dropped)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def _format_of_media_type(content_type: str | None) -> WireFormat | None:
    kind = media_type(content_type)
    if kind in JSON_MEDIA_TYPES:
        return WireFormat.JSON
    if kind in JSV_MEDIA_TYPES:
        return WireFormat.JSV
    return None


def _format_of_name(name: str | None) -> WireFormat | None:
    if not name:
        return None
    cleaned = name.strip().lower().lstrip(".")
    if cleaned == "json":
        return WireFormat.JSON
    if cleaned == "jsv":
        return WireFormat.JSV
    return None


def _format_of_accept(accept: str | None) -> WireFormat | None:
    """The most preferred format the Accept header names; earlier items win ties."""
    if not accept:
        return None
    best: WireFormat | None = None
    best_quality = 0.0
    for item in accept.split(","):
        chosen = _format_of_media_type(item)
        if chosen is None:
            continue
        quality = _quality(item)
        if quality > best_quality:
            best, best_quality = chosen, quality
    return best


def _quality(item: str) -> float:
    for parameter in item.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 1.0
            if quality != quality:  # NaN
                return 0.0
            return min(max(quality, 0.0), 1.0)
    return 1.0


def negotiate(
    *,
    query_format: str | None,
    path_suffix: str | None,
    accept: str | None,
    content_type: str | None,
) -> WireFormat:
    """Pick the response format: ``?format=``, suffix, ``Accept``, request Content-Type, JSON.

    ``path_suffix`` may be given with or without its dot (``".jsv"`` or ``"jsv"``). Items of
    ``Accept`` with ``q=0`` never choose a format.
    """
    return (
        _format_of_name(query_format)
        or _format_of_name(path_suffix)
        or _format_of_accept(accept)
        or _format_of_media_type(content_type)
        or WireFormat.JSON
    )


def text_case(jsconfig: str | None, default: TextCase) -> TextCase:
    """The casing a ``?jsconfig=`` value asks for, or ``default``.

    Reads it as ServiceStack's ``JsConfig.CreateScope`` does: comma-separated items, each
    ``name`` or ``name:value``, case-insensitive, later items overriding earlier ones.
    ``TextCase:PascalCase`` / ``tc:pc``, ``TextCase:CamelCase`` / ``tc:cc``,
    ``TextCase:Default`` / ``tc:d`` and the flags ``EmitPascalCaseNames`` / ``epcn`` and
    ``EmitCamelCaseNames`` / ``eccn`` are understood; snake case is not offered and, like any
    other option, is ignored.
    """
    if not jsconfig:
        return default
    chosen = default
    for item in jsconfig.split(","):
        name, separator, raw_value = item.partition(":")
        name = name.strip().lower()
        value = raw_value.strip().lower() if separator else None
        if name in ("tc", "textcase"):
            if value in ("pc", "pascalcase"):
                chosen = TextCase.PASCAL
            elif value in ("cc", "camelcase"):
                chosen = TextCase.CAMEL
            elif value in ("d", "default"):
                chosen = default
        elif name in ("epcn", "emitpascalcasenames", "eccn", "emitcamelcasenames"):
            if value in ("false", "0"):
                continue
            chosen = TextCase.PASCAL if name.startswith(("epcn", "emitpascal")) else TextCase.CAMEL
    return chosen
