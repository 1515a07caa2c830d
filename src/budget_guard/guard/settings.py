"""The ``[guard]`` table: how the middleware guards the proxy path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from budget_guard.budget.window import ConfigError
from budget_guard.config_tables import declare_table, reject_unknown
from budget_guard.counting.body_limits import (
    DEFAULT_MAX_ARRAY_ITEMS,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_OBJECT_KEYS,
    MAX_DEPTH_CEILING,
    BodyLimits,
)
from budget_guard.guard.routes import Route, RoutePolicy, routes_from_config

_KNOWN = {
    "paths",
    "strict",
    "default_reservation",
    "on_store_error",
    "journal_size",
    "max_body_bytes",
    "prefer_upstream_usage",
    "default_encoding",
    "dedupe_seconds",
    "company_header",
    "body_timeout_seconds",
    "snapshot_cache_seconds",
    "request_stream_usage",
    "routes",
    "abandoned_seconds",
    "object_seconds",
    "reference_reservation",
    "max_body_depth",
    "max_body_array_items",
    "max_body_object_keys",
}
declare_table("guard", _KNOWN)


@dataclass(frozen=True)
class GuardSettings:
    paths: tuple[str, ...] = ("/v1/",)
    """Path prefixes the guard counts and enforces; everything else passes untouched."""
    strict: bool = False
    """Reserve the estimated cost before forwarding, settle afterwards (docs/design.md)."""
    default_reservation: int = 4096
    """Output tokens assumed in strict mode when a request names no max_tokens."""
    on_store_error: str = "open"
    """"open": serve and journal the usage; "closed": answer 503."""
    journal_size: int = 100_000
    max_body_bytes: int = 10 * 1024 * 1024
    prefer_upstream_usage: bool = True
    default_encoding: str = "o200k_base"
    dedupe_seconds: float = 600.0
    """How long a recording's retry key lives in a remote store, so that a retry after an
    ambiguous failure (reply lost) is not counted twice. 0 turns the keys off."""
    company_header: str = "x-budget-company-id"
    """Lets an admin key charge a named company on the proxy path."""
    body_timeout_seconds: float = 60.0
    """The longest a request body may take to arrive. The server in front waits for a body
    forever, so without it a client that trickles or stalls its upload holds a connection and
    a task for as long as it likes; past it the guard answers 408 and closes the connection."""
    snapshot_cache_seconds: float = 1.0
    """Non-strict mode on a remote store: a company this process saw within budget this
    recently, with room for the request's whole estimate, is admitted without reading the
    store again (a round trip that is most of the guard's cost). It widens the non-strict
    overshoot by what other workers record in that time. 0 reads the store every time."""

    request_stream_usage: bool = True
    """Ask the upstream for usage on streamed chat and completion requests that did not
    (``stream_options.include_usage``) and hide the extra usage chunk from the client, so
    reasoning tokens are charged too. On by default: without it a tenant streaming a
    reasoning model without usage pays for the visible text only. Off hands the body on
    unchanged and counts such streams with tiktoken."""

    routes: tuple[Route, ...] = ()
    """``[[guard.routes]]``: routes forwarded besides the built-in metered and free ones,
    each with how it is charged (see ``guard/routes.py``)."""
    abandoned_seconds: float = 600.0
    """How long the guard keeps reading an upstream answer after its client left: the
    upstream bills it anyway, so it is metered to its end, but not for ever."""
    reference_reservation: int = 128_000
    """Strict mode: input tokens held besides the counted prompt when a request pulls stored
    objects into its context (``previous_response_id``, a conversation, a file), whose size
    the guard cannot count; about one context window."""
    object_seconds: float = 30 * 86_400.0
    """How long the guard remembers which company created an upstream object (a stored
    response, a file): after it, the object is out of that company's reach too."""
    max_body_depth: int = DEFAULT_MAX_DEPTH
    """Arrays and objects nested in a counted body (at most 200); deeper is a 400. OpenAI's
    strictest deep schema (10 object levels, an array and an anyOf at each) is 56."""
    max_body_array_items: int = DEFAULT_MAX_ARRAY_ITEMS
    """Items in any one array of a counted body; 1M holds a 1M-token prompt sent as token ids."""
    max_body_object_keys: int = DEFAULT_MAX_OBJECT_KEYS
    """Keys in any one object of a counted body (OpenAI schemas allow 5,000 properties)."""

    def body_limits(self) -> BodyLimits:
        return BodyLimits(self.max_body_depth, self.max_body_array_items, self.max_body_object_keys)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> GuardSettings:
        reject_unknown("guard", table, _KNOWN)
        defaults = cls()
        paths = table.get("paths", list(defaults.paths))
        if (
            not isinstance(paths, list)
            or not paths
            or not all(isinstance(p, str) and p.startswith("/") for p in paths)
        ):
            raise ConfigError('guard.paths: must be a list of path prefixes such as ["/v1/"]')
        mode = table.get("on_store_error", defaults.on_store_error)
        if mode not in {"open", "closed"}:
            raise ConfigError('guard.on_store_error: must be "open" or "closed"')
        encoding = table.get("default_encoding", defaults.default_encoding)
        if not isinstance(encoding, str) or not encoding:
            raise ConfigError("guard.default_encoding: must be an encoding name")
        timeout = table.get("body_timeout_seconds", defaults.body_timeout_seconds)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError("guard.body_timeout_seconds: must be a positive number of seconds")
        cache = table.get("snapshot_cache_seconds", defaults.snapshot_cache_seconds)
        if isinstance(cache, bool) or not isinstance(cache, int | float) or not cache >= 0:
            raise ConfigError("guard.snapshot_cache_seconds: must be a number of seconds >= 0")
        header = table.get("company_header", defaults.company_header)
        if not isinstance(header, str) or not header:
            raise ConfigError("guard.company_header: must be a header name")
        abandoned = table.get("abandoned_seconds", defaults.abandoned_seconds)
        if isinstance(abandoned, bool) or not isinstance(abandoned, int | float) or abandoned <= 0:
            raise ConfigError("guard.abandoned_seconds: must be a positive number of seconds")
        objects = table.get("object_seconds", defaults.object_seconds)
        if isinstance(objects, bool) or not isinstance(objects, int | float) or objects <= 0:
            raise ConfigError("guard.object_seconds: must be a positive number of seconds")
        routes = routes_from_config(table.get("routes", []), paths)
        RoutePolicy(paths, routes)  # a route that repeats another is refused here, by name
        depth = _whole(table, "max_body_depth", defaults.max_body_depth, minimum=1)
        if depth > MAX_DEPTH_CEILING:
            raise ConfigError(f"guard.max_body_depth: must be at most {MAX_DEPTH_CEILING}")
        return cls(
            paths=tuple(paths),
            routes=routes,
            abandoned_seconds=float(abandoned),
            object_seconds=float(objects),
            strict=_flag(table, "strict", defaults.strict),
            default_reservation=_whole(table, "default_reservation", defaults.default_reservation),
            reference_reservation=_whole(
                table, "reference_reservation", defaults.reference_reservation
            ),
            on_store_error=mode,
            journal_size=_whole(table, "journal_size", defaults.journal_size, minimum=1),
            max_body_bytes=_whole(table, "max_body_bytes", defaults.max_body_bytes, minimum=1),
            prefer_upstream_usage=_flag(
                table, "prefer_upstream_usage", defaults.prefer_upstream_usage
            ),
            default_encoding=encoding,
            dedupe_seconds=float(_whole(table, "dedupe_seconds", int(defaults.dedupe_seconds))),
            company_header=header.lower(),
            body_timeout_seconds=float(timeout),
            snapshot_cache_seconds=float(cache),
            request_stream_usage=_flag(
                table, "request_stream_usage", defaults.request_stream_usage
            ),
            max_body_depth=depth,
            max_body_array_items=_whole(
                table, "max_body_array_items", defaults.max_body_array_items, minimum=1
            ),
            max_body_object_keys=_whole(
                table, "max_body_object_keys", defaults.max_body_object_keys, minimum=1
            ),
        )


def _flag(table: Mapping[str, Any], key: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"guard.{key}: must be true or false")
    return value


def _whole(table: Mapping[str, Any], key: str, default: int, *, minimum: int = 0) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"guard.{key}: must be a whole number >= {minimum}")
    return value
