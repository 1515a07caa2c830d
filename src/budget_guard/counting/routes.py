"""Which API shape a proxied path is, so the right counting rules apply."""

from __future__ import annotations

import re

CHAT = "chat"
RESPONSES = "responses"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
MESSAGES = "messages"
OTHER = "other"

# Anything may come before "/v1/" (a gateway mount such as /openai/v1/...). Azure OpenAI puts the
# model in the path (/openai/deployments/<name>/chat/completions) instead of under /v1/.
_ROUTE = re.compile(
    r"(?:/v1|/deployments/(?P<deployment>[^/]+))"
    r"/(?P<route>chat/completions|completions|embeddings|responses|messages)/?$"
)
_KINDS = {
    "chat/completions": CHAT,
    "completions": COMPLETIONS,
    "embeddings": EMBEDDINGS,
    "responses": RESPONSES,
    "messages": MESSAGES,
}


def classify(path: str) -> tuple[str, str | None]:
    """Return (kind, Azure deployment name or None) for a request path without its query."""
    match = _ROUTE.search(path)
    if match is None:
        return OTHER, None
    deployment = match.group("deployment")
    if deployment is not None and match.group("route") in (RESPONSES, MESSAGES):
        return OTHER, None
    return _KINDS[match.group("route")], deployment
