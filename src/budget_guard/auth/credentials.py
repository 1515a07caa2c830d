"""Pulling a credential out of request headers without trusting them.

Headers come straight from the network, so every odd shape (wrong scheme, extra words, control or
non-ASCII characters, megabyte values) yields ``None`` rather than an exception: a rejected
credential must end as a 401, never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: Longest credential considered at all; far above any real API key or JWT, and it bounds the
#: hashing and parsing work a hostile client can cause per request.
MAX_CREDENTIAL_CHARS = 8192

_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def is_credential_text(value: str) -> bool:
    """Whether ``value`` can be a credential: 1..MAX visible ASCII characters, no whitespace."""
    return len(value) <= MAX_CREDENTIAL_CHARS and _VISIBLE_ASCII.fullmatch(value) is not None


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive, RFC 7235)."""
    value = headers.get("authorization")
    if not isinstance(value, str) or len(value) > MAX_CREDENTIAL_CHARS + 64:
        return None
    parts = value.split()
    if len(parts) != 2 or not parts[0].isascii() or parts[0].lower() != "bearer":
        return None
    token = parts[1]
    return token if is_credential_text(token) else None


def api_key_header(headers: Mapping[str, str]) -> str | None:
    """The value of ``X-Api-Key`` (the header Anthropic-style clients send), trimmed."""
    value = headers.get("x-api-key")
    if not isinstance(value, str) or len(value) > MAX_CREDENTIAL_CHARS + 64:
        return None
    token = value.strip()
    return token if is_credential_text(token) else None
