"""The admin limit routes in the OpenAPI document (added to the usage endpoint's document when
the routes are served, as ``budget-guard serve`` does)."""

from __future__ import annotations

from typing import Any

from budget_guard.budget.window import INT32_MAX
from budget_guard.endpoint.openapi import _REF, _content, _query
from budget_guard.endpoint.settings import EndpointSettings
from budget_guard.wire import wire_name

_LIMIT = {"type": "integer", "format": "int32", "minimum": 0, "maximum": INT32_MAX}
_ERRORS = {
    "400": "`NotEmpty` / `SerializationException` / `InclusiveBetween` naming `CompanyId` or "
    "`TokenLimit`.",
    "401": "`Unauthorized`: not authenticated.",
    "403": "`Forbidden`: only an admin may read or change limits (a user key, any company).",
    "405": "`MethodNotAllowed`.",
    "413": "`RequestEntityTooLarge`.",
    "415": "`UnsupportedMediaType`.",
    "501": "`NotImplemented`: the usage store keeps no run-time limits.",
    "503": "`ServiceUnavailable`: the usage store is unavailable; retry.",
}


def add_limit_routes(document: dict[str, Any], settings: EndpointSettings, path: str) -> None:
    def name(pascal: str) -> str:
        return wire_name(pascal, settings.text_case)

    company = _query("CompanyId", {"type": "string"}, "The company (Guid).")
    limit = _query("TokenLimit", _LIMIT, "The new limit; accepted in the body too.")
    set_op = _operation(
        "SetAiChatLimit",
        "Set a company's run-time token limit (admin)",
        "Overrides `[budget.limits]`, the limit provider and the default until cleared. In "
        "force on every worker and host within one second. Logged with who changed it.",
        [company, limit],
        "AiChatLimitResponse",
        body=True,
    )
    document["paths"][path] = {
        "get": _operation(
            "GetAiChatLimit",
            "Read a company's token limit, or list the run-time overrides (admin)",
            "With `CompanyId`: that company's limit, its override and where the limit comes "
            "from. Without: every company with a run-time override.",
            [company],
            "AiChatLimitResponse",
        ),
        "put": set_op,
        "post": {**set_op, "operationId": "SetAiChatLimitPost"},
        "delete": _operation(
            "ClearAiChatLimit",
            "Clear a company's run-time token limit (admin)",
            "The company is back on its configured limit.",
            [company],
            "AiChatLimitResponse",
        ),
    }
    schemas = document["components"]["schemas"]
    schemas["SetAiChatLimit"] = {
        "type": "object",
        "properties": {"CompanyId": {"type": "string"}, "TokenLimit": _LIMIT},
        "required": ["CompanyId", "TokenLimit"],
    }
    schemas["AiChatLimitResponse"] = {
        "type": "object",
        "description": "One company's limit; or, for the list, `results` of `{companyId, "
        "tokenLimit}`; or on errors only `responseStatus`.",
        "properties": {
            name("CompanyId"): {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            name("TokenLimit"): {**_LIMIT, "description": "The limit in force."},
            name("OverrideTokenLimit"): {**_LIMIT, "description": "The run-time override."},
            name("LimitSource"): {
                "type": "string",
                "enum": ["override", "config", "provider", "default"],
            },
            name("PreviousOverrideTokenLimit"): {
                **_LIMIT,
                "description": "On a set or clear: the override it replaced, if any.",
            },
            name("AlertThresholds"): {"type": "array", "items": {"type": "number"}},
            name("Results"): {"type": "array", "items": {"type": "object"}},
            name("ResponseStatus"): {"$ref": _REF + "ResponseStatus"},
        },
    }


def _operation(
    operation_id: str,
    summary: str,
    description: str,
    parameters: list[dict[str, Any]],
    schema: str,
    *,
    body: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": ["ai-chat-admin"],
        "summary": summary,
        "description": description,
        "parameters": parameters,
        "responses": {
            "200": {"description": "The company's limit.", "content": _content(schema)},
            **{
                status: {"description": text, "content": _content(schema)}
                for status, text in _ERRORS.items()
            },
        },
    }
    if body:
        operation["requestBody"] = {"required": False, "content": _content("SetAiChatLimit")}
    return operation
