"""Weighted budgets: off by default, exact integer arithmetic, rounded up, config checked."""

from __future__ import annotations

import pytest

from budget_guard.budget.weights import BudgetWeights
from budget_guard.budget.window import ConfigError
from budget_guard.config import settings_from_mapping
from budget_guard.counting import TokenUsage

# The worked example of docs/costs-and-weights.md.
EXAMPLE = {
    "weights": {"input": 1, "cached_input": 0.1, "output": 4},
    "model_weights": {"gpt-4o-mini*": 0.06, "gpt-4o*": 1},
}
CACHED_PROMPT = TokenUsage(10_000, 500, "upstream", cached_input_tokens=8_192)
FRESH_PROMPT = TokenUsage(10_000, 500, "upstream")


def example_weights() -> BudgetWeights:
    return settings_from_mapping({"budget": EXAMPLE}).budget.weights


@pytest.mark.parametrize(
    ("model", "usage", "budget_tokens"),
    [
        ("gpt-4o", FRESH_PROMPT, 12_000),  # 10,000 * 1 + 500 * 4
        ("gpt-4o", CACHED_PROMPT, 4_628),  # ceil(1,808 + 8,192 * 0.1 + 500 * 4 = 4,627.2)
        ("gpt-4o-mini", CACHED_PROMPT, 278),  # ceil(4,627.2 * 0.06 = 277.632)
        ("gpt-4o-mini-2024-07-18", FRESH_PROMPT, 720),  # 12,000 * 0.06
        ("o3", FRESH_PROMPT, 12_000),  # no pattern matches: weight 1
    ],
)
def test_the_worked_example(model: str, usage: TokenUsage, budget_tokens: int) -> None:
    assert example_weights().budget_tokens(usage, model) == budget_tokens


def test_without_weights_a_budget_token_is_a_raw_token() -> None:
    weights = settings_from_mapping({}).budget.weights
    assert weights.identity
    assert weights.budget_tokens(CACHED_PROMPT, "gpt-4o") == 10_500
    assert weights.bound(10_000, 4_096, "gpt-4o-mini") == 14_096


def test_anthropic_cache_reads_weigh_as_cached_input_and_writes_as_cache_writes() -> None:
    weights = BudgetWeights.from_tables({"cached_input": 0.1, "cache_write": 1.25}, None)
    usage = TokenUsage(3_210, 5, "upstream", cache_write_tokens=200, cache_read_tokens=3_000)
    # 10 + 200 * 1.25 + 3,000 * 0.1 + 5 = 565
    assert weights.budget_tokens(usage, "claude-sonnet-4") == 565


def test_a_fraction_of_a_token_is_charged_as_a_whole_one() -> None:
    weights = BudgetWeights.from_tables({"input": 0.001, "output": 0.001}, None)
    assert weights.budget_tokens(TokenUsage(1, 0, "upstream"), "gpt-4o") == 1
    assert weights.budget_tokens(TokenUsage(0, 0, "upstream"), "gpt-4o") == 0


def test_the_reservation_bound_assumes_the_dearest_input() -> None:
    weights = BudgetWeights.from_tables({"cached_input": 0.1, "cache_write": 1.25}, None)
    assert weights.bound(1_000, 100, None) == 1_350  # 1,000 * 1.25 + 100


def test_totals_stay_exact_far_beyond_a_double() -> None:
    weights = BudgetWeights.from_tables({"input": 0.001, "output": 999.999}, None)
    usage = TokenUsage(2**53 + 1, 2**40 + 1, "upstream")
    exact = -(-((2**53 + 1) * 1 + (2**40 + 1) * 999_999) // 1000)
    assert weights.budget_tokens(usage, None) == exact


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"weights": {"inputs": 1}}, "budget.weights.inputs: unknown key; did you mean input"),
        ({"weights": {"output": "4"}}, "budget.weights.output: must be a number"),
        ({"weights": {"output": True}}, "budget.weights.output: must be a number"),
        ({"weights": {"output": -1}}, "budget.weights.output: must be between 0 and"),
        ({"weights": {"cached_input": 0.0001}}, "budget.weights.cached_input: must have at"),
        ({"weights": {"output": float("inf")}}, "budget.weights.output: must be a finite"),
        ({"weights": {"output": float("nan")}}, "budget.weights.output: must be a finite"),
        ({"weights": 4}, "budget.weights: must be a table"),
        ({"model_weights": {"gpt-4o*": 1e7}}, 'budget.model_weights."gpt-4o*": must be between'),
        ({"model_weights": []}, "budget.model_weights: must be a table"),
    ],
)
def test_a_bad_weight_names_its_key(budget: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("*", r"\*").replace(".", r"\.")):
        settings_from_mapping({"budget": budget})
