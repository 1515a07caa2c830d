"""The OpenAPI 3.1 document of the usage endpoint: both operations, both DTOs, every error.

Response member names are written in the configured casing (what a client sees by default);
request member names in the DTO's own PascalCase, though any casing binds.
"""

from __future__ import annotations

from typing import Any

from budget_guard.budget.window import INT32_MAX
from budget_guard.endpoint.settings import EndpointSettings
from budget_guard.wire import INT64_MAX, TextCase, wire_name
from budget_guard.wire.dto import USAGE_MEMBERS
from budget_guard.wire.negotiation import WireFormat

__all__ = ["openapi_document"]

_REF = "#/components/schemas/"
_GUID_IN = (
    r"^\s*(\{|\()?([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
    r"-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(\}|\))?\s*$"
)
_MEDIA_TYPES = [
    WireFormat.JSON.content_type.split(";")[0],
    WireFormat.JSV.content_type.split(";")[0],
]

_ERRORS: dict[int, str] = {
    400: (
        "Validation or binding failed: `NotEmpty` / `GreaterThanOrEqual` / `SerializationException`"
        " naming `TokensUsed` or `CompanyId`, `SerializationException` for a body that does not"
        " parse, `NotEmpty` naming `CompanyId` for an admin caller that names no company,"
        " `OverflowException` naming `TokensUsed` when the total would pass Int64, `BadRequest`"
        " for a malformed `Idempotency-Key`."
    ),
    401: "`Unauthorized`: not authenticated.",
    403: "`Forbidden`: the caller's role does not allow acting for that company.",
    405: "`MethodNotAllowed`: another method on the route (see `Allow`).",
    408: "`RequestTimeout`: the body did not arrive in time; the connection is closed.",
    413: "`RequestEntityTooLarge`: the body is over the configured cap.",
    415: "`UnsupportedMediaType`: a body in a Content-Type that is not JSON, JSV or a form.",
    422: "`IdempotencyKeyReused`: the `Idempotency-Key` was used before for a different body.",
    429: (
        "`IdempotencyKeysExhausted`: the company already holds its bound of live"
        " `Idempotency-Key`s (`store.max_idempotency_keys_per_company`); nothing recorded."
        " `Retry-After` says when its oldest key lapses; keys it holds still replay."
    ),
    500: "`InternalServerError`: a bug; no detail is given.",
    503: (
        "`ServiceUnavailable`: the usage store is unavailable; retry with the same "
        "`Idempotency-Key` (a store that timed out may still apply the first attempt)."
    ),
}
_POST_ERRORS = (400, 401, 403, 405, 408, 413, 415, 422, 429, 500, 503)
_GET_ERRORS = (400, 401, 403, 405, 500, 503)


def openapi_document(settings: EndpointSettings) -> dict[str, Any]:
    case = settings.text_case

    def name(pascal: str) -> str:
        return wire_name(pascal, case)

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "budget-guard usage endpoint",
            "version": "1.0.0",
            "description": (
                "Per-company rolling-window AI chat token budget, wire-compatible with the "
                "ServiceStack service `RecordAiChatUsage`. JSON by default; JSV with "
                "`Accept: text/jsv`, `?format=jsv` or the `.jsv` suffix. Response names are "
                f"{'camelCase' if case is TextCase.CAMEL else 'PascalCase'} unless a request "
                "asks with `?jsconfig=TextCase:PascalCase` or `TextCase:CamelCase`."
            ),
        },
        "security": [{"bearerAuth": []}, {"apiKeyAuth": []}],
        "paths": {
            settings.path: {
                "post": _post_operation(),
                "get": _get_operation(),
            }
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key or a JWT.",
                },
                "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            },
            "schemas": {
                "RecordAiChatUsage": _request_schema(),
                "AiChatUsageResponse": _response_schema(name),
                "AiChatUsageSuccess": {
                    "allOf": [
                        {"$ref": _REF + "AiChatUsageResponse"},
                        {
                            "required": [name(f) for f in USAGE_MEMBERS],
                            "not": {"required": [name("ResponseStatus")]},
                        },
                    ]
                },
                "AiChatUsageError": {
                    "allOf": [
                        {"$ref": _REF + "AiChatUsageResponse"},
                        {
                            "required": [name("ResponseStatus")],
                            "maxProperties": 1,
                        },
                    ]
                },
                "ResponseStatus": _response_status_schema(name),
                "ResponseError": _response_error_schema(name),
            },
        },
    }


def _request_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            "Record AI assistant token usage for a company. Member names match "
            "case-insensitively (`tokensUsed`, `tokens_used` too); the query string wins over "
            "the body."
        ),
        "properties": {
            "CompanyId": {
                "type": ["string", "null"],
                "pattern": _GUID_IN,
                "description": (
                    "The company id. Defaults to the logged-in user's company when omitted. "
                    "A Guid with or without hyphens, optionally in braces."
                ),
            },
            "TokensUsed": {
                "type": "integer",
                "format": "int64",
                "minimum": 0,
                "maximum": INT64_MAX,
                "description": "Number of tokens consumed by the chat turn (input + output).",
            },
        },
        "required": ["TokensUsed"],
    }


