"""Unit tests for triage: normalisation, each robustness class, idioms, priority, loading."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.triage import DEFAULT_DIRECTORY, Triage, TriageResult
from tests.support.triage import write_rules

MINI = """
    lang: xx
    normalise:
      leet: {"1": i, "3": e, "0": o}
      fuzzy: {words: [myself], protect: [itself]}
    signals:
      - name: direct
        level: crisis
        phrases: ["kill myself", "{want|wants} to {be|} gone"]
      - name: weak_a
        level: crisis
        weight: 0.5
        phrases: ["tired"]
      - name: weak_b
        level: crisis
        weight: 0.5
        phrases: ["alone"]
      - name: sad_emoji
        level: crisis
        weight: 0.5
        context: true
        phrases: ["😭"]
      - name: fire
        level: emergency
        phrases: ["on fire"]
      - name: person
        level: human
        phrases: ["real person"]
      - name: gap
        level: human
        phrases: ["talk * officer"]
    exceptions:
      - name: idiom
        phrases: ["dying to know"]
"""


@pytest.fixture
def mini(tmp_path: Path) -> Triage:
    return Triage.load(write_rules(tmp_path, MINI))


# ---------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("I WANT", "i want"),  # casefold
        ("ＫＩＬＬ", "kil"),  # NFKC full-width, then squeezed
        ("don’t", "dont"),  # curly apostrophe removed
        ("k1ll mys3lf", "kil myself"),  # leet inside letter tokens
        ("call 110 now", "cal 10 now"),  # digits alone are not leet (squeezed like all text)
        ("diiiiie", "die"),  # repeated letters
        ("  many   spaces ", "many spaces"),
        ("kil myslef", "kil myself"),  # fuzzy correction of a key word
        ("itself", "itself"),  # protected real word is never "corrected"
        ("❤️", "❤"),  # emoji variation selector dropped
    ],
)
def test_normalise_latin(mini: Triage, raw: str, expected: str) -> None:
    assert mini.normalise(raw, "xx") == expected


def test_normalise_chinese(triage: Triage) -> None:
    assert triage.normalise("活著沒意思", "zh") == "活着没意思"  # Traditional -> Simplified
    assert triage.normalise("我 不 想 活", "zh") == "我不想活"  # spaces between CJK dropped
    assert triage.normalise("死死死", "zh") == "死"  # repeats squeezed
    assert triage.normalise("ＡＢＣ，", "zh") == "abc,"  # NFKC + casefold


def test_normalise_unknown_language(triage: Triage) -> None:
    with pytest.raises(KeyError):
        triage.normalise("x", "xx")


# ---------------------------------------------------------------------------- phrase syntax


def test_optional_group_and_gap(mini: Triage) -> None:
    assert mini.classify("I want to be gone").level == "crisis"
    assert mini.classify("she wants to gone").level == "crisis"  # empty option
    assert mini.classify("can I talk to a police officer").level == "human"  # "*" gap
    assert mini.classify("talk officer").level == "human"  # gap may be empty
    assert mini.classify("talk to one two three four five officer").level == "normal"


def test_word_boundaries_and_missing_spaces(mini: Triage) -> None:
    assert mini.classify("killmyself").level == "crisis"
    assert mini.classify("kill...myself").level == "crisis"
    assert mini.classify("I skill myself").level == "normal"
    assert mini.classify("on fireworks night").level == "normal"


# ---------------------------------------------------------------------------- scoring


def test_weak_signals_need_a_second_signal(mini: Triage) -> None:
    assert mini.classify("so tired").level == "normal"
    result = mini.classify("so tired and alone")
    assert result == TriageResult("crisis", ("weak_a", "weak_b"))


def test_emoji_never_escalates_alone(mini: Triage) -> None:
    assert mini.classify("😭😭😭").level == "normal"
    assert mini.classify("tired 😭").level == "crisis"


def test_priority_crisis_over_emergency_over_human(mini: Triage) -> None:
    assert mini.classify("house on fire, I want a real person").level == "emergency"
    assert mini.classify("house on fire, I will kill myself").level == "crisis"
    assert mini.classify("real person please").level == "human"
    assert mini.classify("hello") == TriageResult("normal", ())


def test_exception_blanks_only_its_span(mini: Triage) -> None:
    assert mini.classify("dying to know").level == "normal"
    assert mini.classify("dying to know, then I kill myself").level == "crisis"


# ---------------------------------------------------------------------------- shipped content


@pytest.mark.parametrize(
    "text",
    [
        "I want to k1ll mys3lf",  # leet
        "i want to kil myslef",  # misspelt
        "su1c1dal",  # leet in a single word
        "iwanttodie",  # missing spaces, with a letter shared by two words
        "i want to diiiiie",  # repeated letters
        "I don't want to wake up tomorrow",  # indirect
        "everyone would be better off without me",  # indirect
        "my friend says she wants to end it",  # third party
        "My dad told me he will kill himself",  # third party
        "goodbye everyone 😭💊",  # emoji adds weight to a weak signal
        "不想活了",
        "活着没意思",
        "想结束这一切",
        "我朋友说她想死",  # third party
        "我 不 想 活 了",  # spaces
        "活著沒意思",  # Traditional
    ],
)
def test_robustness_classes_are_crisis(triage: Triage, text: str) -> None:
    assert triage.classify(text).level == "crisis"


@pytest.mark.parametrize(
    "text",
    [
        "this fine is killing me",
        "累死了",
        "笑死我了",
        "killing it",
        "dying to know",
        "I could kill for a coffee",
        "想死你了",
        "热死了",
        "跳楼价",
        "😭🔪💊",
        "call 110",
    ],
)
def test_idioms_and_emoji_alone_are_normal(triage: Triage, text: str) -> None:
    assert triage.classify(text).level == "normal"


def test_idiom_does_not_hide_a_crisis_in_the_same_message(triage: Triage) -> None:
    assert triage.classify("累死了，真不想活了").level == "crisis"
    assert triage.classify("this fine is killing me, I want to kill myself").level == "crisis"


def test_lang_hint_never_limits_the_languages(triage: Triage) -> None:
    # A citizen whose Telegram client is English may still write in Chinese.
    assert triage.classify("我不想活了", lang="en").level == "crisis"
    assert triage.classify("I want to kill myself", lang="zh").level == "crisis"
    assert triage.classify("I want to kill myself", lang="fr").level == "crisis"


def test_latin_words_in_chinese_phrases_keep_boundaries(triage: Triage) -> None:
    # The Chinese insult "sb" must not fire inside "husband".
    assert triage.classify("my husband is at work").level == "normal"
    assert triage.classify("你是sb吗").level == "human"


def test_empty_and_whitespace_messages(triage: Triage) -> None:
    assert triage.classify("") == TriageResult("normal", ())
    assert triage.classify("   \n").level == "normal"


def test_result_is_immutable_and_classifier_is_thread_safe(triage: Triage) -> None:
    result = triage.classify("I want to kill myself")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.level = "normal"  # type: ignore[misc]
    texts = ["I want to kill myself", "我家着火了", "转人工", "How do I renew my ID card?"] * 50
    expected = [triage.classify(t) for t in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(triage.classify, texts)) == expected


def test_shipped_languages(triage: Triage) -> None:
    assert DEFAULT_DIRECTORY.is_dir()
    assert set(triage.languages) >= {"en", "zh"}


# ---------------------------------------------------------------------------- loading errors


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("lang: xx\nsignals: [{name: a, level: panic, phrases: [x]}]\n", "level"),
        ("lang: xx\nsignals: [{name: a, level: crisis}]\n", "at least one phrase"),
        ("lang: xx\nsignals: [{name: a, level: crisis, patterns: ['(']}]\n", "pattern"),
        (
            "lang: xx\nsignals: [{name: a, level: crisis, patterns: ['{a|b} c']}]\n",
            "looks like a phrase",
        ),
        ("lang: xx\nsignals: [{name: a, level: crisis, phrases: ['{a|{b|c}}']}]\n", "braces"),
        ("lang: xx\nsignals: [{name: a, level: crisis, weight: 2, phrases: [x]}]\n", "weight"),
        ("lang: xx\nsignals: [{name: a, level: crisis, phrases: [x], typo: 1}]\n", "typo"),
        ("lang: xx\nnormalise: {char_map: {ab: c}}\nsignals: []\n", "one character"),
    ],
)
def test_invalid_content_is_rejected_with_a_message(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Triage.load(write_rules(tmp_path, body))


def test_empty_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no triage"):
        Triage.load(tmp_path)


def test_stacking_signal_counts_distinct_phrases(tmp_path: Path) -> None:
    body = """
        lang: xx
        signals:
          - name: farewell
            level: crisis
            weight: 0.5
            stack: true
            phrases: ["goodbye", "love you all"]
          - name: weak
            level: crisis
            weight: 0.5
            phrases: ["tired", "alone"]
    """
    triage = Triage.load(write_rules(tmp_path, body))
    assert triage.classify("goodbye").level == "normal"
    assert triage.classify("goodbye goodbye").level == "normal"  # same phrase counts once
    assert triage.classify("goodbye, love you all") == TriageResult("crisis", ("farewell",))
    assert triage.classify("tired and alone").level == "normal"  # not stacking: counts once


def test_max_words_signal_counts_only_in_short_messages(tmp_path: Path) -> None:
    body = """
        lang: xx
        signals:
          - name: bare
            level: crisis
            max_words: 3
            phrases: ["noose"]
        exceptions:
          - name: idiom
            phrases: ["dying to know"]
    """
    triage = Triage.load(write_rules(tmp_path, body))
    assert triage.classify("noose").level == "crisis"
    assert triage.classify("a noose tonight").level == "crisis"
    assert triage.classify("where can I buy a noose knot guide").level == "normal"
    # Words are counted before idioms are blanked, so an idiom cannot shorten a message.
    assert triage.classify("dying to know noose").level == "normal"


# ---------------------------------------------------------------- long messages (anchor gates)
_FILLER = "I renewed my ID card at the Example City office and the queue was short. "


@pytest.mark.parametrize(
    "sentence",
    [
        "I want to kill myself.",
        "I have been cutting myself every night.",
        "honestly I long so much for death.",
        "I feel so alone and it is only going to get worse.",
        "I took about 40 of my sleeping pills.",
        "I cut again last night.",
        "goodbye everyone, I love you all.",
    ],
)
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_crisis_inside_a_long_message_is_found(triage: Triage, sentence: str, where: str) -> None:
    # Long messages skip regexes whose anchor words are absent; the crisis must still be seen
    # wherever it sits.
    filler = _FILLER * 50
    half = _FILLER * 25
    text = {
        "start": sentence + " " + filler,
        "middle": half + sentence + " " + half,
        "end": filler + sentence,
    }[where]
    assert len(text) > 3000
    assert triage.classify(text).level == "crisis"


def test_long_benign_message_stays_normal(triage: Triage) -> None:
    assert triage.classify(_FILLER * 60).level == "normal"


def test_gated_and_full_search_agree_on_labelled_texts(triage: Triage) -> None:
    # Padding a labelled message past the gate threshold with neutral text must not change
    # its level: the anchor gates only skip regexes that cannot match.
    import yaml

    labelled = yaml.safe_load((Path(__file__).with_name("labelled.yaml")).read_text("utf-8"))
    for item in labelled["items"]:
        if item["kind"] in {"no_spaces", "emoji_alone", "emoji_combo", "traditional", "frame_bare"}:
            continue  # glued words and bare means are only promised for short messages
        short = triage.rules(item["text"], item["lang"]).level
        padded = triage.rules(item["text"] + ". " + _FILLER * 6, item["lang"]).level
        assert padded == short, item["text"]


async def test_slow_parts_are_classified_off_the_event_loop(triage: Triage) -> None:
    calls: list[tuple[str, int]] = []

    class Probe(Triage):
        def rules(self, text: str, lang: str | None = None) -> TriageResult:
            calls.append(("rules", threading.get_ident()))
            return super().rules(text, lang)

        def decide_many(
            self, items: list[tuple[str, TriageResult, dict[str, tuple[str, ...]]]]
        ) -> list[TriageResult]:
            calls.append(("models", threading.get_ident()))
            return super().decide_many(items)

    probe = Probe(triage._languages, triage._models)
    loop_thread = threading.get_ident()
    # A short crisis: the rules decide on the loop, no model is asked.
    assert (await probe.aclassify("I want to kill myself", "en")).level == "crisis"
    assert calls == [("rules", loop_thread)]
    # A short ordinary message the word vectors cannot rule out: rules on the loop, the
    # deciding model in a worker thread (through the models' queue; ranked on the loop).
    calls.clear()
    ordinary = "where can I pay a traffic fine"
    assert probe.needs_models(ordinary, probe.rank(ordinary)[0])
    assert await probe.aclassify(ordinary, "en") == triage.classify(ordinary, "en")
    assert [name for name, _ in calls] == ["rules", "models"]
    assert calls[0][1] == loop_thread and calls[1][1] != loop_thread
    # A long message: even the rules run in a worker thread.
    calls.clear()
    long = "My passport renewal is attached and the office was helpful. " * 12
    result = await probe.aclassify(long + "I want to kill myself", "en")
    assert result == triage.classify(long + "I want to kill myself", "en")
    assert result.level == "crisis"
    assert calls == [("rules", calls[0][1])] and calls[0][1] != loop_thread


def test_a_message_is_searched_once_whoever_asks_and_in_whatever_language() -> None:
    # The intake reads a text on arrival (no language known yet), the handler again with the
    # citizen's language: the regexes run once, and the language only orders the result.
    fresh = Triage.load(DEFAULT_DIRECTORY, models=False)
    text = "i cant go on anymore, 我不想活了"
    arrival = fresh.rules(text)
    searched = fresh._hits.cache_info().misses
    again = [fresh.rules(text, lang) for lang in ("en", "zh", "zh-latn", None)]
    assert fresh._hits.cache_info().misses == searched
    assert {r.level for r in again} == {arrival.level} == {"crisis"}
    assert set(again[1].signals) == set(arrival.signals)
