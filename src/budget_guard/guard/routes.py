"""The route policy: which requests the guard forwards, and how each one is charged.

Every company's requests reach the upstream under the operator's one key, so a route the
guard forwards without charging is a way to spend for free, and a route that reaches an
object stored upstream is a way into another company's data. The policy is therefore an
allow-list, matched on the exact method and path:

- the shapes the guard meters (chat completions, completions, responses, embeddings,
  Anthropic messages, and Azure's deployment forms of the first three) and the routes that
  cost nothing (listing models, Anthropic's ``count_tokens``) are built in;
- everything else under ``guard.paths`` is refused before the upstream, naming the setting
  that would allow it: ``[[guard.routes]]`` entries, each saying how it is charged
  (``usage``: the upstream's reported usage, ``tokens`` when it reports none; ``flat``:
  ``tokens`` per request; ``free``: explicitly nothing).

A ``{placeholder}`` in a configured path is an upstream object id: the request is forwarded
only if the object is the calling company's (``creates = true`` on the route that makes
them remembers each new id in the usage store). Listing a collection of such objects would
show every company's, so a list route cannot be configured.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from budget_guard.budget.window import ConfigError
from budget_guard.config_tables import declare_table, reject_unknown
from budget_guard.counting import routes as kinds
from budget_guard.counting.references import is_fine_tuned_model

METERED = "metered"
USAGE = "usage"
FLAT = "flat"
FREE = "free"
CHARGES = (USAGE, FLAT, FREE)

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

_LITERAL = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# An id in a path: the characters upstream ids are made of, never ".", ".." or a trailing dot.
_ID = r"[A-Za-z0-9_~-](?:[A-Za-z0-9._~:-]*[A-Za-z0-9_~-])?"

# Upstream collections whose list would show every company's objects: never configurable.
LIST_ROUTES = frozenset(
    {
        "assistants",
        "batches",
        "chat/completions",
        "containers",
        "conversations",
        "evals",
        "files",
        "fine_tuning/jobs",
        "messages/batches",
        "responses",
        "threads",
        "uploads",
        "vector_stores",
        "videos",
    }
)
# A route whose answer is a fine-tuning job (or a list of its checkpoints), by its path after
# the prefix: creating a job, or the job's own paths.
_JOB_ROUTE = re.compile(
    r"fine_tuning/jobs(?:/\{[A-Za-z_][A-Za-z0-9_]*\}(?:/(?:cancel|pause|resume|checkpoints))?)?"
)


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    """The full path template, e.g. ``/v1/files/{file_id}``."""
    charge: str
    """``metered`` (built in), ``usage``, ``flat`` or ``free``."""
    kind: str = kinds.OTHER
    """The request shape the counter meters (``metered`` routes only)."""
    tokens: int = 0
    """``flat``: charged per request; ``usage``: charged when the upstream reports no usage,
    and held per requested output (``n``) in strict mode."""
    creates: bool = False
    """A successful answer's ``id`` becomes an object of the calling company."""
    owned: tuple[str, ...] = ()
    """Placeholders that are object ids the calling company must own."""
    models: tuple[str, ...] = ()
    """Placeholders naming a model: a fine-tuned one must be the calling company's."""
    job_answer: bool = False
    """A successful answer is a fine-tuning job's: the models and files it names become the
    calling company's (``fine_tuned_models``)."""
    lists_models: bool = False
    """A successful answer is a model list, shown without other companies' fine-tuned models."""


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    object_ids: tuple[str, ...] = ()
    """The ids in the path the calling company must own."""


@dataclass(frozen=True, slots=True)
class RouteRefused:
    status: int
    message: str


def _builtin(prefix: str) -> list[Route]:
    def metered(path: str, kind: str, *, creates: bool = False) -> Route:
        # A deployment names the model served (Azure's own, or LiteLLM's for any model).
        models = ("deployment",) if "{deployment}" in path else ()
        return Route("POST", prefix + path, METERED, kind, creates=creates, models=models)

    return [
        metered("chat/completions", kinds.CHAT),
        metered("completions", kinds.COMPLETIONS),
        metered("embeddings", kinds.EMBEDDINGS),
        # Stored responses (the default) are objects: previous_response_id must be one's own.
        metered("responses", kinds.RESPONSES, creates=True),
        metered("messages", kinds.MESSAGES),
        metered("deployments/{deployment}/chat/completions", kinds.CHAT),
        metered("deployments/{deployment}/completions", kinds.COMPLETIONS),
        metered("deployments/{deployment}/embeddings", kinds.EMBEDDINGS),
        Route("POST", prefix + "messages/count_tokens", FREE),
        Route("GET", prefix + "models", FREE, lists_models=True),
        Route("GET", prefix + "models/{model}", FREE, models=("model",)),
    ]


