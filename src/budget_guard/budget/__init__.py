"""The budget core: who may spend how many tokens, and how much they have spent.

A :class:`Window` cuts time into buckets, a :class:`BudgetPolicy` says each company's limit,
:class:`BudgetWeights` turn a response's tokens into budget tokens, and a :class:`Ledger`
judges a usage store by them (run-time overrides first, read through an
:class:`OverrideReader`), answering with a :class:`UsageSnapshot`. Time comes from a
:data:`Clock`, so tests move it with a :class:`ManualClock`.

It is kept apart from the HTTP side (the guard, the proxy, the usage endpoint) and knows
nothing of it: no request, header or status code appears here, so the same rules hold
whichever way usage arrives, and they can be tested without a server.
"""

from __future__ import annotations

from budget_guard.budget.clock import Clock, ManualClock, system_clock
from budget_guard.budget.ledger import Ledger, LimitInfo, OverridesUnsupported
from budget_guard.budget.overrides import OverrideReader
from budget_guard.budget.policy import BudgetPolicy, LimitProvider, LimitUnavailable
from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.budget.weights import BudgetWeights
from budget_guard.budget.window import ConfigError, Window

__all__ = [
    "BudgetPolicy",
    "BudgetWeights",
    "Clock",
    "ConfigError",
    "Ledger",
    "LimitInfo",
    "LimitProvider",
    "LimitUnavailable",
    "ManualClock",
    "OverrideReader",
    "OverridesUnsupported",
    "UsageSnapshot",
    "Window",
    "system_clock",
]
