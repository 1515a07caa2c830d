"""The guard on the proxy path: middleware, its settings, and the fail-open journal."""

from budget_guard.guard.journal import PendingUsage, UsageJournal
from budget_guard.guard.middleware import BudgetGuardMiddleware
from budget_guard.guard.settings import GuardSettings

__all__ = ["BudgetGuardMiddleware", "GuardSettings", "PendingUsage", "UsageJournal"]
