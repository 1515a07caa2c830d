"""Budget weights: how many budget tokens one exchange costs, by token type and by model.

Off by default: with no ``[budget.weights]`` and no ``[budget.model_weights]`` a budget token is
a raw token, exactly as the ``RecordAiChatUsage`` contract has it. When an operator sets them,

    budget tokens = ceil(model weight * (uncached input * input + cached input * cached_input
                                         + cache writes * cache_write + output * output))

Weights are kept as whole thousandths (:data:`SCALE`), so every product is an exact integer and
every worker computes the same total; the one division rounds up, so a budget is never
undercharged. Anthropic's cache reads are cached input; reasoning tokens are output (they are
billed as output and already part of it).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from budget_guard.budget.window import ConfigError
from budget_guard.counting.results import TokenUsage

SCALE = 1000
"""Weights are whole multiples of 1/SCALE: 0.1 is kept as 100, 1.25 as 1250."""
MAX_WEIGHT = 1_000_000
"""The largest weight a table accepts: a million times the raw token."""
TYPES = ("input", "cached_input", "cache_write", "output")


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


@dataclass(frozen=True, slots=True)
class BudgetWeights:
    """Weights in thousandths per token type, and per model pattern (first match wins;
    ``fnmatch`` patterns such as ``gpt-4o-mini*``; a model no pattern matches weighs 1)."""

    input: int = SCALE
    cached_input: int = SCALE
    cache_write: int = SCALE
    output: int = SCALE
    models: tuple[tuple[str, int], ...] = ()

    @property
    def identity(self) -> bool:
        """True when budget tokens are raw tokens (the default)."""
        return (
            self.input == self.cached_input == self.cache_write == self.output == SCALE
            and not self.models
        )

    def model_weight(self, model: str | None) -> int:
        name = (model or "").lower()
        for pattern, weight in self.models:
            if fnmatch.fnmatchcase(name, pattern):
                return weight
        return SCALE

    def budget_tokens(self, usage: TokenUsage, model: str | None) -> int:
        """What ``usage`` costs the budget."""
        if self.identity:
            return usage.total_tokens
        weighted = (
            usage.uncached_input_tokens * self.input
            + (usage.cached_input_tokens + usage.cache_read_tokens) * self.cached_input
            + usage.cache_write_tokens * self.cache_write
            + usage.output_tokens * self.output
        )
        return _ceil_div(weighted * self.model_weight(model), SCALE * SCALE)

    def bound(self, input_tokens: int, output_tokens: int, model: str | None) -> int:
        """The most ``input_tokens`` in and ``output_tokens`` out can cost, whichever way the
        input turns out cached: what strict mode holds and the admission estimate."""
        if self.identity:
            return input_tokens + output_tokens
        dearest_input = max(self.input, self.cached_input, self.cache_write)
        weighted = input_tokens * dearest_input + output_tokens * self.output
        return _ceil_div(weighted * self.model_weight(model), SCALE * SCALE)

    def input_only(self, input_tokens: int, model: str | None) -> int:
        """A prompt charged on its own (the floor when nothing else is known): full price."""
        if self.identity:
            return input_tokens
        return _ceil_div(input_tokens * self.input * self.model_weight(model), SCALE * SCALE)

    @classmethod
    def from_tables(cls, weights: object, model_weights: object) -> BudgetWeights:
        """From ``[budget.weights]`` and ``[budget.model_weights]``; :class:`ConfigError`
        naming the key for anything else than a known type or a weight in range."""
        weights = _table(weights, "budget.weights")
        for key in weights:
            if key not in TYPES:
                raise ConfigError(f"budget.weights.{key}: unknown token type (one of {TYPES})")
        by_type = {key: _weight(value, f"budget.weights.{key}") for key, value in weights.items()}
        models = tuple(
            (str(pattern).lower(), _weight(value, f'budget.model_weights."{pattern}"'))
            for pattern, value in _table(model_weights, "budget.model_weights").items()
        )
        return cls(**by_type, models=models)


def _table(value: object, where: str) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a table")
    return value


def _weight(value: object, where: str) -> int:
    """A TOML number as whole thousandths, refused when it is not one exactly."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: must be a number")
    try:
        scaled = Decimal(str(value)) * SCALE
    except InvalidOperation:
        raise ConfigError(f"{where}: must be a number") from None
    if not scaled.is_finite():
        raise ConfigError(f"{where}: must be a finite number")
    if scaled != scaled.to_integral_value():
        raise ConfigError(f"{where}: must have at most three decimal places")
    if not 0 <= scaled <= MAX_WEIGHT * SCALE:
        raise ConfigError(f"{where}: must be between 0 and {MAX_WEIGHT}")
    return int(scaled)
