"""Error codes of the contract's error table and the exception that carries a 4xx to the route.

The codes are ServiceStack's own (the exception type or validator name), so clients that switch
on ``ResponseStatus.ErrorCode`` keep working against us.
"""

from __future__ import annotations

from budget_guard.wire.dto import ResponseStatus

__all__ = [
    "BAD_REQUEST",
    "FORBIDDEN",
    "GREATER_THAN_OR_EQUAL",
    "IDEMPOTENCY_KEYS_EXHAUSTED",
    "IDEMPOTENCY_KEY_REUSED",
    "METHOD_NOT_ALLOWED",
    "NOT_EMPTY",
    "REQUEST_ENTITY_TOO_LARGE",
    "SERIALIZATION_EXCEPTION",
    "SERVICE_UNAVAILABLE",
    "STANDARD_ERROR_CODES",
    "UNAUTHORIZED",
    "UNPROCESSABLE_ENTITY",
    "UNSUPPORTED_MEDIA_TYPE",
    "BindingError",
    "error_status",
]

UNAUTHORIZED = "Unauthorized"
FORBIDDEN = "Forbidden"
NOT_EMPTY = "NotEmpty"
GREATER_THAN_OR_EQUAL = "GreaterThanOrEqual"
SERIALIZATION_EXCEPTION = "SerializationException"
REQUEST_ENTITY_TOO_LARGE = "RequestEntityTooLarge"
UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"
METHOD_NOT_ALLOWED = "MethodNotAllowed"
SERVICE_UNAVAILABLE = "ServiceUnavailable"
BAD_REQUEST = "BadRequest"
UNPROCESSABLE_ENTITY = "UnprocessableEntity"
#: Suggested code for a reused Idempotency-Key with a different body (422); the contract
#: leaves the code open, this names the cause.
IDEMPOTENCY_KEY_REUSED = "IdempotencyKeyReused"
#: 429 for a new Idempotency-Key from a company that already holds its bound of live keys
#: (``store.max_idempotency_keys_per_company``); the contract has no code for it.
IDEMPOTENCY_KEYS_EXHAUSTED = "IdempotencyKeysExhausted"

#: The top-level ErrorCode the contract gives each non-validation status.
STANDARD_ERROR_CODES: dict[int, str] = {
    400: BAD_REQUEST,
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    405: METHOD_NOT_ALLOWED,
    413: REQUEST_ENTITY_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
    422: UNPROCESSABLE_ENTITY,
    503: SERVICE_UNAVAILABLE,
}


def error_status(status_code: int, error_code: str, message: str) -> ResponseStatus:
    """A ``ResponseStatus`` with no field errors, for 401/403/405/413/415/422/503 and the like.

    ``status_code`` is checked to be an error status so a success can never be dressed up as an
    error body by mistake; an empty ``error_code`` falls back to the contract's code for it.
    """
    if not 400 <= status_code <= 599:
        raise ValueError(f"{status_code} is not an error status")
    code = error_code or STANDARD_ERROR_CODES.get(status_code, "Error")
    return ResponseStatus(error_code=code, message=message, errors=[])


class BindingError(Exception):
    """The request cannot be bound to ``RecordAiChatUsage``; answer ``status_code`` with it."""

    def __init__(self, status_code: int, response_status: ResponseStatus) -> None:
        super().__init__(f"{status_code} {response_status.error_code}: {response_status.message}")
        self.status_code = status_code
        self.response_status = response_status
