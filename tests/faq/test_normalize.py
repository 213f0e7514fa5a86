"""Normalisation, script detection, stemming and Chinese handling."""

from __future__ import annotations

import pytest

from bot.faq.index import terms
from bot.faq.normalize import detect_script, normalize, split_runs, stem_en


def test_nfkc_fullwidth_and_casefold() -> None:
    assert normalize("ＩＤ　Ｃａｒｄ") == "id card"
    assert normalize("STRASSE Straße") == "strasse strasse"


def test_punctuation_and_emoji_become_spaces() -> None:
    assert normalize("Hello!!! 😀 How are you?!") == "hello how are you"
    assert normalize("身份证，丢了！😭") == "身份证 丢了"
    assert normalize("covid-19") == "covid 19"


def test_repeated_letters_squeezed_to_two() -> None:
    assert normalize("helloooooo") == "helloo"
    assert normalize("good") == "good"
    assert normalize("1000000") == "1000000"  # digits are never squeezed


def test_traditional_characters_map_to_simplified() -> None:
    assert normalize("護照遺失") == "护照遗失"


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("How do I apply?", "en"),
        ("如何办理身份证", "zh"),
        ("我的ID card丢了", "zh"),
        ("Как получить паспорт", "ru"),
        ("123 !!", "und"),
        ("", "und"),
    ],
)
def test_detect_script(text: str, script: str) -> None:
    assert detect_script(text) == script


def test_stemmer_unifies_inflections() -> None:
    assert stem_en("apply") == stem_en("applies") == stem_en("applied") == stem_en("applying")
    assert stem_en("delete") == stem_en("deleted") == stem_en("deleting")
    assert stem_en("passports") == "passport"
    assert stem_en("stopped") == stem_en("stop")
    assert stem_en("address") == "address"  # "ss" is not a plural


def test_split_runs_separates_han_and_latin() -> None:
    assert split_runs("办理id卡 ok") == [(True, "办理"), (False, "id"), (True, "卡"), (False, "ok")]


def test_chinese_terms_are_unigrams_and_bigrams() -> None:
    assert terms("护照丢了") == ["护", "照", "丢", "了", "护照", "照丢", "丢了"]


def test_english_terms_drop_single_letters_and_stem() -> None:
    assert terms("what s my passports") == ["what", "my", "passport"]
