"""Operability: Prometheus metrics, health probes, JSON logs, and the usage page for people."""

from budget_guard.observability.fanout import FanOutEvents
from budget_guard.observability.health import HealthChecks
from budget_guard.observability.logs import (
    JsonLogFormatter,
    LogEvents,
    configure_json_logging,
    json_logging_config,
    log_startup_config,
    secrets_in,
)
from budget_guard.observability.metrics import (
    InstrumentedStore,
    PrometheusEvents,
    instrument_ledger,
)
from budget_guard.observability.report import UsageReport, usage_report
from budget_guard.observability.settings import ObservabilitySettings
from budget_guard.observability.usage_page import UsagePage

__all__ = [
    "FanOutEvents",
    "HealthChecks",
    "InstrumentedStore",
    "JsonLogFormatter",
    "LogEvents",
    "ObservabilitySettings",
    "PrometheusEvents",
    "UsagePage",
    "UsageReport",
    "configure_json_logging",
    "instrument_ledger",
    "json_logging_config",
    "log_startup_config",
    "secrets_in",
    "usage_report",
]
