"""What a forwarded request costs, from its route, its request and how its response ended.

The rule the guard keeps: whatever it forwards is charged, unless the operator marked the
route free. An upstream that answers with an error status bills nothing, so then only the
usage it reports (if any) is charged. Any other ending (a success, a response cut short, a
client that left, an exchange that never got an answer) is charged at least the route's
floor: the counted prompt on metered routes, ``tokens`` on the others. The upstream's own
complete usage report, where it gives one, is the bill itself.

Metered routes are charged in budget tokens: raw tokens unless the operator set
:class:`~budget_guard.budget.weights.BudgetWeights`. Flat and unknown routes are charged as
configured or as the upstream reports, unweighted (they have no breakdown to weigh).
"""

from __future__ import annotations

from budget_guard.budget.weights import BudgetWeights
from budget_guard.counting import RequestTokens, ResponseMeter
from budget_guard.counting.meter import COUNTED, UPSTREAM
from budget_guard.guard.routes import FLAT, FREE, METERED, Route

RAW = BudgetWeights()

FLOORED = "floor"
"""Source of a charge that is the route's floor: nothing better was known."""


def charge(
    route: Route,
    request: RequestTokens,
    meter: ResponseMeter | None,
    status: int,
    weights: BudgetWeights = RAW,
) -> tuple[int, str]:
    """``(tokens, source)`` for one exchange; ``status`` is 0 when no answer started."""
    if route.charge == FREE:
        return 0, FREE
    failed = status >= 400
    if route.charge == METERED:
        usage = None if meter is None else meter.finish()
        if usage is not None and usage.source == UPSTREAM:
            return weights.budget_tokens(usage, request.model), UPSTREAM
        if failed:
            return 0, COUNTED
        counted = 0 if usage is None else usage.total_tokens
        if counted >= request.input_tokens and usage is not None:
            return weights.budget_tokens(usage, request.model), COUNTED
        return weights.input_only(request.input_tokens, request.model), FLOORED
    if meter is not None:
        meter.finish()
    reported = None if meter is None else meter.reported_total()
    if route.charge == FLAT:
        return (0, COUNTED) if failed else (route.tokens, FLAT)
    if reported is not None:
        return reported, UPSTREAM
    return (0, COUNTED) if failed else (route.tokens * request.choices, FLOORED)


def breakdown_of(
    route: Route, request: RequestTokens, meter: ResponseMeter | None, source: str
) -> dict[str, int] | None:
    """The raw tokens by kind behind a metered charge of ``source`` (from :func:`charge`),
    kept next to the budget tokens; None for routes that have no breakdown."""
    if route.charge != METERED:
        return None
    if source == FLOORED:
        return {"input": request.input_tokens}
    if meter is None:
        return None
    usage = meter.finish()
    kinds = {
        "input": usage.input_tokens,
        "cached_input": usage.cached_input_tokens,
        "cache_write": usage.cache_write_tokens,
        "cache_read": usage.cache_read_tokens,
        "output": usage.output_tokens,
        "reasoning": usage.reasoning_tokens,
    }
    return {kind: count for kind, count in kinds.items() if count}


def reservation(
    route: Route,
    request: RequestTokens,
    default_output: int,
    weights: BudgetWeights = RAW,
    referenced_context: int = 0,
    *,
    exact: bool = False,
) -> int:
    """What strict mode holds before forwarding: the most the request can cost, each of
    its choices at its output cap (or ``default_output`` when it names none), weighted, plus
    ``referenced_context`` input tokens when it pulls stored objects into its context (a
    previous response, a file), whose size the guard cannot count.

    The input is the request's bound until it is counted (see ``RequestTokens``); ``exact``
    counts it, for the one case the bound's margin matters: a hold refused near the limit."""
    if route.charge == FREE:
        return 0
    context = referenced_context if request.references else 0
    if route.charge == FLAT:
        return route.tokens + context
    if route.charge != METERED:
        return route.tokens * request.choices + context
    output = request.max_output_tokens
    if output is None:
        output = default_output
    input_tokens = request.input_tokens if exact else request.input_bound
    return weights.bound(input_tokens + context, max(output, 0) * request.choices, request.model)
