"""Matching outcomes, thresholds, ties, language choice and synonyms."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.faq.index import Synonyms
from bot.faq.loader import load_knowledge
from bot.faq.matcher import Matcher, Scored
from bot.faq.models import FaqEntry, KnowledgeBase, LocalizedContent


def make_kb(phrasings: dict[str, list[str]], lang: str = "en") -> KnowledgeBase:
    kb = KnowledgeBase()
    for eid, phrases in phrasings.items():
        content = LocalizedContent(question=phrases[0], alternatives=phrases[1:], answer="a")
        kb.entries[eid] = FaqEntry(id=eid, category="t", content={lang: content})
    return kb


@pytest.fixture
def matcher(data_dir: Path) -> Matcher:
    kb, problems = load_knowledge(data_dir / "good")
    assert problems == []
    return Matcher(kb)


def test_exact_phrasing_is_answered(matcher: Matcher) -> None:
    result = matcher.match("How do I pay a traffic fine?", "en")
    assert result.outcome == "answer"
    assert result.best == Scored("traffic-fine", result.results[0].score)
    assert result.results[0].score > 0.9


def test_scores_are_sorted_between_zero_and_one(matcher: Matcher) -> None:
    for text in ("passport", "lost my passport", "fine", "zzz unrelated words"):
        scores = [s.score for s in matcher.match(text, "en").results]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert len(scores) <= 5


def test_unrelated_question_is_none(matcher: Matcher) -> None:
    result = matcher.match("what is the weather tomorrow", "en")
    assert result.outcome == "none"
    assert result.suggestions == []


def test_typo_is_matched_through_fuzzy_vocabulary(matcher: Matcher) -> None:
    result = matcher.match("I lost my pasport", "en")
    assert result.results[0].entry_id == "passport-lost"


def test_synonym_from_knowledge_is_used(matcher: Matcher) -> None:
    # "travel document" is a synonym of "passport" in the fixture's synonyms/en.yaml.
    result = matcher.match("my travel document was stolen", "en")
    assert result.results[0].entry_id == "passport-lost"


def test_chinese_question_matches(matcher: Matcher) -> None:
    result = matcher.match("护照不见了怎么办", "zh")
    assert result.lang == "zh"
    assert result.results[0].entry_id == "passport-lost"


def test_script_overrides_the_citizen_language(matcher: Matcher) -> None:
    # An English-speaking citizen typing Chinese is searched in the Chinese index.
    assert matcher.match("交通罚款怎么交", "en").lang == "zh"
    assert matcher.match("pay a fine", "zh").lang == "en"
    assert matcher.match("pay a fine", "fr").lang == "en"


def test_exact_tie_is_a_close_call_not_a_guess() -> None:
    kb = make_kb({"a": ["reset my password"], "b": ["reset my password"]})
    result = Matcher(kb).match("reset my password", "en")
    assert result.results[0].score == pytest.approx(result.results[1].score, abs=1e-3)
    assert result.outcome == "suggest"
    assert {s.entry_id for s in result.suggestions} == {"a", "b"}


def test_decide_applies_thresholds_and_margin() -> None:
    m = Matcher(make_kb({"a": ["x"]}), answer_threshold=0.7, suggest_threshold=0.4, margin=0.1)
    assert m.decide([]) == "none"
    assert m.decide([Scored("a", 0.39)]) == "none"
    assert m.decide([Scored("a", 0.5)]) == "suggest"
    assert m.decide([Scored("a", 0.8)]) == "answer"
    assert m.decide([Scored("a", 0.8), Scored("b", 0.75)]) == "suggest"  # near-tie
    assert m.decide([Scored("a", 0.8), Scored("b", 0.69)]) == "answer"


def test_suggestions_are_at_most_three_above_threshold() -> None:
    kb = make_kb({k: [f"renew permit {k}"] for k in "abcde"})
    result = Matcher(kb, suggest_threshold=0.2).match("renew permit", "en")
    assert result.outcome == "suggest"
    assert len(result.results) == 5
    assert len(result.suggestions) == 3


def test_threshold_order_is_checked() -> None:
    with pytest.raises(ValueError):
        Matcher(make_kb({"a": ["x"]}), answer_threshold=0.3, suggest_threshold=0.5)


def test_best_phrasing_of_an_entry_counts_once() -> None:
    kb = make_kb({"a": ["lost wallet", "wallet lost", "i lost my wallet"], "b": ["lost dog"]})
    ids = [s.entry_id for s in Matcher(kb).match("lost wallet", "en").results]
    assert ids == ["a", "b"]


def test_synonyms_map_words_and_phrases() -> None:
    syn = Synonyms.from_groups([["licence", "license"], ["id card", "identity card"]])
    assert syn.apply("my identity card") == "my id card"
    assert syn.map_terms(["licens", "x"]) == ["licenc", "x"]


def test_synonyms_replace_in_one_pass_and_keep_canonical_phrases_whole() -> None:
    syn = Synonyms.from_groups(
        [["怎么办", "怎么处理"], ["办理", "办"], ["id card", "id", "identity card"]]
    )
    assert syn.apply("身份证丢了怎么处理") == "身份证丢了怎么办"  # not 怎么办理: no chains
    assert syn.apply("怎么办") == "怎么办"  # a canonical phrase is not cut up by a shorter source
    assert syn.apply("去派出所办") == "去派出所办理"
    assert syn.apply("lost my id card") == "lost my id card"  # not "id card card"
    assert syn.apply("lost my id at the bank") == "lost my id card at the bank"
    assert syn.apply("my identity card idea") == "my id card idea"  # whole words for Latin


def test_empty_and_punctuation_only_queries_are_none(matcher: Matcher) -> None:
    assert matcher.match("", "en").outcome == "none"
    assert matcher.match("?!?! 😀", "en").outcome == "none"


def test_chinese_numerals_compare_with_digits() -> None:
    kb = make_kb({"three": ["护照三个月后过期要换吗"], "six": ["护照六个月后过期要换吗"]}, "zh")
    results = Matcher(kb).match("护照3个月后过期要换吗", "zh").results
    assert results[0].entry_id == "three"
    assert results[0].score - results[1].score > 0.05


def test_a_different_number_is_a_different_question() -> None:
    # The first phrasing shares more words, but 110 is not 119.
    kb = make_kb({"police": ["110是报警电话吗"], "fire": ["119是火警电话吗"]}, "zh")
    assert Matcher(kb).match("119是报警电话吗", "zh").results[0].entry_id == "fire"


def test_a_bound_is_not_a_conflicting_number() -> None:
    kb = make_kb({"minor": ["未满十六岁可以办身份证吗"], "online": ["身份证可以网上办吗"]}, "zh")
    assert Matcher(kb).match("孩子十岁可以办身份证吗", "zh").results[0].entry_id == "minor"


def test_phrasing_sharing_only_common_terms_is_still_found() -> None:
    # 55 longer phrasings make every term of "身份证怎么补办" a common one (walked only for
    # candidates found otherwise); the query's rare word (急用) only occurs in another entry.
    # The short phrasing must still be scored.
    pool = "甲乙丙丁戊己庚辛壬癸"
    names = [a + b for a in pool for b in pool]
    phrasings = {f"f{i}": [f"{names[i]}区居民身份证怎么补办要带什么证明"] for i in range(55)}
    phrasings.update({f"p{i}": [f"{names[i]}区公园几点开门"] for i in range(100)})
    phrasings["target"] = ["身份证怎么补办"]
    phrasings["decoy"] = ["急用钱被骗了怎么办"]
    result = Matcher(make_kb(phrasings, "zh")).match("急用 身份证怎么补办", "zh")
    assert result.results[0].entry_id == "target"
