"""How citizens see an alert: Telegram HTML with a severity badge, in English or Chinese.

Every supplied string is escaped with ``html.escape``; the result always fits Telegram's
4,096-character message limit (we count UTF-16 code units of the whole HTML, which is never
less than what Telegram counts after parsing), shortening the description with "…" when needed.
Minor alerts are delivered silently.
"""

from __future__ import annotations

import contextlib
import html
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Literal

from bot.faq.telegram_html import MAX_MESSAGE_LENGTH, utf16_len

if TYPE_CHECKING:
    from bot.alerts.cap import CapAlert

__all__ = [
    "TELEGRAM_TEXT_LIMIT",
    "RenderedAlert",
    "category_label",
    "format_time",
    "normalize_lang",
    "render_alert",
    "render_cap_alert",
    "utc_offset",
]

TELEGRAM_TEXT_LIMIT = MAX_MESSAGE_LENGTH
ELLIPSIS = "…"
Lang = Literal["en", "zh"]
Kind = Literal["alert", "update", "cancel"]

# Other fields are capped first (escaped UTF-16 length) so that a runaway headline cannot
# crowd out the description, and the sum of the caps always leaves room for the rest.
_FIELD_CAPS = {"headline": 300, "instruction": 1000, "areas": 600, "category": 80}

_BADGES: dict[str, tuple[str, str, str]] = {
    # severity: (emoji, English label, Chinese label)
    "extreme": ("🔴", "EXTREME", "特别严重"),
    "severe": ("🟠", "SEVERE", "严重"),
    "moderate": ("🟡", "MODERATE", "较重"),
    "minor": ("🔵", "MINOR", "一般"),
    "unknown": ("⚪", "UNKNOWN", "未知"),
}

_URGENCY: dict[str, tuple[str, str]] = {
    "immediate": ("Act now", "立即行动"),
    "expected": ("Expected soon", "即将发生"),
    "future": ("Expected later", "未来可能发生"),
    "past": ("Already over", "已经过去"),
}

_CATEGORIES: dict[str, tuple[str, str]] = {
    "Geo": ("Geological", "地质灾害"),
    "Met": ("Weather", "气象"),
    "Safety": ("Public safety", "公共安全"),
    "Security": ("Security", "治安"),
    "Rescue": ("Rescue", "救援"),
    "Fire": ("Fire", "火灾"),
    "Health": ("Health", "卫生健康"),
    "Env": ("Environment", "环境"),
    "Transport": ("Transport", "交通"),
    "Infra": ("Infrastructure", "基础设施"),
    "CBRNE": ("Hazardous materials", "危险物品"),
    "Other": ("Other", "其他"),
}

_LABELS: dict[str, dict[Lang, str]] = {
    "update": {"en": "🔄 <b>UPDATE</b>", "zh": "🔄 <b>更新</b>"},
    "cancel": {"en": "❌ <b>CANCELLED</b>", "zh": "❌ <b>已取消</b>"},
    "cancel_note": {
        "en": "This alert has been cancelled and is no longer in effect.",
        "zh": "此预警已取消，不再有效。",
    },
    "instruction": {"en": "What to do:", "zh": "应对措施："},
    "areas": {"en": "Area:", "zh": "影响区域："},
    "sent": {"en": "Issued:", "zh": "发布时间："},
    "expires": {"en": "Expires:", "zh": "有效期至："},
}


@dataclass(frozen=True)
class RenderedAlert:
    """Telegram HTML text plus whether to deliver it without a notification sound."""

    text: str
    disable_notification: bool


def normalize_lang(lang: str) -> Lang:
    """Map a language tag (zh-CN, zh_TW, en-US, …) to one of the rendered languages."""
    return "zh" if lang.lower().replace("_", "-").split("-")[0] == "zh" else "en"


def category_label(code: str, lang: str) -> str:
    """Human name of a CAP category code (Met → Weather / 气象); unknown codes pass through."""
    names = _CATEGORIES.get(code)
    if names is None:
        return code
    return names[1] if normalize_lang(lang) == "zh" else names[0]


def _shorten(text: str, limit: int) -> str:
    """Cut text so that its HTML-escaped form is at most ``limit`` UTF-16 units, with "…"."""
    if utf16_len(html.escape(text)) <= limit:
        return text
    lo, hi, best = 0, len(text), ELLIPSIS
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = _cut(text, mid)
        if utf16_len(html.escape(candidate)) <= limit:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best


def format_time(value: datetime, tz: tzinfo | None) -> str:
    """2026-11-21 18:00 (UTC+08:00): a time as read in tz (kept as it is if tz is None)."""
    if tz is not None and value.tzinfo is not None:
        # 9999-12-31 23:00 UTC has no later zone's equivalent: show it as it is.
        with contextlib.suppress(OverflowError):
            value = value.astimezone(tz)
    text = value.strftime("%Y-%m-%d %H:%M")
    offset = utc_offset(value)
    return f"{text} ({offset})" if offset else text


def utc_offset(value: datetime) -> str:
    """UTC+08:00 for an aware time; "" for a naive one."""
    offset = value.utcoffset()
    if offset is None:
        return ""
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class _Parts:
    """Everything in the message except the description, already normalized."""

    badge_line: str
    kind: Kind
    lang: Lang
    headline: str
    instruction: str | None
    areas_text: str | None
    sent_at: datetime
    expires_at: datetime | None
    tz: tzinfo | None


