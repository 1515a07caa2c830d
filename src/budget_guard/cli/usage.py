"""``budget-guard usage``: usage in the terminal, the numbers the usage page shows.

Without ``--company`` it prints one row per company (every company with usage in the store,
and every company ``[budget.limits]`` names); with it, that company's summary and one row per
UTC day. ``--json`` writes the usage API's names and Guid format (camelCase, 32 hex digits),
so a script can read the command and the API alike.

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
from budget_guard.budget.clock import Clock, system_clock
from budget_guard.config import CONFIG_ENV, Settings, load_settings
from budget_guard.observability.logs import Redactor
from budget_guard.observability.report import (
    UsageReport,
    breakdown_text,
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
        help="one company's Guid: its summary and its days (default: a row per company)",
    )
    usage.add_argument(
        "--json",
        action="store_true",
        help="print JSON for scripts, in the usage API's names (an object with --company, "
        "else a list)",
    )


def run_usage(
    args: argparse.Namespace, *, out: TextIO | None = None, clock: Clock = system_clock
) -> int:
    out = out if out is not None else sys.stdout
    try:
        settings = load_settings(args.config)
        named = _named_company(settings, args.company)
        reports = asyncio.run(_reports(settings, named, clock()))
    except UsageCommandError as exc:
        print(f"budget-guard: {exc}", file=sys.stderr)
        return 2
    if args.json:
        data = [r.to_json() for r in reports]
        print(json.dumps(data[0] if args.company else data, indent=2), file=out)
    elif args.company:
        print(render_table(reports[0]), file=out)
    elif not reports:
        print("No company has usage in the store yet.", file=out)
    else:
        print(render_companies(reports), file=out)
    return 0


def _named_company(settings: Settings, named: str | None) -> UUID | None:
    if settings.store.url.startswith("memory"):
        raise UsageCommandError(
            "store.url is memory://: that usage lives inside the serving process, so there is "
            "nothing to read from here. Use the usage page or endpoint of the running server, "
            'or a shared store ([store] url = "redis://...").'
        )
    if named is None:
        return None
    company = parse_guid(named)
    if company is None:
        raise UsageCommandError(f"--company: {named!r} is not a company Guid")
    return company


async def _reports(settings: Settings, named: UUID | None, now: float) -> list[UsageReport]:
    ledger = settings.ledger()
    ledger.thresholds = alert_thresholds(settings.table("alerts"))
    try:
        if named is not None:
            companies = [named]
        else:
            listed = getattr(ledger.store, "companies", None)
            stored = await listed() if listed is not None else []
            companies = sorted({*stored, *settings.budget.limits}, key=str)
        return [await usage_report(ledger, company, now) for company in companies]
    except StoreError:
        url = Redactor()(settings.store.url)
        raise UsageCommandError(f"store.url: {url} does not answer (is Redis running?)") from None
    finally:
        await ledger.aclose()


def render_companies(reports: list[UsageReport]) -> str:
    """One aligned row per company: used, limit, remaining, share and when it frees up."""
    header = ("company", "used", "limit", "remaining", "%", "frees up")
    rows = [header]
    for report in reports:
        snap = report.snapshot
        share = snap.tokens_used / snap.token_limit if snap.token_limit else 1.0
        rows.append(
            (
                str(snap.company_id),
                f"{snap.tokens_used:,}",
                f"{snap.token_limit:,}",
                f"{snap.tokens_remaining:,}",
                f"{share:.1%}",
                _frees_short(report),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:5], widths[1:5], strict=True)]
        cells.append(row[5])
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _frees_short(report: UsageReport) -> str:
    frees_at = report.snapshot.frees_at
    if frees_at is None:
        return "-"
    if frees_at == float("inf"):
        return "never (limit 0)"
    return f"in {format_duration(frees_at - report.generated_at)}, {format_time(frees_at)}"


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
    kinds = breakdown_text(report)
    if kinds is not None:
        lines.append(f"  by kind     {kinds} (raw tokens)")
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
