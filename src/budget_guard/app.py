"""The complete guarded proxy, assembled from the library's parts.

``examples/proxy_app.py`` shows the same assembly by hand; this module is what the
``budget-guard`` command serves (and what its uvicorn workers import).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from budget_guard.alerts import AlertDispatcher, AlertSettings
from budget_guard.alerts.metrics import AlertCollector
from budget_guard.auth import (
    ApiKey,
    ApiKeyAuthenticator,
    Authenticator,
    Role,
    authenticator_from_config,
)
from budget_guard.budget.ledger import Ledger
from budget_guard.config import Settings, load_settings
from budget_guard.endpoint import EndpointSettings, UsageEndpoint
from budget_guard.endpoint.limits import LimitsEndpoint, limits_path
from budget_guard.endpoint.settings import DEFAULT_OPENAPI_PATH
from budget_guard.guard import BudgetGuardMiddleware, GuardSettings
from budget_guard.observability import (
    FanOutEvents,
    HealthChecks,
    LogEvents,
    ObservabilitySettings,
    PrometheusEvents,
    UsagePage,
    instrument_ledger,
)
from budget_guard.proxy.settings import ProxySettings

DEMO_COMPANY = uuid.UUID("00000000-0000-4000-8000-000000000001")
DEMO_KEY_ENV = "BUDGET_GUARD_DEMO_KEY"
UPSTREAM_ENV = "BUDGET_GUARD_DEMO_UPSTREAM_URL"


@dataclass(frozen=True)
class DemoKey:
    """The key a config without ``[auth]`` runs with, printed in the start-up banner."""

    key: str
    company_id: uuid.UUID = DEMO_COMPANY


def demo_key(env: dict[str, str] | os._Environ[str] | None = None) -> DemoKey:
    env = os.environ if env is None else env
    return DemoKey(env.get(DEMO_KEY_ENV) or f"bg-demo-{secrets.token_urlsafe(12)}")


def build_authenticator(settings: Settings, demo: DemoKey | None) -> Authenticator:
    if "auth" in settings.raw:
        base = Path(settings.source).parent if settings.source else None
        return authenticator_from_config(settings.table("auth"), base_dir=base)
    if demo is None:
        raise ValueError("no [auth] table and no demo key")
    return ApiKeyAuthenticator([ApiKey(demo.key, demo.company_id, Role.USER, name="demo")])


def build_app(
    settings: Settings,
    *,
    upstream_url: str | None = None,
    authenticator: Authenticator | None = None,
    ledger: Ledger | None = None,
    demo: DemoKey | None = None,
) -> Starlette:
    """The guarded proxy: usage endpoint + guard middleware + upstream proxy + health,
    metrics and the usage page."""
    observability = ObservabilitySettings.from_table(settings.table("observability"))
    ledger = ledger or settings.ledger()
    metrics = None
    if observability.metrics:
        metrics = PrometheusEvents(company_labels=observability.company_labels)
        ledger = instrument_ledger(ledger, metrics)
    authenticator = authenticator or build_authenticator(settings, demo)
    guard = GuardSettings.from_table(settings.table("guard"))
    endpoint_settings = serve_endpoint_settings(settings)
    proxy = ProxySettings.from_table(settings.table("proxy")).build(upstream_url)
    events = FanOutEvents(metrics, LogEvents()) if metrics else LogEvents()
    endpoint = UsageEndpoint(
        ledger,
        authenticator,
        settings=endpoint_settings,
        events=events,
        limits_path=limits_path(endpoint_settings),
    )

    health = HealthChecks(ledger)
    dispatcher = _alerts(settings, ledger, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await proxy.startup()
        if dispatcher is not None:
            await dispatcher.start()
        settle_heap()
        try:
            yield
        finally:
            if dispatcher is not None:
                await dispatcher.aclose()
            await proxy.aclose()
            await ledger.aclose()

    routes = [
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Route(
            endpoint_settings.path + "/ui", UsagePage(ledger, authenticator, events=events).endpoint
        ),
    ]
    if endpoint_settings.enabled:
        limits = LimitsEndpoint(ledger, authenticator, settings=endpoint_settings)
        routes.append(Route(limits_path(endpoint_settings), limits))
    if metrics is not None:
        routes.append(Route(observability.metrics_path, metrics.endpoint))
    for prefix in guard.paths:
        routes.append(Route(prefix.rstrip("/") + "/{path:path}", proxy))
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(
                BudgetGuardMiddleware,
                ledger=ledger,
                authenticator=authenticator,
                settings=guard,
                usage_endpoint=endpoint if endpoint_settings.enabled else False,
                events=events,
            )
        ],
        lifespan=lifespan,
    )


def _alerts(
    settings: Settings, ledger: Ledger, metrics: PrometheusEvents | None
) -> AlertDispatcher | None:
    """The ``[alerts]`` table: the store decides crossings, this process delivers them."""
    alerts = AlertSettings.from_table(settings.table("alerts"))
    if not alerts.enabled:
        return None
    dispatcher = AlertDispatcher(
        webhooks=alerts.webhooks,
        secret=alerts.secret,
        queue_size=alerts.queue_size,
        max_attempts=alerts.max_attempts,
        backoff_seconds=alerts.backoff_seconds,
        timeout_seconds=alerts.timeout_seconds,
    )
    ledger.watch_thresholds(alerts.thresholds, dispatcher.offer)
    if metrics is not None:
        metrics.registry.register(AlertCollector(dispatcher))
    return dispatcher


FULL_COLLECTION_THRESHOLD = 100
"""Collections of the middle generation between two full ones (CPython's default: 10)."""


def settle_heap() -> None:
    """Take what start-up built out of the garbage collector's way (``gc.freeze``).

    A full collection walks every tracked object and holds the event loop meanwhile: with
    the modules and the app loaded that is some 50,000 objects before a single request. Long
    streams promote their objects to the oldest generation, so full collections come under
    exactly a gateway's load; measured at 300 streams on one core, they held the loop for
    55-70 ms and set the p99 chunk latency at 9-19 ms (3 runs); frozen, 23-30 ms and 4-7 ms
    (``docs/benchmarks.md``). Collected first, so no start-up garbage is kept for good.

    Then full collections are made ten times rarer (``FULL_COLLECTION_THRESHOLD``): the
    objects of every open stream sit in the oldest generation, and each full collection
    walks them all: 43-91 ms at 500 streams, several a minute of streaming. With those
    pauses the guard's p99 chunk latency at 500 streams was 29-35 ms (the median of three
    rounds), without them 3-4 ms.
    The cyclic garbage a request leaves (about 15 objects) is found by the young
    collections, which are unchanged; about 0.3 objects a request reach the oldest
    generation and wait longer for theirs (measured under ``wrk``: RSS alike either way).
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_THRESHOLD)


def serve_endpoint_settings(settings: Settings) -> EndpointSettings:
    """``[endpoint]`` as ``budget-guard serve`` runs it: the app is budget-guard's own, so the
    OpenAPI document takes the conventional ``/openapi.json`` unless the file says otherwise
    (mounted in a host app it stays under the endpoint's path)."""
    table = settings.table("endpoint")
    endpoint = EndpointSettings.from_table(table)
    if "openapi_path" not in table:
        endpoint = dataclasses.replace(endpoint, openapi_path=DEFAULT_OPENAPI_PATH)
    return endpoint


def app_from_env() -> Starlette:
    """The factory each uvicorn worker calls (``--workers``): config from the environment."""
    settings = load_settings()
    demo = DemoKey(os.environ[DEMO_KEY_ENV]) if DEMO_KEY_ENV in os.environ else None
    return build_app(settings, upstream_url=os.environ.get(UPSTREAM_ENV), demo=demo)