def _label(key: str, lang: Lang) -> str:
    """A label ready to precede a value: a space after "Area:", none after a full-width "："."""
    label = _LABELS[key][lang]
    return label if label.endswith("：") else label + " "


def _assemble(p: _Parts, description: str | None) -> str:
    esc = html.escape
    lines: list[str] = [p.badge_line]
    if p.kind == "update":
        lines.append(_LABELS["update"][p.lang])
    elif p.kind == "cancel":
        lines.append(_LABELS["cancel"][p.lang])
    lines.append(f"<b>{esc(p.headline)}</b>")
    blocks = ["\n".join(lines)]
    if p.kind == "cancel":
        blocks.append(_LABELS["cancel_note"][p.lang])
    if description:
        blocks.append(esc(description))
    if p.instruction:
        blocks.append(f"<b>{_label('instruction', p.lang)}</b>{esc(p.instruction)}")
    footer: list[str] = []
    if p.areas_text:
        footer.append(f"📍 <b>{_label('areas', p.lang)}</b>{esc(p.areas_text)}")
    footer.append(f"🕒 {_label('sent', p.lang)}{esc(format_time(p.sent_at, p.tz))}")
    if p.expires_at is not None and p.kind != "cancel":
        expires = esc(format_time(p.expires_at, p.tz))
        footer.append(f"⏳ {_label('expires', p.lang)}{expires}")
    blocks.append("\n".join(footer))
    return "\n\n".join(blocks)


def render_alert(
    headline: str,
    description: str | None,
    instruction: str | None,
    severity: str,
    urgency: str,
    category_name: str,
    areas_text: str | None,
    sent_at: datetime,
    expires_at: datetime | None,
    lang: str,
    kind: Kind,
    *,
    tz: tzinfo | None = None,
) -> RenderedAlert:
    """Render one alert for citizens as Telegram HTML (≤ 4,096 characters)."""
    language = normalize_lang(lang)
    zh = language == "zh"
    emoji, en_label, zh_label = _BADGES.get(severity.strip().lower(), _BADGES["unknown"])
    badge = f"{emoji} <b>{zh_label if zh else en_label}</b>"
    category = _shorten(category_name.strip(), _FIELD_CAPS["category"])
    if category:
        badge += f" · {html.escape(category)}"
    urgency_names = _URGENCY.get(urgency.strip().lower())
    if urgency_names is not None and kind != "cancel":
        badge += f" · {urgency_names[1] if zh else urgency_names[0]}"

    if tz is None:
        # Show every time in one zone (the issue time's) so citizens need not compare offsets.
        tz = sent_at.tzinfo
    parts = _Parts(
        badge_line=badge,
        kind=kind,
        lang=language,
        headline=headline.strip(),
        instruction=(instruction or "").strip() or None,
        areas_text=(areas_text or "").strip() or None,
        sent_at=sent_at,
        expires_at=expires_at,
        tz=tz,
    )
    desc = (description or "").strip() or None
    text = _assemble(parts, desc)
    if utf16_len(text) > TELEGRAM_TEXT_LIMIT:
        parts = replace(
            parts,
            headline=_shorten(parts.headline, _FIELD_CAPS["headline"]),
            instruction=parts.instruction
            and _shorten(parts.instruction, _FIELD_CAPS["instruction"]),
            areas_text=parts.areas_text and _shorten(parts.areas_text, _FIELD_CAPS["areas"]),
        )
        text = _fit_description(parts, desc)
    return RenderedAlert(text=text, disable_notification=severity.strip().lower() == "minor")


def _fit_description(parts: _Parts, desc: str | None) -> str:
    """Longest description prefix (ending in "…") that keeps the message within the limit."""
    full = _assemble(parts, desc)
    if desc is None or utf16_len(full) <= TELEGRAM_TEXT_LIMIT:
        return full
    # Binary search on the raw prefix length: escaping makes the HTML length grow unevenly.
    lo, hi = 0, len(desc)
    best = _assemble(parts, None)
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = _assemble(parts, _cut(desc, mid))
        if utf16_len(candidate) <= TELEGRAM_TEXT_LIMIT:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best


def _cut(text: str, length: int) -> str:
    cut = text[:length]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    # Prefer ending on a whole word when one ends near the cut (Chinese has no spaces).
    if space >= len(cut) * 0.9:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def render_cap_alert(
    alert: CapAlert,
    lang: str,
    *,
    category_name: str | None = None,
    tz: tzinfo | None = None,
) -> RenderedAlert:
    """Render a parsed CAP alert, choosing the info block that best matches ``lang``."""
    info = alert.info_for(lang)
    if info is None:
        raise ValueError(f"CAP alert {alert.identifier} has no <info> block to show")
    kind: Kind = "alert"
    if alert.msg_type == "Update":
        kind = "update"
    elif alert.msg_type == "Cancel":
        kind = "cancel"
    show_lang = info.language
    separator = "；" if normalize_lang(show_lang) == "zh" else "; "
    return render_alert(
        headline=info.headline or info.event,
        description=info.description,
        instruction=info.instruction,
        severity=info.severity,
        urgency=info.urgency,
        category_name=category_name
        if category_name is not None
        else category_label(info.categories[0], show_lang),
        areas_text=separator.join(area.area_desc for area in info.areas) or None,
        sent_at=alert.sent,
        expires_at=info.expires,
        lang=show_lang,
        kind=kind,
        tz=tz,
    )
