"""The ``[server]`` table: defaults, refusals naming the key, the descriptor-limited cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from budget_guard.budget.window import ConfigError
from budget_guard.server.settings import MIN_CONNECTIONS, ServerSettings

from .processes import run_once


def test_defaults() -> None:
    settings = ServerSettings.from_table({})
    assert settings.header_timeout_seconds == 10.0
    assert settings.keep_alive_seconds == 5.0
    assert settings.max_connections == 2048
    assert settings.http == "httptools"


@pytest.mark.parametrize(
    ("table", "names"),
    [
        ({"port": "80"}, "server.port"),
        ({"port": 70000}, "server.port"),
        ({"host": ""}, "server.host"),
        ({"header_timeout_seconds": 0}, "server.header_timeout_seconds"),
        ({"keep_alive_seconds": True}, "server.keep_alive_seconds"),
        ({"max_connections": 3}, "server.max_connections"),
        ({"http": "zttp"}, "server.http"),
        ({"header_timeout": 5}, "server.header_timeout: unknown key"),
    ],
)
def test_bad_values_name_the_key(table: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        ServerSettings.from_table(table)


def test_the_cap_stays_below_the_descriptor_limit() -> None:
    settings = ServerSettings(max_connections=2048)
    assert settings.connection_bound(20_000, 500) == 2048
    assert settings.connection_bound(1024, 500) == 524
    assert settings.connection_bound(256, 500) == MIN_CONNECTIONS


def test_an_unknown_server_key_stops_serve(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nmax_conections = 10\n")
    code, output = run_once("serve", "--config", str(path), "--demo")
    assert code == 2
    assert "server.max_conections: unknown key" in output and "Traceback" not in output
