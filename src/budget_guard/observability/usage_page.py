"""The usage page for people: ``GET /assistant/ai-chat/usage/ui``.

Server-rendered HTML with an inline SVG chart and no script at all, so there is nothing to build
and nothing to go stale, and the strict Content-Security-Policy below can forbid scripts.

Who may see what is the usage endpoint's rule: the same authenticators, a user sees its own
company, an admin names one with ``?CompanyId=`` (and gets a picker without it). The page never
takes a key from the URL (it would land in access logs and browser history): a browser reaches
it through the host application's session auth (a ``CallableAuthenticator`` reading the session
cookie), or a person fetches it with a header (``curl -H 'Authorization: Bearer ...'``).

The chart is a waterfall: one bar per UTC day of the window, each stacked on the days before
it, so the top of the last bar is the window's total and reads directly against the limit line.
Plain per-day bars could not share an axis with a limit that is ~30 days' worth of usage.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from starlette.requests import Request
from starlette.responses import HTMLResponse

from budget_guard.auth import (
    Authenticator,
    CompanyRequired,
    Forbidden,
    Identity,
    Role,
    resolve_company,
)
from budget_guard.auth.guids import parse_guid
from budget_guard.budget.clock import Clock, system_clock
from budget_guard.budget.ledger import Ledger
from budget_guard.events import NO_EVENTS, GuardEvents
from budget_guard.observability.report import (
    UsageReport,
    breakdown_text,
    format_duration,
    format_thresholds,
    format_time,
    usage_report,
)
from budget_guard.stores import StoreError

__all__ = ["COMPANY_PARAM", "UsagePage", "render_chart", "render_page"]

log = logging.getLogger("budget_guard.usage_page")

COMPANY_PARAM = "CompanyId"
"""The query parameter an admin names a company with (the endpoint's name for it)."""

_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'self'; base-uri 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}

# Chart geometry (SVG user units; the SVG scales to the page width).
_W, _H = 880, 340
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 24, 44
_UNDER, _OVER, _LIMIT, _BEFORE = "#3b6fd8", "#d64545", "#222", "#dbe4f7"
_FAR_UNDER = 4.0
"""When the limit is more than this many times the usage, the axis fits the usage and the
limit is named above it: drawn to scale, the bars would be a sliver at the bottom."""


_REJECTED = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 503: "store_unavailable"}


class UsagePage:
    """Mount with ``Route(endpoint_path + "/ui", page.endpoint)`` (``build_app`` does)."""

    def __init__(
        self,
        ledger: Ledger,
        authenticator: Authenticator,
        *,
        clock: Clock = system_clock,
        events: GuardEvents = NO_EVENTS,
    ) -> None:
        self.ledger = ledger
        self.authenticator = authenticator
        self.clock = clock
        self.events = events
        """Its refusals (401, 403, 400...) are counted and logged like every other route's."""

    async def endpoint(self, request: Request) -> HTMLResponse:
        response = await self._respond(request)
        if response.status_code in _REJECTED:
            self.events.rejected(None, _REJECTED[response.status_code])
        return response

    async def _respond(self, request: Request) -> HTMLResponse:
        identity = await self.authenticator.authenticate(request.headers)
        if identity is None:
            return _page(
                401,
                "Sign in to see usage",
                "<p>This page needs the same credentials as the usage API: send "
                "<code>Authorization: Bearer &lt;key&gt;</code> (or <code>X-Api-Key</code>), "
                "or open it through your application's signed-in session.</p>",
                {"www-authenticate": 'Bearer realm="budget-guard"'},
            )
        named = _query_value(request.query_params.multi_items(), COMPANY_PARAM)
        requested: UUID | None = None
        if named:
            requested = parse_guid(named)
            if requested is None:
                return _page(
                    400,
                    "Not a company id",
                    f"<p>{COMPANY_PARAM} must be a company Guid.</p>"
                    + _company_form(identity, named),
                )
        try:
            company = resolve_company(identity, requested)
        except CompanyRequired:
            return _page(200, "Choose a company", _company_form(identity, ""))
        except Forbidden:
            return _page(403, "Not your company", "<p>You may only see your own company.</p>")
        try:
            report = await usage_report(self.ledger, company, self.clock())
        except StoreError as exc:
            log.warning("usage page: store unavailable: %s", exc)
            return _page(
                503, "Usage is unavailable", "<p>The usage store does not answer. Retry soon.</p>"
            )
        return HTMLResponse(render_page(report, identity), headers=_HEADERS)


def _query_value(pairs: Iterable[tuple[str, str]], name: str) -> str | None:
    """ServiceStack reads query names case-insensitively; so does this page."""
    wanted = name.lower()
    for key, value in pairs:
        if key.lower() == wanted:
            return value.strip()
    return None


