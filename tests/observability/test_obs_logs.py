"""The log lines: one JSON object per event, standard logging underneath, no secret in them."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from obs_support import ADMIN_KEY, CHAT, KEY_A, KEY_B, bearer, guarded_app
from tests.proxy.servers import serve
from tests.redis_servers import RedisServer

from budget_guard.config import settings_from_mapping
from budget_guard.observability import JsonLogFormatter, log_startup_config, secrets_in
from budget_guard.observability.logs import Redactor


@contextmanager
def json_lines(
    logger_name: str = "budget_guard", secrets: tuple[str, ...] = ()
) -> Iterator[list[dict]]:
    """Capture a logger's records as the JSON lines the command would write."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter(secrets))
    logger = logging.getLogger(logger_name)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        text = stream.getvalue()
        assert text.endswith("\n") or not text
        lines.extend(json.loads(line) for line in text.splitlines())
        for key in (KEY_A, KEY_B, ADMIN_KEY, "bg-never-valid-key-0123456789"):
            assert key not in text


def test_a_record_is_one_json_line_with_its_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter(["sk-known-secret-value"]))
    logger = logging.getLogger("budget_guard.test_shape")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "store at redis://u:hunter2@db:6379 said no for %s",
            "sk-known-secret-value",
            extra={"event": "probe", "tokens": 12, "upstream_api_key": "abc-secret"},
        )
        try:
            raise RuntimeError("Authorization: Bearer leaked-token-123")
        except RuntimeError:
            logger.exception("failed")
        logger.warning("with a stack", stack_info=True)
    finally:
        logger.removeHandler(handler)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "warning"
    assert first["logger"] == "budget_guard.test_shape"
    assert first["time"].endswith("Z")
    assert first["message"] == "store at redis://u:***@db:6379 said no for ***"
    assert first["event"] == "probe" and first["tokens"] == 12
    assert first["upstream_api_key"] == "***"
    assert second["message"] == "failed"
    assert "RuntimeError" in second["exception"]
    assert "leaked-token-123" not in second["exception"]
    assert "Bearer ***" in second["exception"]
    # One line saying what and where, never a stack trace.
    assert "Traceback" not in second["exception"] and "\n" not in second["exception"]
    assert "test_obs_logs.py" in second["exception"]
    assert third["message"] == "with a stack" and "stack" not in third


def test_redactor_masks_credential_shapes_and_known_values() -> None:
    redact = Redactor(["my-long-secret", "abc"])
    assert redact("x-api-key: sk-zzz123456") == "x-api-key: ***"
    assert redact("BEARER abc.def.ghi") == "BEARER ***"
    assert redact("found my-long-secret here") == "found *** here"
    # Too short to search for without mangling ordinary text.
    assert redact("abc") == "abc"


async def test_rejections_and_store_faults_are_json_lines_without_keys(upstream_url: str) -> None:
    with RedisServer() as redis:
        app = guarded_app(
            upstream_url,
            store={"url": redis.url, "socket_timeout_seconds": 1},
            budget={"limits": {"7c9e6679-7425-40de-944b-e07fc1f90ae7": 0}},
        )
        with json_lines() as lines, serve(app) as url:
            async with httpx.AsyncClient(base_url=url, timeout=15) as client:
                wrong = bearer("bg-never-valid-key-0123456789")
                assert (
                    await client.post("/v1/chat/completions", json=CHAT, headers=wrong)
                ).status_code == 401
                refused = await client.post(
                    "/v1/chat/completions", json=CHAT, headers=bearer(KEY_B)
                )
                assert refused.status_code == 429
                redis.stop()
                served = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_A))
                assert served.status_code == 200

    rejected = [line for line in lines if line.get("event") == "request_rejected"]
    assert [(r["reason"], r["company_id"]) for r in rejected] == [
        ("unauthenticated", None),
        ("budget", "7c9e6679-7425-40de-944b-e07fc1f90ae7"),
    ]
    assert all(r["level"] == "info" and r["logger"] == "budget_guard.events" for r in rejected)
    faults = [
        line
        for line in lines
        if line["logger"] == "budget_guard.guard" and "unavailable" in line["message"]
    ]
    assert {f["level"] for f in faults} == {"warning"}
    assert any("fail-open" in f["message"] for f in faults)
    assert any("journaled" in f["message"] for f in faults)
    for line in lines:
        assert set(line) >= {"time", "level", "logger", "message"}


