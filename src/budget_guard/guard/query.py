"""A guarded request's query string: nothing in it may choose what the body is counted as.

LiteLLM reads a ``model`` from the query string ahead of the body's (for its Azure-style
clients), so ``POST /v1/chat/completions?model=...`` would be served by a model the guard
never counted, weighed or checked, another company's fine-tuned one included. So on a
metered route the query may carry only what the APIs define there (Azure's ``api-version``,
the Anthropic SDK's ``beta``), and on any route no parameter may name a model or a provider,
however it is spelled (matched as loosely as body keys are, ``key_case.fold``, and with only
letters and digits kept), and no ``;`` (which older parsers read as ``&``).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from budget_guard.counting.key_case import fold
from budget_guard.guard.routes import METERED, Route

METERED_QUERY = frozenset({"api-version", "beta"})
"""The query parameters a metered route accepts."""
MAX_QUERY_FIELDS = 100
# Names a routing upstream reads to pick the model or the provider (LiteLLM's), compared with
# only their letters and digits kept: ``model[]`` and ``model\x00`` are ``model`` to some.
_MODEL_NAMES = frozenset({"model", "deploymentid", "customllmprovider", "targetmodelnames"})
_NOT_ALNUM = re.compile(r"[^0-9a-z]")


class QueryRefused(Exception):
    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


def check_query(query: bytes, route: Route) -> None:
    """Raise :class:`QueryRefused` (naming the parameter) for a query the guard cannot
    forward on ``route``."""
    if query.find(b";") >= 0:
        # Older parsers (Python before 3.9.2, Go before 1.17) split parameters on it too.
        raise QueryRefused("A query string may not contain ';'.", None)
    try:
        fields = parse_qsl(
            query.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS
        )
    except ValueError:
        raise QueryRefused(
            f"A query string may have at most {MAX_QUERY_FIELDS} parameters.", None
        ) from None
    metered = route.charge == METERED
    for name, _ in fields:
        if _NOT_ALNUM.sub("", fold(name)) in _MODEL_NAMES:
            raise QueryRefused(
                f"The model is chosen by the request body, not the query string: remove '{name}'.",
                name,
            )
        if metered and name not in METERED_QUERY:
            allowed = ", ".join(sorted(METERED_QUERY))
            raise QueryRefused(
                f"Query parameter '{name}' is not accepted on this route (only {allowed}).", name
            )
