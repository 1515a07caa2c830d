"""Building the authenticator from the parsed TOML ``[auth]`` table.

Every error names the exact key (``auth.api_keys[1].company_id``) so a person can fix the file
from the one-line message, and no message ever repeats a key or secret value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from budget_guard.auth.api_keys import ApiKey, ApiKeyAuthenticator
from budget_guard.auth.composition import ChainAuthenticator
from budget_guard.auth.credentials import is_credential_text
from budget_guard.auth.guids import parse_guid
from budget_guard.auth.identity import Authenticator, Role
from budget_guard.auth.jwt_bearer import JwtAuthenticator, check_algorithms, is_hmac
from budget_guard.budget.window import ConfigError
from budget_guard.config_tables import declare_table, reject_unknown

_SECTION_KEYS = frozenset({"api_keys", "jwt"})
_API_KEY_KEYS = frozenset({"key", "key_env", "company_id", "role", "name"})
_JWT_KEYS = frozenset(
    {
        "secret",
        "secret_env",
        "public_key_file",
        "algorithms",
        "audience",
        "issuer",
        "company_claim",
        "role_claim",
        "admin_roles",
        "leeway",
    }
)


declare_table("auth", _SECTION_KEYS)
declare_table("auth.api_keys", _API_KEY_KEYS, array=True)
declare_table("auth.jwt", _JWT_KEYS)


class AuthConfigError(ConfigError):
    """The ``[auth]`` configuration is unusable; the message starts with the offending key."""


def authenticator_from_config(
    section: Mapping[str, Any], *, base_dir: Path | None = None
) -> Authenticator:
    """The authenticator the ``[auth]`` table describes: API keys, a JWT verifier, or both
    (API keys tried first, as they are cheaper to check).

    ``base_dir`` resolves a relative ``public_key_file`` (pass the config file's directory).
    """
    _require_table(section, "auth")
    _reject_unknown(section, "auth", _SECTION_KEYS)
    authenticators: list[Authenticator] = []
    if "api_keys" in section:
        authenticators.append(_api_keys(section["api_keys"]))
    if "jwt" in section:
        authenticators.append(_jwt(section["jwt"], base_dir))
    if not authenticators:
        raise AuthConfigError("auth: configure [[auth.api_keys]] or [auth.jwt] (or both)")
    return authenticators[0] if len(authenticators) == 1 else ChainAuthenticator(authenticators)


def _api_keys(entries: Any) -> ApiKeyAuthenticator:
    if not isinstance(entries, list) or not entries:
        raise AuthConfigError("auth.api_keys: expected one or more [[auth.api_keys]] tables")
    keys: list[ApiKey] = []
    first_index_of: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"auth.api_keys[{index}]"
        _require_table(entry, where)
        _reject_unknown(entry, where, _API_KEY_KEYS)
        key = _key_value(entry, where)
        if key in first_index_of:
            raise AuthConfigError(f"{where}.key: same key as auth.api_keys[{first_index_of[key]}]")
        first_index_of[key] = index
        role_text = _string(entry, where, "role") or Role.USER.value
        if role_text.lower() not in {r.value for r in Role}:
            raise AuthConfigError(f'{where}.role: expected "user" or "admin"')
        role = Role(role_text.lower())
        company_id = None
        if role is Role.USER or "company_id" in entry:  # an admin names a company per request
            company_id = parse_guid(_required_string(entry, where, "company_id"))
            if company_id is None:
                raise AuthConfigError(f"{where}.company_id: not a Guid")
        keys.append(ApiKey(key, company_id, role, _string(entry, where, "name")))
    return ApiKeyAuthenticator(keys)


def _key_value(entry: Mapping[str, Any], where: str) -> str:
    if "key" in entry and "key_env" in entry:
        raise AuthConfigError(f"{where}: give key or key_env, not both")
    if "key_env" in entry:
        variable = _required_string(entry, where, "key_env")
        key = _from_environment(variable, f"{where}.key_env")
        origin = f"{where}.key_env: the value of ${variable}"
    else:
        if "key" not in entry:
            raise AuthConfigError(f"{where}.key: missing (or give key_env)")
        key = entry["key"]
        if not isinstance(key, str):
            raise AuthConfigError(f"{where}.key: expected a string")
        origin = f"{where}.key"
    if not is_credential_text(key):
        raise AuthConfigError(f"{origin} must be 1 to 8192 visible ASCII characters, no spaces")
    return key


def _jwt(table: Any, base_dir: Path | None) -> JwtAuthenticator:
    where = "auth.jwt"
    _require_table(table, where)
    _reject_unknown(table, where, _JWT_KEYS)
    sources = [name for name in ("secret", "secret_env", "public_key_file") if name in table]
    if len(sources) != 1:
        raise AuthConfigError(f"{where}: give exactly one of secret, secret_env, public_key_file")
    source = sources[0]
    if "algorithms" not in table:
        raise AuthConfigError(f'{where}.algorithms: missing (e.g. algorithms = ["HS256"])')
    algorithms = _string_list(table, where, "algorithms")
    try:
        algorithms = list(check_algorithms(algorithms))
    except ValueError as exc:
        raise AuthConfigError(f"{where}.algorithms: {exc}") from None
    if is_hmac(algorithms) != (source != "public_key_file"):
        expected = "an HS* algorithm" if source != "public_key_file" else "a public-key algorithm"
        raise AuthConfigError(f"{where}.algorithms: {source} needs {expected}")

    if source == "secret":
        key = table["secret"]
        if not isinstance(key, str) or not key:
            raise AuthConfigError(f"{where}.secret: expected a non-empty string")
    elif source == "secret_env":
        key = _from_environment(_required_string(table, where, "secret_env"), f"{where}.{source}")
    else:
        key = _read_key_file(_required_string(table, where, "public_key_file"), base_dir)

    audience: str | list[str] | None = (
        _string_list(table, where, "audience") if "audience" in table else None
    )
    if isinstance(audience, list) and len(audience) == 1:
        audience = audience[0]
    leeway = table.get("leeway", 0)
    if isinstance(leeway, bool) or not isinstance(leeway, int | float) or leeway < 0:
        raise AuthConfigError(f"{where}.leeway: expected a number of seconds >= 0")
    issuer = _string(table, where, "issuer")
    company_claim = _string(table, where, "company_claim") or "company_id"
    role_claim = _string(table, where, "role_claim") or "role"
    admin_roles = _string_list(table, where, "admin_roles") if "admin_roles" in table else ["admin"]
    try:
        return JwtAuthenticator(
            key=key,
            algorithms=algorithms,
            audience=audience,
            issuer=issuer,
            company_claim=company_claim,
            role_claim=role_claim,
            admin_roles=admin_roles,
            leeway=float(leeway),
        )
    except ValueError as exc:  # only the key can still be wrong: everything else is checked
        raise AuthConfigError(f"{where}.{source}: {exc}") from None


def _read_key_file(name: str, base_dir: Path | None) -> str:
    path = Path(name).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable text"
        message = f"auth.jwt.public_key_file: cannot read {str(path)!r}: {reason}"
        raise AuthConfigError(message) from None


def _from_environment(variable: str, where: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise AuthConfigError(f"{where}: environment variable {variable} is not set or empty")
    return value


def _require_table(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise AuthConfigError(f"{where}: expected a table")


def _reject_unknown(table: Mapping[str, Any], where: str, known: frozenset[str]) -> None:
    try:
        reject_unknown(where, table, known)
    except ConfigError as exc:
        raise AuthConfigError(str(exc)) from None


def _required_string(table: Mapping[str, Any], where: str, name: str) -> str:
    if name not in table:
        raise AuthConfigError(f"{where}.{name}: missing")
    value = _string(table, where, name)
    assert value is not None
    return value


def _string(table: Mapping[str, Any], where: str, name: str) -> str | None:
    if name not in table:
        return None
    value = table[name]
    if not isinstance(value, str) or not value.strip():
        raise AuthConfigError(f"{where}.{name}: expected a non-empty string")
    return value.strip()


def _string_list(table: Mapping[str, Any], where: str, name: str) -> list[str]:
    """A list of non-empty strings; a single string is accepted as a one-item list."""
    value = table[name]
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise AuthConfigError(f"{where}.{name}: expected a list of non-empty strings")
    return list(value)