class RoutePolicy:
    """Matches a request to the route it may take, in O(1) for fixed paths."""

    __slots__ = ("_exact", "_prefixes", "_templates")

    def __init__(self, prefixes: Sequence[str], routes: Iterable[Route] = ()) -> None:
        self._prefixes = tuple(prefixes)
        self._exact: dict[tuple[str, str], Route] = {}
        self._templates: list[tuple[str, re.Pattern[str], Route]] = []
        for prefix in self._prefixes:
            for route in _builtin(prefix):
                self._add(route)
        for route in routes:
            if (route.method, route.path) in self._exact or any(
                r.method == route.method and r.path == route.path for _, _, r in self._templates
            ):
                raise ConfigError(f"guard.routes: {route.method} {route.path} is already a route")
            self._add(route)

    def _add(self, route: Route) -> None:
        if "{" not in route.path:
            self._exact[(route.method, route.path)] = route
            return
        pattern = re.escape(route.path)
        pattern = re.sub(r"\\\{([A-Za-z_][A-Za-z0-9_]*)\\\}", rf"(?P<\1>{_ID})", pattern)
        self._templates.append((route.method, re.compile(pattern + r"\Z"), route))

    def match(self, method: str, path: str) -> RouteMatch | RouteRefused:
        route = self._exact.get((method, path))
        if route is not None:
            return RouteMatch(route)
        allowed_elsewhere = False
        for route_method, pattern, route in self._templates:
            found = pattern.match(path)
            if found is None:
                continue
            if route_method != method:
                allowed_elsewhere = True
                continue
            values = found.groupdict()
            owned = tuple(values[name] for name in route.owned)
            for name in route.models:
                if is_fine_tuned_model(values[name]):
                    owned += (values[name],)
            return RouteMatch(route, owned)
        # Refused either way: only now is it worth asking whether another method would do.
        if allowed_elsewhere or any(p == path for (_, p) in self._exact):
            return RouteRefused(405, f"{method} is not allowed on {path}.")
        return RouteRefused(
            404,
            f"The budget guard does not forward {method} {path}: it can charge only the routes "
            "it knows. An operator can allow it with a [[guard.routes]] entry saying how it is "
            'charged (charge = "usage", "flat" or "free").',
        )


def routes_from_config(entries: object, prefixes: Sequence[str]) -> tuple[Route, ...]:
    """``[[guard.routes]]``, each checked so that no entry forwards a request uncharged
    unless it says ``charge = "free"``."""
    if not isinstance(entries, list):
        raise ConfigError("guard.routes: must be an array of tables ([[guard.routes]])")
    return tuple(_route(index, entry, prefixes) for index, entry in enumerate(entries))


_ROUTE_KEYS = {"method", "path", "charge", "tokens", "creates"}
declare_table("guard.routes", _ROUTE_KEYS, array=True)


def _route(index: int, entry: object, prefixes: Sequence[str]) -> Route:
    where = f"guard.routes[{index}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: must be a table")
    reject_unknown(where, entry, _ROUTE_KEYS)
    method = entry.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ConfigError(f"{where}.method: must be one of {', '.join(sorted(METHODS))}")
    method = method.upper()
    path = entry.get("path")
    if not isinstance(path, str):
        raise ConfigError(f'{where}.path: must be a path such as "/v1/images/generations"')
    prefix = next((p for p in prefixes if path.startswith(p)), None)
    if prefix is None:
        raise ConfigError(f"{where}.path: {path!r} is not under guard.paths {list(prefixes)}")
    owned = _check_template(where, path, prefix)
    relative = path[len(prefix) :]
    if method == "GET" and relative in LIST_ROUTES:
        raise ConfigError(
            f"{where}.path: GET {path} lists every company's objects under the operator's "
            "one upstream key; it cannot be allowed"
        )
    charge = entry.get("charge")
    if charge not in CHARGES:
        raise ConfigError(f'{where}.charge: must be "usage", "flat" or "free"')
    tokens = entry.get("tokens", 0)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise ConfigError(f"{where}.tokens: must be a whole number of tokens")
    if charge in (USAGE, FLAT) and tokens < 1:
        what = "per request" if charge == FLAT else "when the upstream reports no usage"
        raise ConfigError(f"{where}.tokens: the tokens charged {what}; must be at least 1")
    if charge == FREE and tokens:
        raise ConfigError(f'{where}.tokens: a route with charge = "free" charges no tokens')
    creates = entry.get("creates", False)
    if not isinstance(creates, bool):
        raise ConfigError(f"{where}.creates: must be true or false")
    return Route(
        method,
        path,
        charge,
        tokens=tokens,
        creates=creates,
        owned=owned,
        job_answer=_JOB_ROUTE.fullmatch(relative) is not None,
    )


def _check_template(where: str, path: str, prefix: str) -> tuple[str, ...]:
    owned: list[str] = []
    for segment in path[len(prefix) :].split("/"):
        placeholder = _PLACEHOLDER.fullmatch(segment)
        if placeholder is not None:
            owned.append(placeholder.group(1))
        elif _LITERAL.fullmatch(segment) is None or segment.endswith("."):
            raise ConfigError(
                f"{where}.path: {path!r}: each segment must be a name (letters, digits, "
                "'-', '_', '.', '~') or an object id placeholder such as {file_id}"
            )
    if len(set(owned)) != len(owned):
        raise ConfigError(f"{where}.path: {path!r} repeats a placeholder")
    return tuple(owned)
