"""``budget-guard serve --workers 2`` on one Redis: two processes, one alert per crossing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from budget_guard.alerts import verify
from tests.cli.processes import serving
from tests.limits.support import ADMIN_KEY, COMPANY, SECRET, USER_KEY, receiver
from tests.limits.test_alerts_webhooks import payloads, record_concurrently, wait_for


def test_two_worker_processes_crossing_together_deliver_one_event(
    tmp_path: Path, redis_url: str
) -> None:
    config = tmp_path / "budget-guard.toml"
    with receiver() as (hook, state):
        config.write_text(
            f"""
[budget]
default_token_limit = 1000

[store]
url = "{redis_url}"
prefix = "alerts-workers-{tmp_path.name}:"

[proxy]
upstream_url = "http://127.0.0.1:9"

[[auth.api_keys]]
key = "{USER_KEY}"
company_id = "{COMPANY}"
role = "user"

[[auth.api_keys]]
key = "{ADMIN_KEY}"
company_id = "{COMPANY}"
role = "admin"
name = "ops"

[alerts]
thresholds = [0.8]
webhooks = ["{hook}"]
secret = "{SECRET}"
""",
            encoding="utf-8",
        )
        with serving("--config", str(config), "--workers", "2", ready_path="/readyz") as running:
            asyncio.run(record_concurrently([running.url], 60, 25))
            wait_for(state, 1, settle=1.0)
    assert len(state.received) == 1
    headers, body = state.received[0]
    assert verify(SECRET, headers, body)
    [event] = payloads(state)
    assert event["threshold"] == 0.8 and event["companyId"] == COMPANY.hex
