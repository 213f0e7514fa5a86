"""Small-talk detection from the repository phrases and from loaded knowledge."""

from __future__ import annotations

import pytest

from bot.faq.smalltalk import SmallTalkDetector, detect_small_talk


@pytest.mark.parametrize(
    ("text", "lang", "kind"),
    [
        ("Hi!", "en", "greeting"),
        ("hello there", "en", "greeting"),
        ("Thanks a lot!!", "en", "thanks"),
        ("thank you officer", "en", "thanks"),
        ("bye", "en", "bye"),
        ("hello, thanks", "en", "thanks"),
        ("你好", "zh", "greeting"),
        ("您好啊", "zh", "greeting"),
        ("谢谢你啊", "zh", "thanks"),
        ("再见！", "zh", "bye"),
        ("谢谢 再见", "zh", "bye"),
        ("谢谢", "en", "thanks"),  # phrase lists of other languages are tried too
    ],
)
def test_small_talk_detected(text: str, lang: str, kind: str) -> None:
    assert detect_small_talk(text, lang) == kind


@pytest.mark.parametrize(
    "text",
    [
        "hi, I lost my passport",
        "你好，我的身份证丢了",
        "how are you",
        "thanks for nothing, idiot",
        "",
    ],
)
def test_questions_are_not_small_talk(text: str) -> None:
    assert detect_small_talk(text, "en") is None


def test_detector_from_phrase_lists() -> None:
    det = SmallTalkDetector({"thanks": {"en": ["cheers"]}, "filler": {"en": ["mate"]}})
    assert det.detect("Cheers mate", "en") == "thanks"
    assert det.detect("hello", "en") is None
