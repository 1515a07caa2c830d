"""One canonical form for guarded paths: the path the guard classifies is the path it forwards.

Upstreams and the proxies in front of them normalise paths in ways the guard cannot predict
(nginx merges slashes, Spring drops ``;`` parameters, ASP.NET matches routes in any case,
Windows servers trim trailing dots and spaces). A path that one of them would read as a
metered route, but that the guard reads as something else, is a way to spend uncharged. So a
guarded path must already be in the only form every one of them reads the same way: no
percent-encoding, no empty, ``.`` or ``..`` segment, no ``;`` parameters, no trailing dot,
and nothing but unreserved characters. Case is left alone: routes match case-sensitively, so
``/v1/Chat/Completions`` is simply not a route.
"""

from __future__ import annotations

import re

from starlette.types import Scope

_SEGMENT = r"[A-Za-z0-9_~:@-](?:[A-Za-z0-9._~:@-]*[A-Za-z0-9_~:@-])?"
_CANONICAL = re.compile(rf"(?:/{_SEGMENT})+")
"""One or more ``/segment``: a segment is never empty, ``.`` or ``..``, nor ends in a dot."""


def non_canonical(scope: Scope) -> str | None:
    """Why the request's path is not canonical, or None when it is."""
    path: str = scope["path"]
    raw = scope.get("raw_path")
    if raw is not None and raw != path.encode("latin-1", "replace"):
        return "The request path must not contain percent-encoded characters."
    if _CANONICAL.fullmatch(path) is None:
        return (
            "The request path must be canonical: no empty, '.' or '..' segments, no ';' "
            "parameters, no trailing dots, only letters, digits and '-_.~:@'."
        )
    return None
