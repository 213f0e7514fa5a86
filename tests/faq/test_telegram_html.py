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


def test_fit_html_cuts_what_telegram_counts_never_inside_a_tag_or_entity() -> None:
    from bot.faq.telegram_html import check_html, fit_html

    escaped = "&lt;" * 4000  # 4,000 visible characters, 16,000 written
    assert fit_html(escaped) == escaped
    cut = fit_html(escaped, 3000)
    issues, visible = check_html(cut)
    assert issues == [] and visible == 3000 and cut.endswith("&lt;…")
    cut = fit_html("<b>bold <i>" + "x" * 5000 + "</i></b> tail")
    issues, visible = check_html(cut)
    assert issues == [] and visible == 4096 and cut.endswith("x…</i></b>")
    # Emoji outside the BMP count two, as Telegram counts them; never split.
    assert fit_html("ab😀😀", 4) == "ab…"
    assert fit_html('<a href="https://example.org/?a=1&amp;b=2">link</a>', 3) == (
        '<a href="https://example.org/?a=1&amp;b=2">li…</a>'
    )
