"""With ``--workers 2`` ``/metrics`` is the server's, not the worker a scrape happens to reach:
every counter and histogram is summed over the workers, so repeated scrapes never go back and
they add up to the requests sent. Log lines say which worker wrote them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from tests.cli.processes import clean_environment, serving

KEY = "bg-demo-metrics-workers-01"
CHATS = 16
RECORDS = 16


def _samples(text: str, name: str) -> float:
    """The sum of every sample of ``name`` (any labels)."""
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.M)
    return sum(float(value) for value in pattern.findall(text))


def test_metrics_are_summed_over_the_workers(tmp_path: Path, redis_url: str) -> None:
    config = tmp_path / "budget-guard.toml"
    config.write_text(
        f'[store]\nurl = "{redis_url}"\nprefix = "metrics-workers-{tmp_path.name}:"\n'
    )
    env = clean_environment()
    env["BUDGET_GUARD_DEMO_KEY"] = KEY
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    args = ("--config", str(config), "--demo", "--workers", "2")
    with serving(*args, env=env, ready_path="/readyz") as server:
        headers = {"Authorization": f"Bearer {KEY}"}
        tokens = 0
        scrapes = []
        for index in range(max(CHATS, RECORDS)):
            # A new connection each time, so the kernel hands them to both workers.
            if index < CHATS:
                chat = httpx.post(
                    server.url + "/v1/chat/completions",
                    headers=headers,
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
                )
                assert chat.status_code == 200, chat.text
            if index < RECORDS:
                record = httpx.post(
                    server.url + "/assistant/ai-chat/usage",
                    headers=headers,
                    json={"tokensUsed": index + 1},
                )
                assert record.status_code == 200, record.text
                tokens += index + 1
            scrapes.append(httpx.get(server.url + "/metrics").text)
        for _ in range(6):
            scrapes.append(httpx.get(server.url + "/metrics").text)

        admitted = [_samples(s, "budget_guard_requests_admitted_total") for s in scrapes]
        explicit = [
            _samples(s, 'budget_guard_tokens_recorded_total{source="explicit"}') for s in scrapes
        ]
        store_ops = [_samples(s, "budget_guard_store_operation_seconds_count") for s in scrapes]
        for series in (admitted, explicit, store_ops):
            assert series == sorted(series), series  # never back, whichever worker answered
        assert admitted[-1] == CHATS
        assert explicit[-1] == tokens

        pids = set()
        for line in server.log().splitlines():
            if line.startswith("{"):
                pids.add(json.loads(line)["pid"])
        assert len(pids - {server.pid}) == 2, pids  # both workers logged, each with its pid