def test_startup_config_line_redacts_every_secret(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OBS_TEST_JWT_SECRET", "jwt-secret-from-the-environment")
    settings = settings_from_mapping(
        {
            "store": {"url": "redis://app:redis-password-42@127.0.0.1:6390/0"},
            "auth": {
                "api_keys": [
                    {
                        "key": KEY_A,
                        "company_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                        "name": "acme",
                    }
                ],
                "jwt": {"secret_env": "OBS_TEST_JWT_SECRET", "algorithms": ["HS256"]},
            },
            "proxy": {"upstream_api_key": "sk-upstream-key-987654321"},
            "alerts": {"webhooks": ["https://hooks.example.com/services/T0/B0/hook-token-xyz"]},
        },
        source="/etc/budget-guard.toml",
    )
    secrets = secrets_in(settings)
    assert {
        KEY_A,
        "jwt-secret-from-the-environment",
        "sk-upstream-key-987654321",
        "redis-password-42",
        "https://hooks.example.com/services/T0/B0/hook-token-xyz",  # a capability URL
    } <= secrets
    with json_lines("budget_guard.config", tuple(secrets)) as lines:
        log_startup_config(settings)
        # Later lines mentioning a configured secret are masked too.
        logging.getLogger("budget_guard.config").info(
            "env says %s", os.environ["OBS_TEST_JWT_SECRET"]
        )
    (line, echoed) = lines
    assert line["event"] == "config_loaded" and line["source"] == "/etc/budget-guard.toml"
    config = line["config"]
    assert config["auth"]["api_keys"][0] == {
        "key": "***",
        "company_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "name": "acme",
    }
    assert config["auth"]["jwt"]["secret_env"] == "OBS_TEST_JWT_SECRET"
    assert config["proxy"]["upstream_api_key"] == "***"
    assert config["store"]["url"] == "redis://app:***@127.0.0.1:6390/0"
    assert echoed["message"] == "env says ***"
    text = json.dumps(lines)
    for secret in secrets:
        assert secret not in text


def test_the_serve_command_writes_json_lines_without_secrets(tmp_path: Path) -> None:
    config = tmp_path / "budget-guard.toml"
    config.write_text(
        f"""
[auth]
[[auth.api_keys]]
key = "{KEY_A}"
company_id = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
name = "acme"

[proxy]
upstream_api_key = "sk-upstream-key-987654321"
transport = "httpx"
""",
        encoding="utf-8",
    )
    command = [
        sys.executable,
        "-m",
        "budget_guard.cli",
        "serve",
        "--config",
        str(config),
        "--demo",
        "--port",
        "0",
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert banner.startswith("budget-guard ") and " listening on " in banner, banner
        base = banner.split()[-1]
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the command never became ready"
            time.sleep(0.05)
        assert (
            httpx.post(
                f"{base}/v1/chat/completions", json=CHAT, headers=bearer(KEY_A), timeout=10
            ).status_code
            == 200
        )
        assert (
            httpx.post(
                f"{base}/v1/chat/completions",
                json=CHAT,
                headers=bearer("bg-never-valid-key-0123456789"),
            ).status_code
            == 401
        )
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines[0]["event"] == "config_loaded"
    assert lines[0]["config"]["proxy"]["upstream_api_key"] == "***"
    assert any(line.get("event") == "request_rejected" for line in lines)
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert {"client", "method", "path", "status"} <= set(access[0])
    assert any(a["path"] == "/v1/chat/completions" and a["status"] == 401 for a in access)
    for secret in (KEY_A, "sk-upstream-key-987654321", "bg-never-valid-key-0123456789"):
        assert secret not in err and secret not in out