def _page(
    status: int, title: str, body: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    return HTMLResponse(
        _document(title, body), status_code=status, headers=_HEADERS | (headers or {})
    )


def _company_form(identity: Identity, value: str) -> str:
    if identity.role is not Role.ADMIN:
        return ""
    return (
        '<form method="get" class="pick"><label>Company id '
        f'<input name="{COMPANY_PARAM}" value="{html.escape(value)}" size="38" required '
        'placeholder="3fa85f64-5717-4562-b3fc-2c963f66afa6" '
        'pattern="[0-9a-fA-F{}-]{32,38}"></label> <button>Show usage</button></form>'
    )


def _n(value: int) -> str:
    return f"{value:,}"


def _compact(value: float) -> str:
    """Axis labels: 950, 12k, 1.5M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            text = f"{value / size:.1f}".rstrip("0").rstrip(".")
            return text + suffix
    return f"{value:.0f}"


def _nice_step(top: float, lines: int = 5) -> float:
    """The smallest 1/2/2.5/5 x 10^k step that covers ``top`` in at most ``lines`` steps."""
    raw = top / lines
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


@dataclass(frozen=True, slots=True)
class _Scale:
    top: float
    step: float
    limit_on_scale: bool

    def y(self, tokens: float) -> float:
        plot = _H - _TOP - _BOTTOM
        return _TOP + plot * (1 - min(tokens, self.top) / self.top)


def _scale(total: int, limit: int) -> _Scale:
    highest = max(total, limit)
    if total > 0 and limit > _FAR_UNDER * total:
        highest = total
    highest = max(highest, 1)
    step = _nice_step(highest * 1.05)
    top = math.ceil(highest * 1.05 / step) * step
    return _Scale(top, step, limit <= top)


def render_chart(report: UsageReport) -> str:
    """The SVG. Each day is one ``rect.bar`` carrying ``data-date`` and ``data-tokens``; the
    part of a bar above the limit is overdrawn in red."""
    days = report.days
    limit = report.snapshot.token_limit
    total = sum(d.tokens for d in days)
    scale = _scale(total, limit)
    plot_w = _W - _LEFT - _RIGHT
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.72, 1.0)
    parts: list[str] = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Tokens per day over the rolling window, stacked, with the '
        "limit</title>",
    ]
    tick = 0.0
    while tick <= scale.top + 1e-9:
        y = scale.y(tick)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_compact(tick)}</text>"
        )
        tick += scale.step
    label_every = max(1, math.ceil(len(days) / 8))
    running = 0
    for i, day in enumerate(days):
        x = _LEFT + i * slot + (slot - bar_w) / 2
        base, top = running, running + day.tokens
        running = top
        y_top, y_base = scale.y(top), scale.y(base)
        fill = _OVER if base >= limit and day.tokens else _UNDER
        if base:
            # The earlier days' total under the day's own tokens: each column reads as the
            # window's total so far.
            parts.append(
                f'<rect class="before" x="{x:.2f}" y="{y_base:.2f}" width="{bar_w:.2f}" '
                f'height="{scale.y(0) - y_base:.2f}" fill="{_BEFORE}"/>'
            )
        tip = f"{day.day.isoformat()}: {_n(day.tokens)} tokens (window total {_n(top)})"
        parts.append(
            f'<rect class="bar" data-date="{day.day.isoformat()}" data-tokens="{day.tokens}" '
            f'x="{x:.2f}" y="{y_top:.2f}" width="{bar_w:.2f}" height="{y_base - y_top:.2f}" '
            f'fill="{fill}"><title>{tip}</title></rect>'
        )
        if base < limit < top:
            y_limit = scale.y(limit)
            parts.append(
                f'<rect class="over" x="{x:.2f}" y="{y_top:.2f}" width="{bar_w:.2f}" '
                f'height="{y_limit - y_top:.2f}" fill="{_OVER}"/>'
            )
        last = i == len(days) - 1
        if i % label_every == 0 or (last and i % label_every > label_every // 2):
            parts.append(
                f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{_H - _BOTTOM + 18}" '
                f'text-anchor="middle">{day.day.strftime("%b %d")}</text>'
            )
    if scale.limit_on_scale:
        y = scale.y(limit)
        parts.append(
            f'<line class="limit" data-tokens="{limit}" x1="{_LEFT}" x2="{_W - _RIGHT}" '
            f'y1="{y:.1f}" y2="{y:.1f}" stroke="{_LIMIT}" stroke-width="2" '
            'stroke-dasharray="8 5"/>'
            # At the left, where the stacked columns are lowest (each is the window's total
            # so far), so the label never sits on a bar; a white halo keeps it readable.
            f'<text class="limit-label" x="{_LEFT + 6}" y="{max(y - 6, 14):.1f}" '
            'text-anchor="start" paint-order="stroke" stroke="#fff" stroke-width="4">'
            f"limit {_n(limit)}</text>"
        )
    else:
        parts.append(
            f'<text class="limit-label off-scale" data-tokens="{limit}" '
            f'x="{_W - _RIGHT - 4}" y="{_TOP - 6}" text-anchor="end">'
            f"limit {_n(limit)} ↑ above this scale</text>"
        )
    parts.append(
        f'<line class="axis-line" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_H - _BOTTOM}" '
        f'y2="{_H - _BOTTOM}"/></svg>'
    )
    return "".join(parts)


def _frees_text(report: UsageReport) -> str:
    snap, now = report.snapshot, report.generated_at
    if snap.frees_at is None:
        return "now: within budget"
    if math.isinf(snap.frees_at):
        return "never: the limit is 0"
    return (
        f"{format_time(snap.frees_at)} (in {format_duration(snap.frees_at - now)}), "
        "if nothing more is recorded"
    )


def render_page(report: UsageReport, identity: Identity) -> str:
    snap = report.snapshot
    share = snap.tokens_used / snap.token_limit if snap.token_limit else 1.0
    status = "within budget" if snap.is_within_budget else "over budget"
    rows = [
        (
            "Used",
            f"{_n(snap.tokens_used)} of {_n(snap.token_limit)} tokens ({share:.1%}) "
            f"in the last {snap.window_days} days",
        ),
        ("Remaining", f'<span class="remaining">{_n(snap.tokens_remaining)}</span> tokens'),
        ("Budget frees up", _frees_text(report)),
    ]
    if report.limit_override is not None:
        rows.append(("Limit", f"{_n(report.limit_override)} tokens, set at run time by an admin"))
    if report.alert_thresholds:
        rows.append(("Alerts at", format_thresholds(report.alert_thresholds)))
    if snap.tokens_reserved:
        rows.insert(
            2, ("Reserved", f"{_n(snap.tokens_reserved)} tokens held by requests in flight")
        )
    kinds = breakdown_text(report)
    if kinds is not None:
        rows.insert(1, ("By kind", f"{html.escape(kinds)} (raw tokens)"))
    if report.next_release_at is not None:
        rows.append(
            (
                "Next release",
                f"{_n(report.next_release_tokens)} tokens stop counting at "
                f"{format_time(report.next_release_at)} "
                f"(in {format_duration(report.next_release_at - report.generated_at)})",
            )
        )
    facts = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    gauge = min(share, 1.0) * 100
    table = "".join(
        f"<tr><td>{d.day.isoformat()}</td><td>{_n(d.tokens)}</td></tr>" for d in report.days
    )
    company = html.escape(str(snap.company_id))
    body = (
        _company_form(identity, str(snap.company_id))
        + f'<p class="company">Company <code>{company}</code> · '
        f'<strong class="status {status.split()[0]}">{status}</strong></p>'
        f'<div class="gauge" title="{share:.1%} of the limit used">'
        f'<div style="width:{gauge:.2f}%" class="{status.split()[0]}"></div></div>'
        f"<dl>{facts}</dl>"
        f"{render_chart(report)}"
        f'<p class="legend"><i style="background:{_UNDER}"></i>the day\'s tokens '
        f'<i style="background:{_BEFORE}"></i>earlier days still in the window '
        f'<i style="background:{_OVER}"></i>over the limit</p>'
        '<p class="note">Each bar is one UTC day, stacked on the days before it: the top of the '
        "last bar is the window's total. Usage stops counting "
        f"{snap.window_days} days after it was recorded (oldest bars first). "
        f"As of {format_time(report.generated_at)}.</p>"
        "<details><summary>Tokens per day</summary><table><thead><tr><th>Day (UTC)</th>"
        f"<th>Tokens</th></tr></thead><tbody>{table}</tbody></table></details>"
    )
    return _document("Token usage", body)


_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;
background:#f6f7f9}
main{max-width:920px;margin:24px auto;padding:20px 28px;background:#fff;border-radius:10px;
box-shadow:0 1px 3px #0002}
h1{font-size:22px;margin:0 0 12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:14px 0}
dt{color:#555}dd{margin:0}
.remaining{font-weight:600}
.status.within{color:#1f7a3a}.status.over{color:#b32d2d}
.gauge{height:10px;background:#e6e8ec;border-radius:5px;overflow:hidden}
.gauge div{height:100%}.gauge .within{background:#3b6fd8}.gauge .over{background:#d64545}
.chart{width:100%;height:auto;margin-top:8px}
.chart .grid{stroke:#e3e5e8}.chart .axis-line{stroke:#888}
.chart text{font-size:12px;fill:#555}.chart .limit-label{font-size:13px;fill:#222;font-weight:600}
.note{color:#666;font-size:13px}
.legend{font-size:13px;color:#444;margin:2px 0 0 70px}
.legend i{display:inline-block;width:11px;height:11px;margin:0 5px 0 14px;vertical-align:-1px}
.legend i:first-child{margin-left:0}
table{border-collapse:collapse}td,th{padding:2px 14px 2px 0;text-align:right}
form.pick{margin-bottom:10px}
"""


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)} · budget-guard</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
