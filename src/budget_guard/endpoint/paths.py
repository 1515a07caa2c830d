"""Which URL paths the endpoint answers, and what each one implies about the format.

The documented path, its ``.json`` / ``.jsv`` suffixes (which force a format, as in
ServiceStack), ServiceStack's predefined routes for the request DTO (what
``JsonServiceClient.post(dto)`` calls), and the OpenAPI document.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from budget_guard.endpoint.settings import EndpointSettings
from budget_guard.wire.binding import REQUEST_NAME
from budget_guard.wire.negotiation import WireFormat

__all__ = ["PathKind", "PathTable", "Target", "route_path"]


class PathKind(Enum):
    USAGE = "usage"
    OPENAPI = "openapi"


@dataclass(frozen=True, slots=True)
class Target:
    kind: PathKind
    forced_format: WireFormat | None = None
    """The format a suffix or a predefined ``/json/reply`` route names; it ranks after
    ``?format=`` and before ``Accept``, as ServiceStack ranks the suffix."""


class PathTable:
    def __init__(self, settings: EndpointSettings) -> None:
        table: dict[str, Target] = {}
        if settings.enabled:
            table[settings.path] = Target(PathKind.USAGE)
            table[settings.path + ".json"] = Target(PathKind.USAGE, WireFormat.JSON)
            table[settings.path + ".jsv"] = Target(PathKind.USAGE, WireFormat.JSV)
            if settings.predefined_routes:
                table[f"/api/{REQUEST_NAME}"] = Target(PathKind.USAGE)
                table[f"/json/reply/{REQUEST_NAME}"] = Target(PathKind.USAGE, WireFormat.JSON)
                table[f"/jsv/reply/{REQUEST_NAME}"] = Target(PathKind.USAGE, WireFormat.JSV)
            if settings.openapi_path:
                table[settings.openapi_path] = Target(PathKind.OPENAPI)
        self._table = table

    def lookup(self, path: str) -> Target | None:
        return self._table.get(path)

    @property
    def paths(self) -> list[str]:
        return list(self._table)


def route_path(scope: dict[str, object]) -> str:
    """The path within the app, without the ``root_path`` a mount or a proxy prefix added
    (the same rule as Starlette's own router, so a mounted endpoint sees what it matched)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", "") or "")
    if root and path.startswith(root) and len(path) > len(root) and path[len(root)] == "/":
        return path[len(root) :]
    return path