def _response_schema(name: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            name("CompanyId"): {
                "type": "string",
                "pattern": "^[0-9a-f]{32}$",
                "description": "The company the usage applies to (Guid, 32 hex digits).",
            },
            name("TokensUsed"): {
                "type": "integer",
                "format": "int64",
                "minimum": 0,
                "maximum": INT64_MAX,
                "description": "Tokens consumed within the current rolling window.",
            },
            name("TokenLimit"): {
                "type": "integer",
                "format": "int32",
                "minimum": 0,
                "maximum": INT32_MAX,
                "description": "The company's token limit for the window.",
            },
            name("TokensRemaining"): {
                "type": "integer",
                "format": "int64",
                "minimum": 0,
                "maximum": INT64_MAX,
                "description": "Tokens remaining before the limit is reached (never negative).",
            },
            name("IsWithinBudget"): {
                "type": "boolean",
                "description": "True while the company is still below its token limit.",
            },
            name("WindowDays"): {
                "type": "integer",
                "format": "int32",
                "minimum": 0,
                "maximum": INT32_MAX,
                "description": "Length of the rolling usage window, in days.",
            },
            name("ResponseStatus"): {"$ref": _REF + "ResponseStatus"},
        },
    }


def _string_map() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"type": "string"}}


def _response_status_schema(name: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "Set only on errors. `StackTrace` is never filled.",
        "properties": {
            name("ErrorCode"): {"type": "string", "minLength": 1},
            name("Message"): {"type": "string"},
            name("StackTrace"): {"type": "string"},
            name("Errors"): {"type": "array", "items": {"$ref": _REF + "ResponseError"}},
            name("Meta"): _string_map(),
        },
        "required": [name("ErrorCode"), name("Message")],
    }


def _response_error_schema(name: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            name("ErrorCode"): {"type": "string", "minLength": 1},
            name("FieldName"): {"type": "string"},
            name("Message"): {"type": "string"},
            name("Meta"): _string_map(),
        },
        "required": [name("ErrorCode"), name("FieldName"), name("Message")],
    }


def _content(schema: str) -> dict[str, Any]:
    return {media: {"schema": {"$ref": _REF + schema}} for media in _MEDIA_TYPES}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _common_parameters() -> list[dict[str, Any]]:
    return [
        _query(
            "CompanyId",
            {"type": "string", "pattern": _GUID_IN},
            "The company id. Defaults to the caller's own company; an admin must name one.",
        ),
        _query(
            "format",
            {"type": "string", "enum": ["json", "jsv"]},
            "Response format; wins over the suffix and `Accept`.",
        ),
        _query(
            "jsconfig",
            {"type": "string", "examples": ["TextCase:PascalCase"]},
            "ServiceStack's per-request serializer options; `TextCase` is honoured.",
        ),
    ]


def _responses(success: str, errors: tuple[int, ...], success_headers: dict[str, Any]) -> dict:
    responses: dict[str, Any] = {
        "200": {
            "description": success,
            "content": _content("AiChatUsageSuccess"),
            **({"headers": success_headers} if success_headers else {}),
        }
    }
    for status in errors:
        entry: dict[str, Any] = {
            "description": _ERRORS[status],
            "content": _content("AiChatUsageError"),
        }
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        elif status == 405:
            entry["headers"] = {"Allow": {"schema": {"type": "string"}}}
        responses[str(status)] = entry
    return responses


def _post_operation() -> dict[str, Any]:
    return {
        "operationId": "RecordAiChatUsage",
        "tags": ["ai-chat"],
        "summary": "Record AI assistant token usage for a company",
        "description": (
            "Records the tokens consumed by an AI assistant chat turn (input + output) against "
            "the company's rolling-window budget and returns the updated usage. Defaults to the "
            "logged-in user's company when no CompanyId is supplied. Recording is never refused "
            "for being over budget. Send `Idempotency-Key` to make retries safe: the same key "
            "from the same caller within 24 h returns the first response and records nothing."
        ),
        "parameters": [
            *_common_parameters(),
            _query(
                "TokensUsed",
                {"type": "integer", "format": "int64", "minimum": 0, "maximum": INT64_MAX},
                "Accepted in the query too; the query wins over the body.",
            ),
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": "Makes a retry of this request count once (24 h, per caller).",
            },
        ],
        "requestBody": {
            "required": False,
            "content": {
                **_content("RecordAiChatUsage"),
                "application/x-www-form-urlencoded": {
                    "schema": {"$ref": _REF + "RecordAiChatUsage"}
                },
            },
        },
        "responses": _responses(
            "The company's usage after this request's tokens.",
            _POST_ERRORS,
            {
                "Idempotent-Replayed": {
                    "schema": {"type": "string", "enum": ["true"]},
                    "description": "Present when this is the stored answer to a retried key.",
                }
            },
        ),
    }


def _get_operation() -> dict[str, Any]:
    return {
        "operationId": "GetAiChatUsage",
        "tags": ["ai-chat"],
        "summary": "Read a company's AI assistant token usage",
        "description": "The same response as the POST, without recording anything.",
        "parameters": _common_parameters(),
        "responses": _responses("The company's current usage.", _GET_ERRORS, {}),
    }
