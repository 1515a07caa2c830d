"""The configuration file: defaults, overrides, and clear errors naming the key."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from budget_guard.budget.clock import ManualClock
from budget_guard.budget.policy import BudgetPolicy
from budget_guard.budget.window import ConfigError, Window
from budget_guard.config import load_settings, settings_from_mapping
from budget_guard.stores import Dedupe, IdempotencyKeysExhausted, MemoryStore

COMPANY = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def test_no_file_means_the_embedded_defaults() -> None:
    settings = load_settings(env={})
    assert settings.budget.window.days == 30
    assert settings.budget.window.bucket_seconds == 6 * 3600
    assert settings.budget.default_token_limit == 1_000_000
    assert settings.store.url == "memory://"
    assert isinstance(settings.ledger().store, MemoryStore)


def test_the_documented_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "bg.toml"
    path.write_text(
        f"""
[budget]
window_days = 7
default_token_limit = 2000
[budget.limits]
"{COMPANY}" = 50000
[store]
url = "memory://"
"""
    )
    settings = load_settings(path, env={})
    assert settings.budget.window == Window(7)
    assert settings.budget.limits == {uuid.UUID(COMPANY): 50000}
    assert settings.source == str(path)


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bg.toml"
    path.write_text("[budget]\nwindow_days = 7\n")
    settings = load_settings(
        env={
            "BUDGET_GUARD_CONFIG": str(path),
            "BUDGET_GUARD_DEFAULT_TOKEN_LIMIT": "77",
            "BUDGET_GUARD_STORE_URL": "redis://127.0.0.1:1/0",
        }
    )
    assert settings.budget.window.days == 7
    assert settings.budget.default_token_limit == 77
    assert settings.store.url == "redis://127.0.0.1:1/0"


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"budget": {"window_days": 0}}, "budget.window_days"),
        ({"budget": {"window_days": "30"}}, "budget.window_days"),
        ({"budget": {"default_token_limit": 2**31}}, "budget.default_token_limit"),
        ({"budget": {"default_token_limit": -1}}, "budget.default_token_limit"),
        ({"budget": {"limits": {"not-a-guid": 5}}}, "not-a-guid"),
        ({"budget": {"limits": {COMPANY: 2**31}}}, COMPANY),
        ({"budget": {"bucket_seconds": 7}}, "budget.bucket_seconds"),
        ({"budget": {"windw_days": 3}}, "budget.windw_days"),
        ({"store": {"url": "postgres://x"}}, "store.url"),
        ({"store": {"url": 5}}, "store.url"),
        ({"store": {"max_companies": 0}}, "store.max_companies"),
        ({"store": {"max_idempotency_keys_per_company": 0}}, "store.max_idempotency_keys_per"),
        ({"store": {"max_idempotency_keys_per_company": "5"}}, "store.max_idempotency_keys_per"),
        ({"store": {"max_idempotency_keys_per_company": True}}, "store.max_idempotency_keys_per"),
        ({"store": {"max_idempotency_keys_per_company": 1.5}}, "store.max_idempotency_keys_per"),
        ({"store": {"max_idempotency_keys": -1}}, "store.max_idempotency_keys"),
        ({"store": {"max_objects": 0}}, "store.max_objects"),
        ({"store": {"max_objects": "1e6"}}, "store.max_objects"),
        ({"store": {"max_idempotency_key_per_company": 5}}, "store.max_idempotency_key_per"),
        (
            {"store": {"max_idempotency_keys_per_company": 10, "max_idempotency_keys": 10}},
            "store.max_idempotency_keys_per_company",
        ),
    ],
)
def test_a_bad_value_is_an_error_naming_the_key(data: dict, names: str) -> None:
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        settings_from_mapping(data).ledger()


async def test_the_per_company_key_bound_reaches_the_store() -> None:
    data = {"store": {"max_idempotency_keys_per_company": 1, "max_idempotency_keys": 5}}
    store = settings_from_mapping(data).ledger().store
    company = uuid.uuid4()
    await store.record(company, 1, 10, dedupe=Dedupe("a", bounded=True))
    with pytest.raises(IdempotencyKeysExhausted):
        await store.record(company, 1, 10, dedupe=Dedupe("b", bounded=True))
    assert settings_from_mapping({}).store.max_idempotency_keys_per_company == 100_000


async def test_the_object_bound_reaches_the_memory_store() -> None:
    store = settings_from_mapping({"store": {"max_objects": 1}}).ledger().store
    first, second = uuid.uuid4(), uuid.uuid4()
    await store.remember_object(first, "file-1", 60)
    await store.remember_object(second, "file-2", 60)
    assert await store.object_owner("file-1") is None
    assert await store.object_owner("file-2") == second
    assert settings_from_mapping({}).store.max_objects == 1_000_000


def test_a_missing_or_broken_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[budget\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, env={})


async def test_provider_limits_are_cached_with_a_ttl() -> None:
    calls: list[uuid.UUID] = []

    async def provider(company: uuid.UUID) -> int | None:
        calls.append(company)
        return 500

    clock = ManualClock()
    policy = BudgetPolicy(provider=provider, provider_cache_ttl=60, clock=clock)
    cid = uuid.uuid4()
    assert await policy.limit_for(cid) == 500
    assert await policy.limit_for(cid) == 500
    assert len(calls) == 1
    clock.advance(61)
    assert await policy.limit_for(cid) == 500
    assert len(calls) == 2


async def test_config_limits_win_over_the_provider_and_bad_answers_use_the_default() -> None:
    async def provider(company: uuid.UUID) -> int | None:
        return -5

    configured = uuid.uuid4()
    policy = BudgetPolicy(default_token_limit=10, limits={configured: 3}, provider=provider)
    assert await policy.limit_for(configured) == 3
    assert await policy.limit_for(uuid.uuid4()) == 10
