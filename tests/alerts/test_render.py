"""Tests for rendering alerts as Telegram HTML for citizens."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.alerts.cap import parse_cap
from bot.alerts.catalog import Catalog
from bot.alerts.render import (
    TELEGRAM_TEXT_LIMIT,
    category_label,
    normalize_lang,
    render_alert,
    render_cap_alert,
)
from bot.alerts.service import parse_when, render_for
from bot.db.models import Alert
from bot.faq.telegram_html import utf16_len

DATA = Path(__file__).parent / "data"
CST = timezone(timedelta(hours=8))
SENT = datetime(2026, 11, 21, 10, 0, tzinfo=CST)
EXPIRES = datetime(2026, 11, 22, 10, 0, tzinfo=CST)
TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre"}


class TagChecker(HTMLParser):
    """Checks tags are Telegram-supported and balanced, and collects the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.visible: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in TELEGRAM_TAGS, f"unsupported tag <{tag}>"
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"

    def handle_data(self, data: str) -> None:
        self.visible.append(data)


def visible_text(html_text: str) -> str:
    checker = TagChecker()
    checker.feed(html_text)
    checker.close()
    assert checker.stack == []
    return "".join(checker.visible)


def render(**overrides: Any) -> Any:
    args: dict[str, Any] = {
        "headline": "Gas leak near Central Station",
        "description": "A gas main is leaking on Station Road.",
        "instruction": "Keep away from Station Road.",
        "severity": "Severe",
        "urgency": "Immediate",
        "category_name": "Public safety",
        "areas_text": "Central District, Example City",
        "sent_at": SENT,
        "expires_at": EXPIRES,
        "lang": "en",
        "kind": "alert",
    }
    args.update(overrides)
    return render_alert(**args)


def test_english_alert_layout() -> None:
    out = render()
    assert out.text.startswith("🟠 <b>SEVERE</b> · Public safety · Act now\n<b>Gas leak")
    text = visible_text(out.text)
    assert "A gas main is leaking on Station Road." in text
    assert "What to do: Keep away from Station Road." in text
    assert "📍 Area: Central District, Example City" in text
    assert "Issued: 2026-11-21 10:00 (UTC+08:00)" in text
    assert "Expires: 2026-11-22 10:00 (UTC+08:00)" in text
    assert out.disable_notification is False


def test_every_supplied_string_is_escaped() -> None:
    evil = '<a href="x">&amp;</a><script>'
    out = render(
        headline=evil,
        description=evil,
        instruction=evil,
        category_name=evil,
        areas_text=evil,
    )
    assert "<script>" not in out.text
    assert '<a href="x">' not in out.text
    assert out.text.count("&lt;a href=&quot;x&quot;&gt;&amp;amp;&lt;/a&gt;&lt;script&gt;") == 5
    # What a citizen sees is exactly the string supplied.
    assert visible_text(out.text).count(evil) == 5


@pytest.mark.parametrize(
    ("severity", "en", "zh", "silent"),
    [
        ("Extreme", "🔴 <b>EXTREME</b>", "🔴 <b>特别严重</b>", False),
        ("Severe", "🟠 <b>SEVERE</b>", "🟠 <b>严重</b>", False),
        ("Moderate", "🟡 <b>MODERATE</b>", "🟡 <b>较重</b>", False),
        ("Minor", "🔵 <b>MINOR</b>", "🔵 <b>一般</b>", True),
        ("Unknown", "⚪ <b>UNKNOWN</b>", "⚪ <b>未知</b>", False),
        ("bogus", "⚪ <b>UNKNOWN</b>", "⚪ <b>未知</b>", False),
    ],
)
def test_badges_and_silence(severity: str, en: str, zh: str, silent: bool) -> None:
    english = render(severity=severity)
    chinese = render(severity=severity, lang="zh-CN")
    assert english.text.startswith(en)
    assert chinese.text.startswith(zh)
    assert english.disable_notification is silent
    assert chinese.disable_notification is silent


def test_chinese_labels_and_marks() -> None:
    update = render(lang="zh-CN", kind="update", headline="车站附近燃气泄漏")
    text = visible_text(update.text)
    assert "🔄 更新" in text
    assert "应对措施：Keep" in text and "影响区域：Central" in text
    assert "发布时间：2026-11-21 10:00" in text
    assert "发布时间：" in text and "有效期至：" in text
    assert "Act now" not in text and "立即行动" in text
    cancel = render(lang="zh", kind="cancel", headline="车站附近燃气泄漏")
    assert "❌ <b>已取消</b>" in cancel.text
    assert "<b>车站附近燃气泄漏</b>" in cancel.text
    assert "此预警已取消" in cancel.text
    assert "有效期至" not in cancel.text


def test_english_update_and_cancel_marks() -> None:
    assert "🔄 <b>UPDATE</b>" in render(kind="update").text
    cancel = render(kind="cancel")
    assert "❌ <b>CANCELLED</b>" in cancel.text
    assert "no longer in effect" in cancel.text
    assert "Expires" not in cancel.text
    assert "Act now" not in cancel.text
    assert "UPDATE" not in render().text and "CANCELLED" not in render().text


def test_times_shown_in_one_zone() -> None:
    out = render(sent_at=datetime(2026, 11, 21, 2, 0, tzinfo=UTC), expires_at=EXPIRES)
    assert "Expires: 2026-11-22 02:00 (UTC+00:00)" in visible_text(out.text)


