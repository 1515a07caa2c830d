"""Binding a ``RecordAiChatUsage`` request from its query string and body, as ServiceStack does.

Rules, in the order they are applied:

1. A non-empty body must have a Content-Type we read: ``application/json`` / ``text/json``,
   ``text/jsv`` / ``application/jsv``, or ``application/x-www-form-urlencoded`` (ServiceStack
   binds form posts too; fields there count as body). A body without a Content-Type is read as
   JSON, ServiceStack's default. Anything else is 415 ``UnsupportedMediaType``. An empty or
   whitespace-only body is no body, whatever its Content-Type says.
2. A body that does not parse, is not valid UTF-8, or is not an object is 400
   ``SerializationException`` with no field.
3. Names match case-insensitively, and ``company_id`` / ``tokens_used`` are accepted too. The
   query string wins over the body, field by field. A field given more than once in one
   source (``?TokensUsed=1&TokensUsed=2``, or ``TokensUsed`` and ``tokensused`` in one body)
   is ambiguous and refused, as ServiceStack would fail to parse the joined ``"1,2"``.
4. A value that is not of the field's type is 400 ``SerializationException`` naming the field:
   ``TokensUsed`` must be a whole number within Int64 (a JSON number or a decimal string;
   ``1.5``, ``1e3``, ``true``, objects and numbers beyond Int64 are refused), ``CompanyId`` a
   Guid string with or without hyphens, optionally in braces or parentheses. ``null`` and
   ``""`` mean "not given".
5. Then validation: a missing ``TokensUsed`` is ``NotEmpty``, a negative one
   ``GreaterThanOrEqual``. Zero is valid.

Every field error is listed in ``ResponseStatus.Errors`` and the top-level ErrorCode and
Message repeat the first one. Nothing but :class:`BindingError` leaves this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl
from uuid import UUID

from budget_guard.wire import jsv
from budget_guard.wire.dto import FieldError, ResponseStatus
from budget_guard.wire.errors import (
    GREATER_THAN_OR_EQUAL,
    NOT_EMPTY,
    SERIALIZATION_EXCEPTION,
    UNSUPPORTED_MEDIA_TYPE,
    BindingError,
)
from budget_guard.wire.jsoncodec import JsonDecodeError, loads_json
from budget_guard.wire.negotiation import JSON_MEDIA_TYPES, JSV_MEDIA_TYPES, media_type

__all__ = [
    "COMPANY_ID",
    "FORM_MEDIA_TYPE",
    "INT64_MAX",
    "INT64_MIN",
    "REQUEST_NAME",
    "TOKENS_USED",
    "RecordRequest",
    "bind_record_request",
]

REQUEST_NAME = "RecordAiChatUsage"
COMPANY_ID = "CompanyId"
TOKENS_USED = "TokensUsed"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_FIELD_BY_NAME = {
    "companyid": COMPANY_ID,
    "company_id": COMPANY_ID,
    "tokensused": TOKENS_USED,
    "tokens_used": TOKENS_USED,
}
_WHITESPACE = " \t\r\n"
_BLANK_BYTES = b" \t\r\n"
_INTEGER = re.compile(r"[+-]?[0-9]+")
_GUID = re.compile(
    r"[0-9a-fA-F]{32}"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_MAX_FORM_FIELDS = 1000
_MAX_ECHO = 64


@dataclass(frozen=True)
class RecordRequest:
    """A bound request: ``company_id`` is ``None`` when the caller means their own company."""

    company_id: UUID | None
    tokens_used: int


def bind_record_request(
    *,
    query: list[tuple[str, str]],
    body: bytes,
    content_type: str | None,
    require_tokens: bool = True,
) -> RecordRequest:
    """Bind and validate a request or raise :class:`BindingError` (400 or 415).

    ``require_tokens=False`` is for the read-only GET: ``TokensUsed`` is then not bound at all
    (whatever is sent for it is ignored) and ``tokens_used`` is 0.
    """
    from_query = _gather(query)
    from_body = _gather(_body_members(body, content_type))
    wanted = (COMPANY_ID, TOKENS_USED) if require_tokens else (COMPANY_ID,)
    chosen = {name: _prefer(from_query.get(name, []), from_body.get(name, [])) for name in wanted}

    errors: list[FieldError] = []
    company_id = _bind_company_id(chosen[COMPANY_ID], errors)
    tokens_used = _bind_tokens_used(chosen[TOKENS_USED], errors) if require_tokens else 0
    if errors:
        raise _failure(errors)
    if tokens_used is None:
        raise _failure([FieldError(NOT_EMPTY, TOKENS_USED, "'Tokens Used' must not be empty.")])
    if tokens_used < 0:
        raise _failure(
            [
                FieldError(
                    GREATER_THAN_OR_EQUAL,
                    TOKENS_USED,
                    "'Tokens Used' must be greater than or equal to '0'.",
                )
            ]
        )
    return RecordRequest(company_id=company_id, tokens_used=tokens_used)


# --------------------------------------------------------------------------- sources


def _gather(members: Iterable[tuple[str, object]]) -> dict[str, list[object]]:
    """Values per known field, in order; unknown names are ignored like ServiceStack does."""
    found: dict[str, list[object]] = {}
    for name, value in members:
        field_name = _FIELD_BY_NAME.get(name.lower())
        if field_name is not None:
            found.setdefault(field_name, []).append(value)
    return found


def _prefer(from_query: list[object], from_body: list[object]) -> list[object]:
    """Query values win unless all blank: ``?CompanyId=`` does not erase the body's value."""
    if any(not _is_absent(value) for value in from_query):
        return from_query
    return from_body or from_query


