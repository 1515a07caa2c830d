"""``budget-guard limits set|clear|get|list``: run-time limits from a terminal.

Like ``budget-guard usage`` it talks to the configured store directly (no server needed), so
a change is in force on every serving worker and host within a second. The embedded memory
store lives inside the serving process: there the admin API is the way, and the command says
so. Each change is logged once, like a change through the API, with ``cli:<user>`` as who.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar
from uuid import UUID

from budget_guard.auth.guids import parse_guid
from budget_guard.budget.ledger import Ledger, LimitInfo
from budget_guard.budget.policy import check_limit
from budget_guard.budget.window import ConfigError
from budget_guard.config import CONFIG_ENV, Settings, load_settings
from budget_guard.observability.logs import Redactor
from budget_guard.stores import StoreError

__all__ = ["add_limits_command", "run_limits"]

T = TypeVar("T")


class LimitsCommandError(Exception):
    """A problem the person can fix; printed as one line, exit status 2."""


def add_limits_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    limits = commands.add_parser(
        "limits",
        help="set, clear, read or list run-time token limits",
        description="Run-time per-company token limits, kept in the store (Redis).",
    )
    actions = limits.add_subparsers(dest="action", required=True)
    for name, text in (
        ("set", "set a company's run-time limit"),
        ("clear", "clear it: back to the configured limit"),
        ("get", "print a company's limit and where it comes from"),
        ("list", "list the companies with a run-time limit"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("--config", help=f"TOML config file (or ${CONFIG_ENV})")
        action.add_argument("--json", action="store_true", help="print JSON for scripts")
        if name != "list":
            action.add_argument("--company", metavar="ID", required=True, help="company Guid")
        if name == "set":
            action.add_argument("--tokens", metavar="N", type=int, required=True)


def run_limits(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    try:
        settings = load_settings(args.config)
        if settings.store.url.startswith("memory"):
            raise LimitsCommandError(
                "store.url is memory://: its limits live inside the serving process. Use the "
                "admin API of the running server (PUT /assistant/ai-chat/limits), or a shared "
                'store ([store] url = "redis://...").'
            )
        company = _company(args.company) if args.action != "list" else None
        tokens = None
        if args.action == "set":
            try:
                tokens = check_limit(args.tokens, "--tokens")
            except ConfigError as exc:
                raise LimitsCommandError(str(exc)) from None
        text = _run(settings, lambda ledger: _act(ledger, args.action, company, tokens, args))
    except LimitsCommandError as exc:
        print(f"budget-guard: {exc}", file=sys.stderr)
        return 2
    print(text, file=out)
    return 0


def _company(text: str) -> UUID:
    company = parse_guid(text)
    if company is None:
        raise LimitsCommandError(f"--company: {text!r} is not a company Guid")
    return company


def _run(settings: Settings, action: Callable[[Ledger], Awaitable[T]]) -> T:
    async def main() -> T:
        ledger = settings.ledger()
        try:
            return await action(ledger)
        except StoreError:
            url = Redactor()(settings.store.url)
            raise LimitsCommandError(
                f"store.url: {url} does not answer (is Redis running?)"
            ) from None
        finally:
            await ledger.aclose()

    return asyncio.run(main())


async def _act(
    ledger: Ledger,
    action: str,
    company: UUID | None,
    tokens: int | None,
    args: argparse.Namespace,
) -> str:
    if action == "list":
        overrides = await ledger.limit_overrides()
        rows = sorted(overrides.items(), key=lambda item: str(item[0]))
        if args.json:
            return json.dumps([{"company_id": str(c), "token_limit": n} for c, n in rows])
        if not rows:
            return "No run-time limits: every company is on its configured limit."
        return "\n".join(f"{c}  {n:>13,}" for c, n in rows)
    assert company is not None
    previous = None
    if action in ("set", "clear"):
        previous = await ledger.set_limit(company, tokens, by=f"cli:{_user()}")
    info = await ledger.limit_info(company)
    if args.json:
        data = _json(info)
        if action in ("set", "clear"):
            data["previous_override"] = previous
        return json.dumps(data)
    line = describe_limit(info)
    if action in ("set", "clear"):
        was = "none" if previous is None else f"{previous:,}"
        line += f" (the run-time limit before: {was})"
    return line


def describe_limit(info: LimitInfo) -> str:
    where = {
        "override": "run-time limit",
        "config": "[budget.limits]",
        "provider": "the limit provider",
        "default": "the default",
    }[info.source]
    return f"Company {info.company_id}: {info.token_limit:,} tokens ({where})"


def _json(info: LimitInfo) -> dict[str, object]:
    return {
        "company_id": str(info.company_id),
        "token_limit": info.token_limit,
        "override": info.override,
        "source": info.source,
    }


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