def test_optional_parts_omitted_and_tz_conversion() -> None:
    out = render(description=None, instruction="  ", areas_text=None, expires_at=None, tz=UTC)
    text = visible_text(out.text)
    assert "What to do" not in text and "Area" not in text and "Expires" not in text
    assert "Issued: 2026-11-21 02:00 (UTC+00:00)" in text
    assert "\n\n\n" not in out.text


def test_language_normalization() -> None:
    assert normalize_lang("zh-CN") == "zh"
    assert normalize_lang("zh_TW") == "zh"
    assert normalize_lang("ZH") == "zh"
    assert normalize_lang("en-US") == "en"
    assert normalize_lang("fr") == "en"
    assert category_label("Met", "zh-CN") == "气象"
    assert category_label("Met", "en") == "Weather"
    assert category_label("Custom", "en") == "Custom"


def test_long_description_is_truncated_gracefully() -> None:
    words = " ".join(f"word{i}" for i in range(2000))
    out = render(description=words)
    assert utf16_len(out.text) <= TELEGRAM_TEXT_LIMIT
    assert len(out.text) <= TELEGRAM_TEXT_LIMIT
    text = visible_text(out.text)
    # Cut at a word boundary, marked with an ellipsis, and the rest of the message survives.
    match = re.search(r"(word\d+)…", text)
    assert match is not None and match.group(1) in words.split()
    assert "What to do: Keep away from Station Road." in text
    assert "Expires:" in text
    # The cut keeps as much as fits: little room is wasted.
    assert utf16_len(out.text) > TELEGRAM_TEXT_LIMIT - 20


def test_truncation_counts_escapes_and_emoji() -> None:
    # Each "&" becomes "&amp;" and each emoji is two UTF-16 units: both must be budgeted.
    out = render(description="&🚨" * 3000, lang="zh")
    assert utf16_len(out.text) <= TELEGRAM_TEXT_LIMIT
    visible = visible_text(out.text)
    assert "…" in visible
    assert "&amp" not in visible  # no escape sequence was cut in half
    assert "有效期至" in visible


def test_huge_other_fields_are_capped_too() -> None:
    out = render(
        headline="H&" * 5000,
        instruction="I<" * 5000,
        areas_text="A>" * 5000,
        category_name='C"' * 5000,
        description="D" * 5000,
    )
    assert utf16_len(out.text) <= TELEGRAM_TEXT_LIMIT
    text = visible_text(out.text)
    assert text.count("…") >= 4
    assert "Issued:" in text


def test_short_message_unchanged_by_limit_logic() -> None:
    description = "x" * 3000
    out = render(description=description)
    assert description in out.text
    assert "…" not in out.text


def test_render_cap_alert_picks_language_and_kind() -> None:
    alert = parse_cap((DATA / "amber_alert.xml").read_bytes())
    zh = render_cap_alert(alert, "zh-CN")
    assert zh.text.startswith("🟠 <b>严重</b> · 救援 · 立即行动")
    assert "儿童失踪警报" in zh.text
    assert "示例市河畔区" in zh.text
    en = render_cap_alert(alert, "en")
    assert "AMBER Alert: 7-year-old girl missing" in en.text
    assert "red coat &amp; yellow boots" in en.text
    assert en.disable_notification is False

    cancel = render_cap_alert(parse_cap((DATA / "amber_cancel.xml").read_bytes()), "zh-CN")
    # No Chinese block in the cancel: English is shown, marked cancelled, and silent (Minor).
    assert "❌ <b>CANCELLED</b>" in cancel.text
    assert cancel.disable_notification is True

    update = render_cap_alert(parse_cap((DATA / "amber_update.xml").read_bytes()), "en")
    assert "🔄 <b>UPDATE</b>" in update.text
    assert "Riverside and Harbour districts, Example City" in update.text


def test_stored_alerts_show_the_bureaus_time_zone(catalog: Catalog) -> None:
    # Stored times are UTC; citizens read them in the bureau's zone (BOT_TIMEZONE).
    alert = Alert(
        kind="alert",
        category="traffic",
        districts=[],
        severity="Moderate",
        urgency="Expected",
        content={"en": {"headline": "Bridge closed"}},
        created_at=datetime(2026, 12, 6, 22, 58, tzinfo=UTC),
        expires_at=datetime(2026, 12, 7, 4, 58, tzinfo=UTC),
    )
    shanghai = ZoneInfo("Asia/Shanghai")
    text = visible_text(render_for(alert, "en", catalog, "en", tz=shanghai).text)
    assert "Issued: 2026-12-07 06:58 (UTC+08:00)" in text
    assert "Expires: 2026-12-07 12:58 (UTC+08:00)" in text
    # The very end of the calendar cannot be moved east of UTC: it is shown as it is.
    alert.expires_at = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    text = visible_text(render_for(alert, "en", catalog, "en", tz=shanghai).text)
    assert "Expires: 9999-12-31 23:00 (UTC+00:00)" in text


def test_staff_type_times_in_the_bureaus_time_zone() -> None:
    now = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    shanghai = ZoneInfo("Asia/Shanghai")
    assert parse_when("2026-12-07 18:00", now, shanghai) == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert parse_when("2026-12-07 18:00", now) == datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
    assert parse_when("2026-12-07 13:59", now, shanghai) is None  # 05:59 UTC: the past
    assert parse_when("6h", now, shanghai) == now + timedelta(hours=6)
    assert parse_when("9999-12-31 23:59", now, ZoneInfo("America/Los_Angeles")) is None
