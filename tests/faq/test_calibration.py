"""The calibrated thresholds on the real sample content and the out-of-domain questions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.faq.loader import load_knowledge
from bot.faq.matcher import Matcher, Scored
from bot.faq.models import ELSEWHERE
from tests.support import REPO

OOD = Path(__file__).parent / "data" / "out_of_domain.yaml"


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    kb, problems = load_knowledge(REPO / "knowledge")
    assert not [p for p in problems if p.severity == "error"]
    return Matcher(kb)


def _not_ours(matcher: Matcher, entry_id: str) -> bool:
    return matcher.kb.entries[entry_id].category == ELSEWHERE


def test_out_of_domain_questions_are_rarely_answered_by_a_police_entry(matcher: Matcher) -> None:
    """An out-of-domain question gets "none", choices, or the honest "not ours, ask them" of
    an ``elsewhere`` entry; a confident answer from a police entry is wrong. Of these 192, 12
    (6 %) get one (the first 64 alone: 6 before the ``elsewhere`` entries, 2 with them)."""
    data = yaml.safe_load(OOD.read_text(encoding="utf-8"))
    results = [matcher.match(q, lang) for lang in ("en", "zh") for q in data[lang]]
    assert len(results) >= 190
    wrong = [
        r for r in results if r.outcome == "answer" and not _not_ours(matcher, r.best.entry_id)
    ]
    assert len(wrong) / len(results) <= 0.10, [r.best for r in wrong]
    honest = [
        r
        for r in results
        if r.outcome == "none" or (r.outcome == "answer" and _not_ours(matcher, r.best.entry_id))
    ]
    assert len(honest) / len(results) >= 0.5


@pytest.mark.parametrize(
    ("question", "lang", "outcome"),
    [
        ("what time does the post office open", "en", "suggest"),
        ("邮局几点上班", "zh", "suggest"),
        ("is the police station open at night", "en", "answer"),
        ("派出所周末上班吗", "zh", "answer"),
    ],
)
def test_office_hours_are_answered_when_a_police_place_is_named(
    matcher: Matcher, question: str, lang: str, outcome: str
) -> None:
    """The service halls' hours read like any place's ("when does it open"): their entry's
    ``about:`` words decide whether it is answered or offered."""
    result = matcher.match(question, lang)
    assert result.best is not None and result.best.entry_id == "office-hours"
    assert result.outcome == outcome


@pytest.mark.parametrize(
    ("question", "lang"),
    [
        ("what's the weather tomorrow", "en"),  # was a confident "subscribe to alerts"
        ("when does the zoo open", "en"),  # was the service halls' opening hours
        ("动物园几点开门", "zh"),
        ("明天天气怎么样", "zh"),
    ],
)
def test_questions_for_someone_else_get_not_ours(
    matcher: Matcher, question: str, lang: str
) -> None:
    result = matcher.match(question, lang)
    assert result.best is not None and _not_ours(matcher, result.best.entry_id)


@pytest.mark.parametrize(
    ("question", "lang"),
    [
        ("how long does it take", "en"),
        ("What should I do?", "en"),
        ("how much does it cost?", "en"),
        ("when can I get it", "en"),
    ],
)
def test_vague_questions_get_choices_not_a_confident_answer(
    matcher: Matcher, question: str, lang: str
) -> None:
    """A question that names nothing ("how long does it take?" matched a passport phrasing at
    0.79) is offered choices; the sample tests have none such, so their answers stay."""
    result = matcher.match(question, lang)
    assert result.outcome == "suggest" and result.results


def test_sample_tests_are_mostly_answered_and_rarely_wrong(matcher: Matcher) -> None:
    answered = wrong = total = 0
    for entry in matcher.kb.entries.values():
        for lang, content in entry.content.items():
            for phrase in content.tests:
                result = matcher.match(phrase, lang)
                total += 1
                if result.outcome == "answer":
                    answered += 1
                    assert result.best is not None
                    wrong += result.best.entry_id != entry.id
    assert answered / total >= 0.6
    assert wrong / answered <= 0.02


def test_near_ties_stay_suggestions(matcher: Matcher) -> None:
    close = [Scored("a", 0.9), Scored("b", 0.9 - matcher.margin / 2)]
    assert matcher.decide(close) == "suggest"
    clear = [Scored("a", 0.9), Scored("b", 0.9 - matcher.margin - 0.01)]
    assert matcher.decide(clear) == "answer"
    assert matcher.decide([Scored("a", matcher.suggest_threshold - 0.01)]) == "none"
