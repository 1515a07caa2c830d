"""No key, secret or token ever shows up in a repr, an exception or a log line."""

import logging
import time
import traceback
from uuid import UUID

import jwt
import pytest

from budget_guard.auth import (
    ApiKey,
    ApiKeyAuthenticator,
    AuthConfigError,
    JwtAuthenticator,
    authenticator_from_config,
)

COMPANY_A = UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
KEY = "bg-live-SECRET-VALUE-4242"
JWT_SECRET = "JWT-SECRET-VALUE-that-is-32-bytes-long"
SHORT_SECRET = "SHORT-JWT-SECRET"


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
        assert secret.lower() not in text.lower()


def test_api_key_repr_and_str_omit_the_key() -> None:
    api_key = ApiKey(KEY, COMPANY_A, name="company-a")
    assert_hidden(repr(api_key) + str(api_key), KEY)
    assert "company-a" in repr(api_key)


def test_authenticator_reprs_omit_keys_and_secrets() -> None:
    authenticator = authenticator_from_config(
        {
            "api_keys": [{"key": KEY, "company_id": str(COMPANY_A), "name": "company-a"}],
            "jwt": {"secret": JWT_SECRET, "algorithms": ["HS256"]},
        }
    )
    text = repr(authenticator) + str(authenticator)
    assert "company-a" in text and "HS256" in text
    assert_hidden(text, KEY, JWT_SECRET)
    api_keys = ApiKeyAuthenticator([ApiKey(KEY, COMPANY_A)])
    assert_hidden(repr(api_keys) + str(api_keys), KEY)


def _full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error, chain=True)) + repr(error.args)


@pytest.mark.parametrize(
    "section",
    [
        {"api_keys": [{"key": KEY, "company_id": "not-a-guid"}]},
        {"api_keys": [{"key": KEY, "company_id": str(COMPANY_A), "role": KEY}]},
        {"api_keys": [{"key": f"{KEY} with space", "company_id": str(COMPANY_A)}]},
        {"api_keys": [{"key": KEY, "company_id": str(COMPANY_A)}] * 2},
        {"api_keys": [{"key": KEY, "key_env": KEY, "company_id": str(COMPANY_A)}]},
        {"jwt": {"secret": SHORT_SECRET, "algorithms": ["HS256"]}},
        {"jwt": {"secret": JWT_SECRET, "algorithms": ["RS256"]}},
        {"jwt": {"secret": JWT_SECRET, "algorithms": ["HS256"], "leeway": "x"}},
    ],
)
def test_config_errors_never_contain_the_key(section: dict) -> None:
    with pytest.raises(AuthConfigError) as caught:
        authenticator_from_config(section)
    assert_hidden(_full_text(caught.value), KEY, JWT_SECRET, SHORT_SECRET)


def test_key_from_an_unusable_environment_value_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BG_KEY", f"{KEY} has spaces")
    with pytest.raises(AuthConfigError, match="BG_KEY") as caught:
        authenticator_from_config({"api_keys": [{"key_env": "BG_KEY", "company_id": "x"}]})
    assert_hidden(_full_text(caught.value), KEY)


def test_constructor_errors_never_contain_the_key() -> None:
    errors = []
    for build in (
        lambda: ApiKeyAuthenticator([ApiKey(KEY + "\n", COMPANY_A)]),
        lambda: ApiKeyAuthenticator([ApiKey(KEY, COMPANY_A)] * 2),
        lambda: JwtAuthenticator(key=SHORT_SECRET, algorithms=["HS256"]),
        lambda: JwtAuthenticator(key=JWT_SECRET, algorithms=["RS256"]),
    ):
        with pytest.raises(ValueError) as caught:
            build()
        errors.append(_full_text(caught.value))
    assert_hidden("".join(errors), KEY, JWT_SECRET, SHORT_SECRET)


async def test_no_key_or_token_appears_in_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    authenticator = authenticator_from_config(
        {
            "api_keys": [{"key": KEY, "company_id": str(COMPANY_A), "name": "company-a"}],
            "jwt": {"secret": JWT_SECRET, "algorithms": ["HS256"]},
        }
    )
    now = int(time.time())
    good_token = jwt.encode(
        {"sub": "dave", "company_id": str(COMPANY_A), "exp": now + 60}, JWT_SECRET, "HS256"
    )
    expired_token = jwt.encode(
        {"sub": "dave", "company_id": str(COMPANY_A), "exp": now - 60}, JWT_SECRET, "HS256"
    )
    forged_token = jwt.encode(
        {"sub": "dave", "company_id": str(COMPANY_A), "exp": now + 60}, "x" * 40, "HS256"
    )
    no_company = jwt.encode({"sub": "dave", "exp": now + 60}, JWT_SECRET, "HS256")
    wrong_key = KEY + "-WRONG"
    for headers in (
        {"authorization": f"Bearer {KEY}"},
        {"x-api-key": KEY},
        {"x-api-key": wrong_key},
        {"authorization": f"Bearer {wrong_key}"},
        {"authorization": f"Bearer {good_token}"},
        {"authorization": f"Bearer {expired_token}"},
        {"authorization": f"Bearer {forged_token}"},
        {"authorization": f"Bearer {no_company}"},
    ):
        await authenticator.authenticate(headers)

    assert caplog.records, "authentication decisions are logged at DEBUG"
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "company-a" in logged  # the non-secret name is what identifies a key in logs
    assert_hidden(logged, KEY, wrong_key, JWT_SECRET)
    for token in (good_token, expired_token, forged_token, no_company):
        assert token not in logged
        assert token.split(".")[2] not in logged
