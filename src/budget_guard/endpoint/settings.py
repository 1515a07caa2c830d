"""The ``[endpoint]`` table: where the usage endpoint lives and how it answers.

Every value is checked when the settings are built, so a typo fails at start-up with a
:class:`~budget_guard.budget.window.ConfigError` naming the key, never on a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from budget_guard.budget.window import ConfigError
from budget_guard.config_tables import declare_table, reject_unknown
from budget_guard.wire import TextCase

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_OPENAPI_PATH", "DEFAULT_PATH", "EndpointSettings"]

DEFAULT_PATH = "/assistant/ai-chat/usage"
DEFAULT_OPENAPI_PATH = "/openapi.json"
"""Where ``budget-guard serve`` (which owns its whole app) serves the OpenAPI document."""
OPENAPI_SUFFIX = "/openapi.json"
"""Mounted in a host app, the document lives under the endpoint's own path, so the host's
``/openapi.json`` (FastAPI's ``/docs`` reads it) stays the host's."""
#: The request DTO is two small members; 64 KiB is generous for any client and still small
#: enough that a flood of large bodies costs the server nothing worth mentioning.
DEFAULT_MAX_BODY_BYTES = 65536

_TEXT_CASES = {
    "camel": TextCase.CAMEL,
    "camelcase": TextCase.CAMEL,
    "pascal": TextCase.PASCAL,
    "pascalcase": TextCase.PASCAL,
}
_KNOWN_KEYS = frozenset(
    {
        "path",
        "max_body_bytes",
        "text_case",
        "enabled",
        "openapi_path",
        "predefined_routes",
        "body_timeout_seconds",
    }
)
declare_table("endpoint", _KNOWN_KEYS)
_FORMAT_SUFFIXES = (".json", ".jsv")


@dataclass(frozen=True)
class EndpointSettings:
    path: str = DEFAULT_PATH
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    text_case: TextCase = TextCase.CAMEL
    """Casing of response member names unless a request asks otherwise with ``?jsconfig=``."""
    enabled: bool = True
    openapi_path: str | None = None
    """Where the OpenAPI document is served: by default ``<path>/openapi.json``, a path the
    endpoint owns, never the host's ``/openapi.json``; ``""`` serves none."""
    predefined_routes: bool = True
    """Also answer ServiceStack's predefined routes (``/api/RecordAiChatUsage``,
    ``/json/reply/...``, ``/jsv/reply/...``): ``JsonServiceClient.post(dto)`` and ``.get(dto)``
    send there, not to the documented path, so generated clients need them to work unchanged."""
    body_timeout_seconds: float = 60.0
    """The longest a request body may take to arrive. The server in front waits for a body
    forever, so without it a client that trickles or stalls its upload holds a connection for
    as long as it likes; past it the endpoint answers 408 and closes the connection."""

    def __post_init__(self) -> None:
        _check_path(self.path, "endpoint.path")
        if self.openapi_path is None and isinstance(self.path, str):
            object.__setattr__(self, "openapi_path", self.path + OPENAPI_SUFFIX)
        if self.path.endswith(_FORMAT_SUFFIXES):
            raise ConfigError("endpoint.path: must not end in .json or .jsv (those are added)")
        if self.openapi_path:
            _check_path(self.openapi_path, "endpoint.openapi_path")
            if self.openapi_path in (self.path, *(self.path + s for s in _FORMAT_SUFFIXES)):
                raise ConfigError("endpoint.openapi_path: must differ from endpoint.path")
        size = self.max_body_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError("endpoint.max_body_bytes: must be a positive whole number of bytes")
        timeout = self.body_timeout_seconds
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError("endpoint.body_timeout_seconds: must be a positive number of seconds")
        if not isinstance(self.text_case, TextCase):
            raise ConfigError('endpoint.text_case: must be "camel" or "pascal"')
        for name in ("enabled", "predefined_routes"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"endpoint.{name}: must be true or false")

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> EndpointSettings:
        """Build from the raw ``[endpoint]`` table (``settings.table("endpoint")``)."""
        if not isinstance(table, Mapping):
            raise ConfigError("[endpoint]: must be a table")
        reject_unknown("endpoint", table, _KNOWN_KEYS)
        options: dict[str, Any] = {
            key: table[key] for key in _KNOWN_KEYS - {"text_case"} if key in table
        }
        if "text_case" in table:
            raw = table["text_case"]
            chosen = _TEXT_CASES.get(raw.strip().lower()) if isinstance(raw, str) else None
            if chosen is None:
                raise ConfigError('endpoint.text_case: must be "camel" or "pascal"')
            options["text_case"] = chosen
        return cls(**options)


def _check_path(value: object, key: str) -> None:
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or value == "/"
        or value.endswith("/")
        or "//" in value
        or any(char in value for char in "?#%{} \t\r\n")
        or not value.isascii()
    ):
        raise ConfigError(f"{key}: must be an absolute URL path such as {DEFAULT_PATH}")
