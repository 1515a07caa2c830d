"""Webhook signatures, as GitHub and Stripe sign theirs: HMAC-SHA256 with a shared secret.

The signed text is ``<timestamp>.<raw body>``, so a receiver that also checks the timestamp
is fresh cannot be fed an old, captured request again (replay).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Budget-Guard-Signature"
"""``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``"""
TIMESTAMP_HEADER = "X-Budget-Guard-Timestamp"
"""Unix seconds when this attempt was signed (each retry is signed afresh)."""
EVENT_ID_HEADER = "X-Budget-Guard-Event-Id"
"""The payload's ``id``, for receivers that dedupe before parsing."""

DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when ``body`` was signed with ``secret`` no more than ``tolerance`` seconds ago.
    ``headers`` is looked up case-insensitively (any mapping, e.g. Starlette's or a dict)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    if not stamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(signature, sign(secret, int(stamp), body))
