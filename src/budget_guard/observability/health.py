"""``/healthz`` and ``/readyz`` for orchestrators and load balancers.

Liveness says only that the process answers: restarting it would not fix a Redis outage, so
the store is not part of it. Readiness says whether this instance can guard requests as
configured: the store answers and the token encodings are built (a damaged shipped table would
otherwise fail every request).
"""

from __future__ import annotations

import logging

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse

from budget_guard.budget.ledger import Ledger
from budget_guard.counting import preload_encodings
from budget_guard.encodings import EncodingIntegrityError
from budget_guard.stores import StoreError

__all__ = ["HealthChecks"]

log = logging.getLogger("budget_guard.health")

_NO_STORE = {"cache-control": "no-store"}


class HealthChecks:
    """Starlette endpoints: ``Route("/healthz", checks.healthz)``, ``Route("/readyz",
    checks.readyz)``."""

    def __init__(self, ledger: Ledger, *, store_timeout: float = 2.0) -> None:
        self.ledger = ledger
        self.store_timeout = store_timeout
        self._encodings_ready = False

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"}, headers=_NO_STORE)

    async def readyz(self, request: Request) -> JSONResponse:
        checks = {"store": await self._store(), "encodings": await self._encodings()}
        ready = all(state == "ok" for state in checks.values())
        return JSONResponse(
            {"ready": ready, "checks": checks}, status_code=200 if ready else 503, headers=_NO_STORE
        )

    async def _store(self) -> str:
        # A probe must answer within its own timeout even when the store hangs.
        with anyio.move_on_after(self.store_timeout):
            try:
                await self.ledger.store.ping()
            except StoreError:
                return "unavailable"
            return "ok"
        return "timeout"

    async def _encodings(self) -> str:
        if not self._encodings_ready:
            # Already built at start-up by the middleware's lifespan, so this is instant;
            # an app without that lifespan becomes ready once they are built.
            try:
                await anyio.to_thread.run_sync(preload_encodings)
            except EncodingIntegrityError as exc:
                log.error("token encodings are damaged: %s", exc)
                return "damaged"
            self._encodings_ready = True
        return "ok"
