"""A catalogue of broken configs: each stops ``serve`` before it prints or listens, with one
line naming the mistake (and the nearest valid name for a typo), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from budget_guard.cli import main

from .processes import run_once

ADMIN = '[[auth.api_keys]]\nkey = "bg-admin-key-0001"\nrole = "admin"\n'
USER = (
    '[[auth.api_keys]]\nkey = "bg-user-key-0001"\n'
    'company_id = "6f1c1f5e-8c54-4c1e-9a57-6c2f3b0e2a11"\n'
)

CATALOGUE = [
    (
        '[porxy]\nupstream_url = "https://api.openai.com"\n',
        "[porxy]: unknown table; did you mean [proxy]?",
    ),
    ('[stroe]\nurl = "memory://"\n', "[stroe]: unknown table; did you mean [store]?"),
    ('[server]\nhots = "0.0.0.0"\n', "server.hots: unknown key; did you mean host?"),
    ("port = 8080\n", "port: unknown key (every setting belongs in a table)"),
    (
        '[proxy]\nupstrem_url = "https://x"\n',
        "proxy.upstrem_url: unknown key; did you mean upstream_url?",
    ),
    ("[budget]\nwindow = 30\n", "budget.window: unknown key; did you mean window_days?"),
    ("[budget.limts]\n", "[budget.limts]: unknown table; did you mean [budget.limits]?"),
    ('[budget.limits]\n"acme" = 5\n', 'budget.limits."acme": not a company Guid'),
    ("[guard]\nstrict = 1\n", "guard.strict: must be true or false"),
    (
        '[[guard.routes]]\nmethod = "GET"\npaht = "/v1/x"\n',
        "guard.routes[0].paht: unknown key; did you mean path?",
    ),
    ('[endpoint]\npaht = "/x"\n', "endpoint.paht: unknown key; did you mean path?"),
    (
        "[observability]\nmetric = false\n",
        "observability.metric: unknown key; did you mean metrics?",
    ),
    ('[store]\nurl = "redis://localhost:6379/abc"\n', "store.url: the path is the database number"),
    ('[store]\nurl = "redis://localhost:port/0"\n', "store.url: the port must be a number"),
    ('[store]\nurl = "mongodb://x"\n', "store.url: unsupported scheme 'mongodb'"),
    (
        '[proxy]\nupstream_url = "http://host/v1"\n',
        "proxy.upstream_url: upstream_url 'http://host/v1' ends in /v1",
    ),
    ('[proxy]\nupstream_api_key_env = "BG_TEST_NOT_SET"\n', "proxy.upstream_api_key_env"),
    (
        USER.replace("6f1c1f5e-8c54-4c1e-9a57-6c2f3b0e2a11", "acme"),
        "auth.api_keys[0].company_id: not a Guid",
    ),
    (USER + 'role = "owner"\n', 'auth.api_keys[0].role: expected "user" or "admin"'),
    (USER + USER, "auth.api_keys[1].key: same key as auth.api_keys[0]"),
    (
        '[[auth.api_keys]]\nkey_env = "BG_TEST_NOT_SET"\nrole = "admin"\n',
        "auth.api_keys[0].key_env",
    ),
    ('[auth.jwt]\nsecret = "s"\n', "auth.jwt.algorithms: missing"),
    ("[server]\nport = 99999\n", "server.port: must be a whole number from 0 to 65535"),
    ("[budget\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), CATALOGUE, ids=[m for _, m in CATALOGUE])
def test_a_broken_config_is_one_line_before_anything_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "budget-guard.toml"
    path.write_text(text)
    assert main(["serve", "--config", str(path), "--port", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no banner
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("budget-guard: config error: ")
    assert message in err


def test_check_refuses_the_same_way(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "budget-guard.toml"
    path.write_text('[porxy]\nupstream_url = "https://api.openai.com"\n')
    assert main(["check", "--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        "budget-guard: config error: [porxy]: unknown table; did you mean [proxy]?\n"
    )


def test_a_typod_table_with_workers_never_reaches_the_demo_upstream(tmp_path: Path) -> None:
    path = tmp_path / "budget-guard.toml"
    path.write_text(
        '[porxy]\nupstream_url = "https://api.openai.com"\n[store]\nurl = "redis://127.0.0.1:1/0"\n'
    )
    code, output = run_once("serve", "--config", str(path), "--workers", "2", "--port", "0")
    assert code == 2
    assert (
        output.strip()
        == "budget-guard: config error: [porxy]: unknown table; did you mean [proxy]?"
    )


def test_an_admin_key_needs_no_company(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "budget-guard.toml"
    path.write_text(ADMIN + USER)
    assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "bg-admin-key-0001" not in out and "bg-user-key-0001" not in out  # masked
    assert 'role = "admin"' in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("budget-guard 0.")
