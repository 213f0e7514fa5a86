"""Telegram HTML parsing and automatic entity detection."""

from __future__ import annotations

import pytest

from bot.emulator.entities import (
    EntityParseError,
    detect_entities,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    strip_text,
    utf16_len,
)


def test_every_allowed_tag_maps_to_its_entity() -> None:
    html = (
        "<b>b</b><strong>b</strong><i>i</i><em>i</em><u>u</u><ins>u</ins><s>s</s>"
        "<strike>s</strike><del>s</del><tg-spoiler>p</tg-spoiler><code>c</code><pre>p</pre>"
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji><blockquote>q</blockquote>'
    )
    text, entities = parse_html(html)
    assert text == "bbiiuussspcp👍q"
    assert [e["type"] for e in entities] == [
        "bold",
        "bold",
        "italic",
        "italic",
        "underline",
        "underline",
        "strikethrough",
        "strikethrough",
        "strikethrough",
        "spoiler",
        "code",
        "pre",
        "custom_emoji",
        "blockquote",
    ]


def test_nested_entities_are_ordered_outer_first() -> None:
    text, entities = parse_html("<b>bold <i>both</i></b>")
    assert text == "bold both"
    assert entities == [
        {"type": "bold", "offset": 0, "length": 9},
        {"type": "italic", "offset": 5, "length": 4},
    ]


def test_pre_code_language_and_escapes() -> None:
    text, entities = parse_html(
        '<pre><code class="language-python">if a &lt; b &amp;&amp; c:</code></pre> &#128110; &#x41;'
    )
    assert text == "if a < b && c: 👮 A"
    assert entities == [{"type": "pre", "offset": 0, "length": 14, "language": "python"}]


def test_unknown_named_entity_stays_literal() -> None:
    assert parse_html("Tom &copy; &nbsp;")[0] == "Tom &copy; &nbsp;"


def test_mention_link_becomes_text_mention() -> None:
    _, entities = parse_html('<a href="tg://user?id=42">Officer</a>')
    assert entities == [{"type": "text_mention", "user_id": 42, "offset": 0, "length": 7}]


@pytest.mark.parametrize(
    ("html", "message"),
    [
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<br>", 'Unsupported start tag "br" at byte offset 0'),
        ("é<p>", 'Unsupported start tag "p" at byte offset 2'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("x <b", "Unclosed start tag at byte offset 2"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ("<br/>", 'Unsupported start tag "br/" at byte offset 0'),
        ("<b />x</b>", 'Empty attribute name in the tag "b" at byte offset 0'),
        ('<a href="x"', "Unclosed start tag at byte offset 0"),
        ("<a href=", 'Unclosed start tag "a" at byte offset 0'),
        # An unquoted value may only be a name token: letters, digits, "." and "-".
        ("<a href=https://example.org>x</a>", "Unexpected end of name token at byte offset 8"),
        ("é<a href=ex_ample>x</a>", "Unexpected end of name token at byte offset 10"),
        (
            "<tg-emoji>x</tg-emoji>",
            'Tag "tg-emoji" must have attribute "emoji-id" at byte offset 0',
        ),
    ],
)
def test_errors_name_the_problem_and_byte_offset(html: str, message: str) -> None:
    with pytest.raises(EntityParseError) as caught:
        parse_html(html)
    assert str(caught.value) == message


def test_unquoted_name_token_values_and_bare_end_tags_are_accepted() -> None:
    text, entities = parse_html(
        "<span class=tg-spoiler>s</span> <blockquote expandable>q</> <a href=Example.org>x</a>"
    )
    assert text == "s q x"
    assert entities == [
        {"type": "spoiler", "offset": 0, "length": 1},
        {"type": "expandable_blockquote", "offset": 2, "length": 1},
        # A name token is lower-cased.
        {"type": "text_link", "url": "example.org", "offset": 4, "length": 1},
    ]


def test_utf16_length_counts_astral_characters_twice() -> None:
    assert utf16_len("a🚓b") == 4
    text, entities = parse_html("🚓<b>x</b>")
    assert entities == [{"type": "bold", "offset": 2, "length": 1}]
    assert text == "🚓x"


def test_strip_shifts_and_clips_entities() -> None:
    text, entities = strip_text("  <b>hi</b>  ", [])
    assert text == "<b>hi</b>"
    text, entities = strip_text("  hi  ", [{"type": "bold", "offset": 0, "length": 4}])
    assert (text, entities) == ("hi", [{"type": "bold", "offset": 0, "length": 2}])


def test_detects_commands_mentions_links_hashtags_and_email() -> None:
    text = "/start@safewell_bot see https://police.example.org #safety @example_city a@b.org"
    found = {
        (e["type"], text[e["offset"] : e["offset"] + e["length"]])
        for e in detect_entities(text, [])
    }
    assert found == {
        ("bot_command", "/start@safewell_bot"),
        ("url", "https://police.example.org"),
        ("hashtag", "#safety"),
        ("mention", "@example_city"),
        ("email", "a@b.org"),
    }


def test_detection_skips_code_and_paths() -> None:
    assert detect_entities("/usr/bin is a path", []) == []
    code = [{"type": "code", "offset": 0, "length": 6}]
    assert detect_entities("/start", code) == code


def test_markdown_v2_markup_and_escapes() -> None:
    text, entities = parse_markdown_v2(
        "*Call* _110_ __now__ ~not~ ||secret|| [site](https://example.org/a\\)b) "
        "`x\\`y` Example City\\. 1\\+1\\=2"
    )
    assert text == "Call 110 now not secret site x`y Example City. 1+1=2"
    assert [(e["type"], e["offset"], e["length"]) for e in entities] == [
        ("bold", 0, 4),
        ("italic", 5, 3),
        ("underline", 9, 3),
        ("strikethrough", 13, 3),
        ("spoiler", 17, 6),
        ("text_link", 24, 4),
        ("code", 29, 3),
    ]
    assert entities[5]["url"] == "https://example.org/a)b"


def test_markdown_v2_pre_language_and_blockquote() -> None:
    text, entities = parse_markdown_v2("```python\nprint(1)\n```\n>quoted\n>lines\nafter")
    assert text == "print(1)\n\nquoted\nlines\nafter"
    assert entities == [
        {"type": "pre", "language": "python", "offset": 0, "length": 9},
        {"type": "blockquote", "offset": 10, "length": 12},
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Example City.", "Character '.' is reserved and must be escaped with the preceding '\\'"),
        ("call 110!", "Character '!' is reserved"),
        ("*bold", "Can't find end of Bold entity at byte offset 0"),
        ("`code", "Can't find end of Code entity at byte offset 0"),
    ],
)
def test_markdown_v2_errors(source: str, message: str) -> None:
    with pytest.raises(EntityParseError) as caught:
        parse_markdown_v2(source)
    assert str(caught.value).startswith(message)


def test_legacy_markdown() -> None:
    text, entities = parse_markdown("*Call* _now_ [map](https://example.org) 1.5!")
    assert text == "Call now map 1.5!"
    assert [e["type"] for e in entities] == ["bold", "italic", "text_link"]
    with pytest.raises(EntityParseError, match="Can't find end of the entity starting at byte"):
        parse_markdown("*open")
