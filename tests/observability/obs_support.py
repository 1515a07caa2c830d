"""Shared pieces of the observability tests: keys, companies, the app as the command builds
it, and reading a Prometheus scrape."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from budget_guard.app import build_app
from budget_guard.auth import ApiKey, ApiKeyAuthenticator, Role
from budget_guard.budget.ledger import Ledger
from budget_guard.config import Settings, settings_from_mapping

COMPANY_A = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
COMPANY_B = uuid.UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7")
KEY_A = "bg-obs-key-company-a-0123456789"
KEY_B = "bg-obs-key-company-b-0123456789"
ADMIN_KEY = "bg-obs-key-admin-0123456789"
PAGE = "/assistant/ai-chat/usage/ui"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "How are you?"}]}


def authenticator() -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(
        [
            ApiKey(KEY_A, COMPANY_A, name="a"),
            ApiKey(KEY_B, COMPANY_B, name="b"),
            ApiKey(ADMIN_KEY, COMPANY_A, Role.ADMIN, name="admin"),
        ]
    )


def bearer(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def settings(**tables: Mapping[str, Any]) -> Settings:
    return settings_from_mapping({"proxy": {"transport": "httpx"}, **tables})


def guarded_app(
    upstream_url: str, *, ledger: Ledger | None = None, **tables: Mapping[str, Any]
) -> Starlette:
    """The app ``budget-guard serve`` runs, with the test keys."""
    return build_app(
        settings(**tables), upstream_url=upstream_url, authenticator=authenticator(), ledger=ledger
    )


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text exposition, keyed by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class Bars(HTMLParser):
    """The chart as the DOM has it: each ``rect.bar`` and the limit marks."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str]] = []
        self.limit: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        classes = values.get("class", "").split()
        if tag == "rect" and "bar" in classes:
            self.bars.append(values)
        if "limit" in classes or "off-scale" in classes:
            self.limit.append(values)

    @classmethod
    def of(cls, html: str) -> Bars:
        parser = cls()
        parser.feed(html)
        return parser

    def per_day(self) -> dict[str, int]:
        return {bar["data-date"]: int(bar["data-tokens"]) for bar in self.bars}
