"""Each model's images are priced by the rule OpenAI documents for it, rounded as the API does."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest

from budget_guard.counting import TokenCounter
from budget_guard.counting.images import (
    OPENAI_IMAGE_RULES,
    image_rule_for,
    openai_image_tokens,
    patch_count,
)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1", "gpt-4.1"),
        ("gpt-4.1-mini", "gpt-4.1-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o1", "o1"),
        ("o1-pro", "o1"),
        ("o3", "o3"),
        ("o4-mini", "o4-mini"),
        ("gpt-5", "gpt-5"),
        ("gpt-5-chat-latest", "gpt-5"),
        ("gpt-5-mini", "gpt-5-mini"),
        ("gpt-5-nano", "gpt-5-nano"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("claude-3-5-sonnet", "gpt-4o"),  # no OpenAI rule: the gpt-4o default
        (None, "gpt-4o"),
    ],
)
def test_a_model_is_priced_by_its_family(model: str | None, family: str) -> None:
    assert image_rule_for(model).family == family


def test_the_table_names_every_family_the_issue_lists() -> None:
    families = {rule.family for rule in OPENAI_IMAGE_RULES}
    wanted = {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o3"}
    assert wanted | {"o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano"} <= families


@pytest.mark.parametrize(
    ("model", "size", "detail", "tokens"),
    [
        # OpenAI's vision guide, "Calculating costs", tile examples (gpt-4o's rates).
        ("gpt-4o", (1024, 1024), "high", 765),
        ("gpt-4o", (2048, 4096), "high", 1105),
        ("gpt-4o", (4096, 8192), "low", 85),
        # The same images at the other tile rates the guide lists.
        ("gpt-4o-mini", (1024, 1024), "high", 2833 + 4 * 5667),
        ("gpt-4o-mini", (4096, 8192), "low", 2833),
        ("o1", (1024, 1024), "high", 75 + 4 * 150),
        ("o3", (2048, 4096), "high", 75 + 6 * 150),
        ("gpt-5", (1024, 1024), "high", 70 + 4 * 140),
        # Patch examples: 1024x1024 is 1024 patches; 1800x2400 is scaled to 1056x1408,
        # 33x44 = 1452 patches; each times the model's multiplier, rounded up.
        ("gpt-4.1-mini", (1024, 1024), "high", 1659),  # ceil(1024 * 1.62)
        ("gpt-4.1-mini", (1800, 2400), "high", 2353),  # ceil(1452 * 1.62)
        ("gpt-4.1-nano", (1024, 1024), "low", 2520),  # ceil(1024 * 2.46): detail is ignored
        ("o4-mini", (1800, 2400), None, 2498),  # ceil(1452 * 1.72)
        ("gpt-5-mini", (1024, 1024), "high", 1659),
    ],
)
def test_openai_worked_examples(
    model: str, size: tuple[int, int], detail: str | None, tokens: int
) -> None:
    assert openai_image_tokens(size, detail, image_rule_for(model)) == tokens


@pytest.mark.parametrize(
    ("size", "patches"),
    [((1024, 1024), 1024), ((1800, 2400), 1452), ((3000, 1000), 1452), ((32, 32), 1)],
)
def test_patch_counts_stay_within_1536(size: tuple[int, int], patches: int) -> None:
    """3000x1000 scales to 2112x704 (66x22 patches): the scaled size is whole pixels, so a
    float just above 704 does not add a row."""
    assert patch_count(*size) == patches


@pytest.mark.parametrize(
    ("size", "tokens"),
    [
        ((2050, 513), 765),  # reported 765: scaled to 2048x512 (512.5 rounds to 512), 4 tiles
        ((2049, 513), 1445),  # reported 1,445: scaled to 2048x513 (512.75 rounds up), 8 tiles
    ],
)
def test_scaled_sizes_are_rounded_as_the_api_rounds_them(
    size: tuple[int, int], tokens: int
) -> None:
    assert openai_image_tokens(size, "high", image_rule_for("gpt-4.1")) == tokens


# Reported by the API for one 128x64 PNG and a short question, whole prompt (low, high).
_REPORTED = {"gpt-4o": (97, 267), "gpt-4o-mini": (2845, 8512), "o3": (86, 236)}


@pytest.mark.parametrize("model", sorted(_REPORTED))
def test_reported_figures_for_a_small_png(model: str) -> None:
    """The question's text is the same in both requests, so the image accounts for the whole
    difference; and what is left for the text is the same small figure on every model (11 on
    o3, 12 on the others: the question itself was not published, so only this much is
    checked)."""
    low, high = _REPORTED[model]
    rule = image_rule_for(model)
    image_low = openai_image_tokens((128, 64), "low", rule)
    image_high = openai_image_tokens((128, 64), "high", rule)
    assert high - low == image_high - image_low
    assert low - image_low == high - image_high
    assert 11 <= low - image_low <= 12


def _png(width: int, height: int) -> str:
    header = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + struct.pack(">II", width, height)
    return "data:image/png;base64," + base64.b64encode(header + b"\x00" * 16).decode()


def _chat(model: str, detail: str) -> bytes:
    part = {"type": "image_url", "image_url": {"url": _png(128, 64), "detail": detail}}
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": [part]}]})


def _responses(model: str, detail: str) -> bytes:
    part = {"type": "input_image", "image_url": _png(128, 64), "detail": detail}
    return orjson.dumps({"model": model, "input": [{"role": "user", "content": [part]}]})


@pytest.mark.parametrize("shape", [("/v1/chat/completions", _chat), ("/v1/responses", _responses)])
def test_the_request_count_prices_the_image_by_the_model(shape: tuple) -> None:
    path, build = shape
    counter = TokenCounter()
    on_4o = counter.count_request(path, build("gpt-4o", "low")).input_tokens
    on_mini = counter.count_request(path, build("gpt-4o-mini", "low")).input_tokens
    assert on_mini - on_4o == 2833 - 85


def test_an_azure_deployment_names_the_model_when_the_body_does_not() -> None:
    body = orjson.loads(_chat("x", "low"))
    del body["model"]
    counter = TokenCounter()
    path = "/openai/deployments/{}/chat/completions?api-version=2024-10-21"
    on_4o = counter.count_request(path.format("gpt-4o"), orjson.dumps(body)).input_tokens
    on_mini = counter.count_request(path.format("gpt-4o-mini"), orjson.dumps(body)).input_tokens
    assert on_mini - on_4o == 2833 - 85
