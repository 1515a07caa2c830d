"""Structured logs: one JSON object per line, secrets redacted, standard ``logging`` underneath.

The library only ever logs through ``logging.getLogger("budget_guard...")`` and configures
nothing on import, so a host application keeps full control of where its lines go. The
``budget-guard`` command, which owns its process, installs :class:`JsonLogFormatter` for its own
lines and uvicorn's (:func:`json_logging_config`).

Secrets are kept out twice over: known secret values (API keys, JWT secrets, the upstream key,
gathered from the config by :func:`secrets_in`) are replaced wherever they appear, and
credential shapes (``Bearer <token>``, a password inside a URL) are masked even when their value
is not known.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from budget_guard.config import Settings
from budget_guard.events import GuardEvents
from budget_guard.failure import describe

__all__ = [
    "JsonLogFormatter",
    "LogEvents",
    "Redactor",
    "configure_json_logging",
    "json_logging_config",
    "log_startup_config",
    "redact_config",
    "secrets_in",
]

MASK = "***"
MIN_SECRET_CHARS = 6
"""Shorter configured values are not searched for in log text: masking every "abc" in every
message would make the logs unreadable and protect nothing."""

_SECRET_NAME = re.compile(
    r"(?:^|_)(?:key|secret|password|passwd|token|credential|authorization)s?$", re.I
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+")
_API_KEY_HEADER = re.compile(r"(?i)\b(x-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]+")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@")

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is a field.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}  # uvicorn's copy of the message with ANSI colours
)


def is_secret_name(name: str) -> bool:
    """Whether a config key or log field holds a secret by its name (``key``, ``secret``,
    ``upstream_api_key``...); ``*_env`` keys only name an environment variable."""
    return not name.lower().endswith("_env") and _SECRET_NAME.search(name) is not None


class Redactor:
    """Masks known secret values and credential shapes in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        known = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_CHARS}
        # Longest first, so a secret that contains another is masked whole.
        self._known = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._known:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _BEARER.sub(rf"\g<1>{MASK}", text)
        text = _API_KEY_HEADER.sub(rf"\g<1>{MASK}", text)
        return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)

    def value(self, name: str, value: Any) -> Any:
        """A log field or config value, masked when its name or its text says it is secret."""
        if isinstance(value, Mapping):
            return {str(k): self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(name, v) for v in value]
        if isinstance(value, str):
            return MASK if is_secret_name(name) else self(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        return self(str(value))


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, any ``extra=`` fields, and ``exception`` when there is one.

    uvicorn's access lines also get ``client``, ``method``, ``path``, ``http_version`` and
    ``status`` as fields, so they can be queried without parsing the message.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which worker, with --workers N
            "message": self._redact(record.getMessage()),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            line.update(
                client=str(client),
                method=str(method),
                path=self._redact(str(path)),
                http_version=str(version),
                status=status,
            )
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_") and name not in line:
                line[name] = self._redact.value(name, value)
        # One line about an exception, never its stack trace (see budget_guard.failure);
        # stack_info, which is nothing but a trace, is left out.
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["exception"] = self._redact(f"{describe(error)}: {error}")
        elif record.exc_text:
            line["exception"] = self._redact(record.exc_text.strip().splitlines()[-1])
        return orjson.dumps(line, default=str).decode()


def json_logging_config(level: str = "info", secrets: Iterable[str] = ()) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` mapping that sends the root logger and uvicorn's
    loggers to stderr as JSON lines. Also valid as uvicorn's ``log_config``."""
    level_name = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": f"{__name__}.JsonLogFormatter", "secrets": sorted(set(secrets))}
        },
        "handlers": {"json": handler},
        "root": {"handlers": ["json"], "level": level_name},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": level_name, "propagate": False},
            "uvicorn.error": {"level": level_name},
            "uvicorn.access": {"handlers": ["json"], "level": level_name, "propagate": False},
            # httpx logs every upstream request at INFO; the access log already has them.
            "httpx": {"level": level_name if level_name in {"DEBUG", "TRACE"} else "WARNING"},
        },
    }


def configure_json_logging(level: str = "info", secrets: Iterable[str] = ()) -> None:
    """For a process budget-guard owns (the command); a host app configures its own logging."""
    logging.config.dictConfig(json_logging_config(level, secrets))


def secrets_in(
    settings: Settings, env: Mapping[str, str] | os._Environ[str] | None = None
) -> set[str]:
    """Every secret value the config holds or names through ``*_env`` keys, for masking."""
    env = os.environ if env is None else env
    found: set[str] = set()

    def walk(name: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(str(key), item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(name, item)
        elif isinstance(value, str):
            # A webhook URL is a capability (Slack's carry their token in the path).
            if is_secret_name(name) or name == "webhooks":
                found.add(value)
            elif name.lower().endswith("_env") and is_secret_name(name[:-4]):
                secret = env.get(value)
                if secret:
                    found.add(secret)
            else:
                match = _URL_PASSWORD.search(value)
                if match:
                    found.add(value[match.end(1) : match.end() - 1])

    walk("", settings.raw)
    return found


def redact_config(raw: Mapping[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The config with secret values masked, safe to log or print."""
    redactor = Redactor(secrets)
    return {str(k): redactor.value(str(k), v) for k, v in raw.items()}


def log_startup_config(settings: Settings, logger: logging.Logger | None = None) -> None:
    """One line at start-up with the effective config (after environment overrides)."""
    logger = logger or logging.getLogger("budget_guard.config")
    logger.info(
        "configuration loaded",
        extra={
            "event": "config_loaded",
            "source": settings.source,
            "config": redact_config(settings.raw, secrets_in(settings)),
        },
    )


class LogEvents(GuardEvents):
    """The guard's refusals as structured log lines (``event="request_rejected"``).

    Store faults and journal replays are logged where they happen (the middleware and the
    journal), with the error text this observer never sees.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("budget_guard.events")

    def rejected(self, company_id: UUID | None, reason: str) -> None:
        if self._log.isEnabledFor(logging.INFO):
            self._log.info(
                "request rejected: %s",
                reason,
                extra={
                    "event": "request_rejected",
                    "reason": reason,
                    "company_id": str(company_id) if company_id is not None else None,
                },
            )
