"""Binding the admin limit requests (``SetAiChatLimit``, ``ClearAiChatLimit``,
``GetAiChatLimit``) with the usage request's rules: query wins over body, names match
case-insensitively, JSON / JSV / form bodies, every field error named in ``ResponseStatus``.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from budget_guard.budget.window import INT32_MAX
from budget_guard.wire.binding import (
    COMPANY_ID,
    _as_int64,
    _bind_company_id,
    _body_members,
    _failure,
    _invalid,
    _is_absent,
    _prefer,
)
from budget_guard.wire.dto import FieldError
from budget_guard.wire.errors import NOT_EMPTY

__all__ = ["INCLUSIVE_BETWEEN", "TOKEN_LIMIT", "LimitRequest", "bind_limit_request"]

TOKEN_LIMIT = "TokenLimit"
INCLUSIVE_BETWEEN = "InclusiveBetween"
_FIELDS = {
    "companyid": COMPANY_ID,
    "company_id": COMPANY_ID,
    "tokenlimit": TOKEN_LIMIT,
    "token_limit": TOKEN_LIMIT,
}


@dataclass(frozen=True)
class LimitRequest:
    company_id: UUID | None
    token_limit: int | None


def bind_limit_request(
    *,
    query: list[tuple[str, str]],
    body: bytes,
    content_type: str | None,
    require_company: bool,
    require_limit: bool,
) -> LimitRequest:
    """Bind or raise :class:`~budget_guard.wire.errors.BindingError` (400 / 415). A limit is
    an Int32 like ``TokenLimit`` in the usage response: 0 to 2147483647."""
    from_query = _gather(query)
    from_body = _gather(_body_members(body, content_type))
    chosen = {
        name: _prefer(from_query.get(name, []), from_body.get(name, []))
        for name in (COMPANY_ID, TOKEN_LIMIT)
    }
    errors: list[FieldError] = []
    company_id = _bind_company_id(chosen[COMPANY_ID], errors)
    limit = _bind_limit(chosen[TOKEN_LIMIT], errors) if require_limit else None
    if require_company and company_id is None and not errors:
        errors.append(FieldError(NOT_EMPTY, COMPANY_ID, "'Company Id' must not be empty."))
    if require_limit and limit is None and not errors:
        errors.append(FieldError(NOT_EMPTY, TOKEN_LIMIT, "'Token Limit' must not be empty."))
    if errors:
        raise _failure(errors)
    return LimitRequest(company_id, limit)


def _gather(members: object) -> dict[str, list[object]]:
    found: dict[str, list[object]] = {}
    for name, value in members:  # type: ignore[attr-defined]
        field_name = _FIELDS.get(str(name).lower())
        if field_name is not None:
            found.setdefault(field_name, []).append(value)
    return found


def _bind_limit(values: list[object], errors: list[FieldError]) -> int | None:
    present = [value for value in values if not _is_absent(value)]
    if not present:
        return None
    number = _as_int64(present[0]) if len(values) == 1 else None
    if number is None:
        errors.append(_invalid(TOKEN_LIMIT, values))
        return None
    if not 0 <= number <= INT32_MAX:
        errors.append(
            FieldError(
                INCLUSIVE_BETWEEN,
                TOKEN_LIMIT,
                f"'Token Limit' must be between 0 and {INT32_MAX}. You entered {number}.",
            )
        )
        return None
    return number
