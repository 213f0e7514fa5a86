"""The validator of Telegram's HTML subset."""

from __future__ import annotations

import pytest

from bot.faq.telegram_html import check_html, visible_text


def messages(text: str) -> list[str]:
    return [issue.message for issue in check_html(text)[0]]


def test_valid_html_passes_and_counts_visible_text() -> None:
    text = (
        '<b>Bold</b> <i>it</i> <a href="https://example.org">link</a> &lt;tag&gt; &amp; '
        '<tg-spoiler>s</tg-spoiler> <span class="tg-spoiler">x</span> '
        '<pre><code class="language-python">x = 1</code></pre> <blockquote>q</blockquote>'
    )
    issues, length = check_html(text)
    assert issues == []
    assert length == len("Bold it link <tag> & s x x = 1 q")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a < b", "unescaped '<'"),
        ("fish & chips", "unescaped '&'"),
        ("&nbsp;", "unsupported entity"),
        ("<div>x</div>", "not supported"),
        ("<b>x", "never closed"),
        ("<b><i>x</b></i>", "unbalanced"),
        ('<a href="javascript:alert(1)">x</a>', "must use http"),
        ("<a>x</a>", "needs an href"),
        ('<b class="x">x</b>', "attribute 'class'"),
        ("<code><b>x</b></code>", "inside <code>"),
        ("<blockquote><blockquote>x</blockquote></blockquote>", "nested <blockquote>"),
        ('<span class="red">x</span>', "tg-spoiler"),
    ],
)
def test_invalid_html_is_reported(text: str, fragment: str) -> None:
    assert any(fragment in m for m in messages(text)), messages(text)


def test_length_counts_utf16_units_after_entities() -> None:
    _, length = check_html("😀&amp;")
    assert length == 3  # the emoji is two UTF-16 code units, &amp; is one character


def test_visible_text_strips_tags() -> None:
    assert visible_text("<b>Hi</b> &amp; bye").split() == ["Hi", "&", "bye"]
