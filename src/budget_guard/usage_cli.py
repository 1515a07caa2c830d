"""``budget-guard usage``: a company's usage in the terminal, the numbers the usage page shows.

It reads the configured store directly (no running server needed). The embedded memory store
lives inside the serving process, so there is nothing to read from here: the command says so
instead of printing zeros.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TextIO
from uuid import UUID

from budget_guard.alerts.settings import alert_thresholds
from budget_guard.auth.guids import parse_guid
from budget_guard.clock import Clock, system_clock
from budget_guard.config import CONFIG_ENV, Settings, load_settings
from budget_guard.observability.logs import Redactor
from budget_guard.observability.report import (
    UsageReport,
    format_duration,
    format_thresholds,
    format_time,
    usage_report,
)
from budget_guard.stores import StoreError

__all__ = ["add_usage_command", "render_table", "run_usage"]

_BAR_WIDTH = 30


class UsageCommandError(Exception):
    """A problem the person can fix; printed as one line, exit status 2."""


def add_usage_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    usage = commands.add_parser(
        "usage",
        help="print a company's usage over the rolling window",
        description="Print a company's usage over the rolling window, read from the store.",
    )
    usage.add_argument("--config", help=f"TOML config file (or ${CONFIG_ENV})")
    usage.add_argument(
        "--company",
        metavar="ID",
        help="company Guid (default: every company named in [budget.limits])",
    )
    usage.add_argument(
        "--json",
        action="store_true",
        help="print JSON for scripts (an object with --company, else a list)",
    )


def run_usage(
    args: argparse.Namespace, *, out: TextIO | None = None, clock: Clock = system_clock
) -> int:
    out = out if out is not None else sys.stdout
    try:
        settings = load_settings(args.config)
        companies = _companies(settings, args.company)
        reports = asyncio.run(_reports(settings, companies, clock()))
    except UsageCommandError as exc:
        print(f"budget-guard: {exc}", file=sys.stderr)
        return 2
    if args.json:
        data = [r.to_json() for r in reports]
        print(json.dumps(data[0] if args.company else data, indent=2), file=out)
    else:
        print("\n\n".join(render_table(r) for r in reports), file=out)
    return 0


def _companies(settings: Settings, named: str | None) -> list[UUID]:
    if settings.store.url.startswith("memory"):
        raise UsageCommandError(
            "store.url is memory://: that usage lives inside the serving process, so there is "
            "nothing to read from here. Use the usage page or endpoint of the running server, "
            'or a shared store ([store] url = "redis://...").'
        )
    if named is not None:
        company = parse_guid(named)
        if company is None:
            raise UsageCommandError(f"--company: {named!r} is not a company Guid")
        return [company]
    if not settings.budget.limits:
        raise UsageCommandError(
            "name a company with --company ID (the store cannot list its companies, and "
            "[budget.limits] names none)"
        )
    return sorted(settings.budget.limits, key=str)


async def _reports(settings: Settings, companies: list[UUID], now: float) -> list[UsageReport]:
    ledger = settings.ledger()
    ledger.thresholds = alert_thresholds(settings.table("alerts"))
    try:
        return [await usage_report(ledger, company, now) for company in companies]
    except StoreError:
        url = Redactor()(settings.store.url)
        raise UsageCommandError(f"store.url: {url} does not answer (is Redis running?)") from None
    finally:
        await ledger.aclose()


def render_table(report: UsageReport) -> str:
    """The report as aligned text: the summary, then one row per UTC day with a bar."""
    snap = report.snapshot
    share = snap.tokens_used / snap.token_limit if snap.token_limit else 1.0
    status = "within budget" if snap.is_within_budget else "OVER BUDGET"
    if snap.frees_at is None:
        frees = "now (within budget)"
    elif snap.frees_at == float("inf"):
        frees = "never (the limit is 0)"
    else:
        frees = (
            f"{format_time(snap.frees_at)} (in "
            f"{format_duration(snap.frees_at - report.generated_at)}), if nothing more is recorded"
        )
    lines = [
        f"Company {snap.company_id}: {status}",
        f"  used        {snap.tokens_used:,} of {snap.token_limit:,} tokens ({share:.1%}) "
        f"in the last {snap.window_days} days",
        f"  remaining   {snap.tokens_remaining:,} tokens",
    ]
    if snap.tokens_reserved:
        lines.append(f"  reserved    {snap.tokens_reserved:,} tokens (requests in flight)")
    lines.append(f"  frees up    {frees}")
    if report.limit_override is not None:
        lines.append(f"  limit       {report.limit_override:,} tokens (run-time, set by an admin)")
    if report.alert_thresholds:
        lines.append(f"  alerts at   {format_thresholds(report.alert_thresholds)}")
    if report.next_release_at is not None:
        lines.append(
            f"  next release {report.next_release_tokens:,} tokens at "
            f"{format_time(report.next_release_at)} "
            f"(in {format_duration(report.next_release_at - report.generated_at)})"
        )
    peak = max((d.tokens for d in report.days), default=0)
    width = max(len(f"{peak:,}"), len("tokens"))
    lines += ["", f"  {'day (UTC)':<10}  {'tokens':>{width}}"]
    for day in report.days:
        bar = "█" * (round(_BAR_WIDTH * day.tokens / peak) if peak else 0)
        if day.tokens and not bar:
            bar = "▏"
        lines.append(f"  {day.day.isoformat():<10}  {day.tokens:>{width},}  {bar}".rstrip())
    return "\n".join(lines)
