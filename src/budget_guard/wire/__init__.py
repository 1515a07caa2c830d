"""The framework-free wire layer of ``POST /assistant/ai-chat/usage``.

ServiceStack-compatible formats (JSON via orjson, and JSV), content negotiation, member-name
casing, the response DTOs and request binding with the contract's error table. Nothing here
knows about Starlette: a route feeds it strings and bytes and sends back the bytes it returns.
"""

from budget_guard.wire.binding import (
    COMPANY_ID,
    INT64_MAX,
    INT64_MIN,
    TOKENS_USED,
    RecordRequest,
    bind_record_request,
)
from budget_guard.wire.dto import (
    DataMap,
    FieldError,
    ResponseStatus,
    encode_dto,
    error_body,
    usage_body,
    wire_name,
)
from budget_guard.wire.errors import (
    FORBIDDEN,
    GREATER_THAN_OR_EQUAL,
    IDEMPOTENCY_KEY_REUSED,
    IDEMPOTENCY_KEYS_EXHAUSTED,
    METHOD_NOT_ALLOWED,
    NOT_EMPTY,
    REQUEST_ENTITY_TOO_LARGE,
    SERIALIZATION_EXCEPTION,
    SERVICE_UNAVAILABLE,
    STANDARD_ERROR_CODES,
    UNAUTHORIZED,
    UNPROCESSABLE_ENTITY,
    UNSUPPORTED_MEDIA_TYPE,
    BindingError,
    error_status,
)
from budget_guard.wire.jsoncodec import JsonDecodeError, dumps_json, loads_json
from budget_guard.wire.jsv import JsvDecodeError, dumps, loads
from budget_guard.wire.negotiation import (
    JSON_MEDIA_TYPES,
    JSV_MEDIA_TYPES,
    TextCase,
    WireFormat,
    media_type,
    negotiate,
    text_case,
)

__all__ = [
    "COMPANY_ID",
    "FORBIDDEN",
    "GREATER_THAN_OR_EQUAL",
    "IDEMPOTENCY_KEYS_EXHAUSTED",
    "IDEMPOTENCY_KEY_REUSED",
    "INT64_MAX",
    "INT64_MIN",
    "JSON_MEDIA_TYPES",
    "JSV_MEDIA_TYPES",
    "METHOD_NOT_ALLOWED",
    "NOT_EMPTY",
    "REQUEST_ENTITY_TOO_LARGE",
    "SERIALIZATION_EXCEPTION",
    "SERVICE_UNAVAILABLE",
    "STANDARD_ERROR_CODES",
    "TOKENS_USED",
    "UNAUTHORIZED",
    "UNPROCESSABLE_ENTITY",
    "UNSUPPORTED_MEDIA_TYPE",
    "BindingError",
    "DataMap",
    "FieldError",
    "JsonDecodeError",
    "JsvDecodeError",
    "RecordRequest",
    "ResponseStatus",
    "TextCase",
    "WireFormat",
    "bind_record_request",
    "dumps",
    "dumps_json",
    "encode_dto",
    "error_body",
    "error_status",
    "loads",
    "loads_json",
    "media_type",
    "negotiate",
    "text_case",
    "usage_body",
    "wire_name",
]
