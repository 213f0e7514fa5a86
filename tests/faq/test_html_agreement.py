"""The curators' HTML linter and the emulator's Telegram parser must agree in one direction.

`bot/faq/telegram_html.py` lints curated answers (every problem, with offsets, and stricter
than Telegram where Telegram's documentation asks for more); `bot/emulator/entities.py` parses
like Telegram does (the first error, Telegram's wording, entities). They serve different
readers, so both exist; what must hold is that nothing the linter passes is refused by
Telegram's parser, and that both see the same visible text.
"""

from __future__ import annotations

import pytest

from bot.emulator.entities import EntityParseError, parse_html, utf16_len
from bot.faq.loader import load_knowledge
from bot.faq.telegram_html import check_html
from tests.support import KNOWLEDGE

VALID = [
    '<b>Bold</b> <i>it</i> <a href="https://example.org">link</a> &lt;tag&gt; &amp; x',
    '<tg-spoiler>s</tg-spoiler> <span class="tg-spoiler">x</span> <u>u</u> <s>s</s>',
    '<pre><code class="language-python">x = 1</code></pre> <blockquote>q</blockquote>',
    "😀 Example City &#128110; <b>110</b>\nline two",
    '<blockquote expandable>long</blockquote> <a href="tg://user?id=1">Ann</a>',
]
REFUSED_BY_TELEGRAM = [
    "a < b",
    "<div>x</div>",
    "<b>x",
    "<b><i>x</b></i>",
    '<span class="red">x</span>',
    "<b>x</i>",
]


@pytest.mark.parametrize("text", VALID)
def test_what_the_linter_passes_telegram_parses_to_the_same_text(text: str) -> None:
    issues, length = check_html(text)
    assert issues == []
    visible, _ = parse_html(text)
    assert utf16_len(visible.strip()) == length


@pytest.mark.parametrize("text", REFUSED_BY_TELEGRAM)
def test_what_telegram_refuses_the_linter_reports(text: str) -> None:
    with pytest.raises(EntityParseError):
        parse_html(text)
    assert check_html(text)[0]


def test_every_sample_answer_parses_as_telegram_would() -> None:
    knowledge, _ = load_knowledge(KNOWLEDGE)
    checked = 0
    for entry in knowledge.entries.values():
        for lang, content in entry.content.items():
            visible, _ = parse_html(content.answer)
            assert utf16_len(visible) <= 4096, (entry.id, lang)
            checked += 1
    assert checked >= 120  # 60+ entries in two languages
