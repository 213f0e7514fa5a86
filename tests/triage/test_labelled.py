"""Accuracy on Safewell's own labelled messages (tests/triage/labelled.yaml)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.triage import LEVELS, Triage

LABELLED = Path(__file__).with_name("labelled.yaml")


def _items() -> list[dict[str, Any]]:
    data = yaml.safe_load(LABELLED.read_text(encoding="utf-8"))
    items: list[dict[str, Any]] = data["items"]
    return items


@pytest.fixture(scope="module")
def outcomes(triage: Triage) -> list[tuple[dict[str, Any], str]]:
    """Every labelled item with the level the classifier gave it."""
    return [(item, triage.classify(item["text"], item["lang"]).level) for item in _items()]


def _precision_recall(
    outcomes: list[tuple[dict[str, Any], str]], level: str
) -> tuple[float, float, list[str]]:
    tp = sum(1 for item, got in outcomes if got == level and item["level"] == level)
    predicted = sum(1 for _, got in outcomes if got == level)
    actual = sum(1 for item, _ in outcomes if item["level"] == level)
    misses = [
        f"{item['text']!r}: expected {item['level']}, got {got}"
        for item, got in outcomes
        if (item["level"] == level) != (got == level)
    ]
    return tp / predicted if predicted else 1.0, tp / actual if actual else 1.0, misses


def test_labelled_set_is_large_and_covers_every_class() -> None:
    items = _items()
    assert len(items) >= 200
    by_lang = Counter(item["lang"] for item in items)
    assert by_lang["en"] >= 80 and by_lang["zh"] >= 80
    assert {item["level"] for item in items} == set(LEVELS)
    kinds = {item["kind"] for item in items}
    for kind in (
        "direct",
        "indirect",
        "third_party",
        "misspelt",
        "leet",
        "emoji",
        "emoji_alone",
        "no_spaces",
        "repeats",
        "traditional",
        "idiom",
        "faq",
        "emergency",
        "ask_person",
        "angry",
    ):
        assert kind in kinds, kind
    texts = [item["text"] for item in items]
    assert len(texts) == len(set(texts)), "duplicate labelled texts"


def test_crisis_recall_and_precision(outcomes: list[tuple[dict[str, Any], str]]) -> None:
    precision, recall, misses = _precision_recall(outcomes, "crisis")
    print(f"\ncrisis precision {precision:.3f} recall {recall:.3f}; errors: {misses}")
    assert recall >= 0.98, misses
    assert precision >= 0.95, misses


@pytest.mark.parametrize("level", ["emergency", "human", "normal"])
def test_other_levels_are_reasonable(
    outcomes: list[tuple[dict[str, Any], str]], level: str
) -> None:
    precision, recall, misses = _precision_recall(outcomes, level)
    print(f"\n{level} precision {precision:.3f} recall {recall:.3f}; errors: {misses}")
    assert precision >= 0.9, misses
    assert recall >= 0.9, misses


def test_no_crisis_is_reported_as_normal_in_either_language(
    outcomes: list[tuple[dict[str, Any], str]],
) -> None:
    # The worst error: a crisis that nobody looks at. Allow at most one per language.
    missed = Counter(
        item["lang"] for item, got in outcomes if item["level"] == "crisis" and got == "normal"
    )
    assert missed["en"] <= 1 and missed["zh"] <= 1, missed