def _body_members(body: bytes, content_type: str | None) -> list[tuple[str, object]]:
    if not body.strip(_BLANK_BYTES):
        return []
    kind = media_type(content_type)
    if kind in JSON_MEDIA_TYPES or not kind:
        return _object_members(_parse_json(body), kind or "application/json")
    if kind in JSV_MEDIA_TYPES:
        return _object_members(_parse_jsv(body), kind)
    if kind == FORM_MEDIA_TYPE:
        return _parse_form(body)
    raise BindingError(
        415,
        ResponseStatus(
            error_code=UNSUPPORTED_MEDIA_TYPE,
            message=(
                f"Content-Type '{_clip(kind)}' is not supported; "
                "send application/json, text/jsv or application/x-www-form-urlencoded"
            ),
        ),
    )


def _parse_json(body: bytes) -> object:
    try:
        return loads_json(body)
    except JsonDecodeError as error:
        raise _unreadable("application/json", str(error)) from None


def _parse_jsv(body: bytes) -> object:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _unreadable("text/jsv", "the body is not valid UTF-8") from None
    try:
        return jsv.loads(text)
    except jsv.JsvDecodeError as error:
        raise _unreadable("text/jsv", str(error)) from None


def _parse_form(body: bytes) -> list[tuple[str, object]]:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            errors="strict",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except ValueError as error:  # UnicodeDecodeError is a ValueError too
        reason = (
            "the body is not valid UTF-8"
            if isinstance(error, UnicodeDecodeError)
            else "too many form fields"
        )
        raise _unreadable(FORM_MEDIA_TYPE, reason) from None
    return list(pairs)


def _object_members(document: object, kind: str) -> list[tuple[str, object]]:
    if not isinstance(document, Mapping):
        raise _unreadable(kind, f"expected an object holding the {REQUEST_NAME} members")
    return [(str(name), value) for name, value in document.items()]


def _unreadable(kind: str, reason: str) -> BindingError:
    message = f"Could not deserialize '{kind}' request body into '{REQUEST_NAME}': {reason}"
    return BindingError(400, ResponseStatus(error_code=SERIALIZATION_EXCEPTION, message=message))


# --------------------------------------------------------------------------- fields


def _bind_company_id(values: list[object], errors: list[FieldError]) -> UUID | None:
    present = [value for value in values if not _is_absent(value)]
    if not present:
        return None
    if len(values) > 1:
        errors.append(_invalid(COMPANY_ID, values))
        return None
    value = present[0]
    if isinstance(value, str):
        text = value.strip(_WHITESPACE)
        if text[:1] + text[-1:] in ("{}", "()"):
            text = text[1:-1]
        if _GUID.fullmatch(text):
            return UUID(text)
    errors.append(_invalid(COMPANY_ID, values))
    return None


def _bind_tokens_used(values: list[object], errors: list[FieldError]) -> int | None:
    present = [value for value in values if not _is_absent(value)]
    if not present:
        return None
    if len(values) > 1:
        errors.append(_invalid(TOKENS_USED, values))
        return None
    number = _as_int64(present[0])
    if number is None:
        errors.append(_invalid(TOKENS_USED, values))
    return number


def _as_int64(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip(_WHITESPACE)
        if not _INTEGER.fullmatch(text) or len(text.lstrip("+-").lstrip("0")) > 19:
            return None
        number = int(text)
    else:  # floats (1.5, 1e3, and JSON integers too big for 64 bits), objects, lists
        return None
    return number if INT64_MIN <= number <= INT64_MAX else None


def _is_absent(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip(_WHITESPACE))


def _invalid(field_name: str, values: list[object]) -> FieldError:
    shown = ",".join(_describe(value) for value in values)
    return FieldError(
        SERIALIZATION_EXCEPTION,
        field_name,
        f"'{_clip(shown)}' is an Invalid value for '{field_name}'",
    )


def _describe(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "{…}"
    if isinstance(value, list):
        return "[…]"
    return type(value).__name__


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 1] + "…"


def _failure(errors: list[FieldError]) -> BindingError:
    first = errors[0]
    return BindingError(
        400,
        ResponseStatus(error_code=first.error_code, message=first.message, errors=errors),
    )
