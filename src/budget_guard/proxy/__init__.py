"""The proxy side: what stands where the budget-guard middleware forwards to.

:class:`UpstreamProxy` (``upstream``) streams each request to one OpenAI-compatible upstream
and its answer back; :class:`ProxySettings` (``settings``) is the ``[proxy]`` table that builds
it; :func:`create_demo_upstream` (``demo_upstream``) is a built-in upstream to try the guard
and benchmark it without an API key; ``openai_errors`` answers in OpenAI's error shape, for the
proxy, the demo upstream and the guard alike.
"""

from __future__ import annotations

from budget_guard.proxy.demo_upstream import DEMO_MODELS, create_demo_upstream
from budget_guard.proxy.openai_errors import (
    DOT_SEGMENT_MESSAGE,
    has_dot_segment,
    openai_error_body,
    send_openai_error,
)
from budget_guard.proxy.settings import ProxySettings
from budget_guard.proxy.upstream import (
    DEFAULT_FORWARDED_HEADERS,
    DEFAULT_TIMEOUT,
    UPSTREAM_MAY_BILL,
    AuthStyle,
    TransportName,
    UpstreamProxy,
    check_headers,
    check_upstream_url,
)

__all__ = [
    "DEFAULT_FORWARDED_HEADERS",
    "DEFAULT_TIMEOUT",
    "DEMO_MODELS",
    "DOT_SEGMENT_MESSAGE",
    "UPSTREAM_MAY_BILL",
    "AuthStyle",
    "ProxySettings",
    "TransportName",
    "UpstreamProxy",
    "check_headers",
    "check_upstream_url",
    "create_demo_upstream",
    "has_dot_segment",
    "openai_error_body",
    "send_openai_error",
]
