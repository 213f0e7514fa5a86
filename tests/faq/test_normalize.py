"""Normalisation, script detection, stemming and Chinese handling."""

from __future__ import annotations

import pytest

from bot.faq.normalize import (
    detect_script,
    han_numerals_to_digits,
    normalize,
    number_units,
    numbers_conflict,
    split_runs,
    stem_en,
    terms,
)


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("两个月", "2 个月"),
        ("十三岁", "13 岁"),
        ("二十三周六天", "23 周 6 天"),
        ("一百零五元", "105 元"),
        ("二〇二四年", "2024 年"),
        ("第一次办理", "第 1 次办理"),
        # Not counts: left alone.
        ("一直咳嗽", "一直咳嗽"),
        ("一般", "一般"),
        ("十分严重", "十分严重"),
        ("有一点", "有一点"),
        ("三四天", "三四天"),  # a range
    ],
)
def test_counted_chinese_numerals_become_digits(text: str, expected: str) -> None:
    assert han_numerals_to_digits(text) == expected


def test_number_units_pair_numbers_with_measure_words() -> None:
    assert number_units("孩子 3 岁 发烧 2 天") == {("3", "岁"), ("2", "天")}
    assert number_units("2 个月 3个孩子") == {("2", "个月"), ("3", "个")}
    assert number_units("拨打110") == {("110", "")}
    assert number_units("16 周岁") == {("16", "岁")}
    # Digits inside Latin words and bounds are not values.
    assert number_units("covid19") == frozenset()
    assert number_units("16岁以下 满3个月 超过 7 天 3天内") == frozenset()


def test_numbers_conflict_only_on_the_same_unit() -> None:
    assert numbers_conflict(number_units("13价"), number_units("23价"))
    assert numbers_conflict(number_units("110"), number_units("119"))
    assert not numbers_conflict(number_units("13价"), number_units("13价 2 针"))
    assert not numbers_conflict(number_units("3岁"), number_units("2 天"))
    assert not numbers_conflict(number_units("3岁"), frozenset())
