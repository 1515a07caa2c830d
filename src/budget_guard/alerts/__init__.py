"""Threshold alerts: a company crossing a fraction of its budget is told to webhooks or to a
callback, once per crossing, without ever touching the guarded request (issue 15)."""

from __future__ import annotations

from budget_guard.alerts.dispatcher import AlertCallback, AlertDispatcher
from budget_guard.alerts.events import ThresholdCrossed
from budget_guard.alerts.settings import AlertSettings
from budget_guard.alerts.signing import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    verify,
)

__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlertCallback",
    "AlertDispatcher",
    "AlertSettings",
    "ThresholdCrossed",
    "sign",
    "verify",
]
