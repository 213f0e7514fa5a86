"""What officers and citizens read about a case: topic names, the case card, pages, the
closing keyboard. Pure functions of their inputs: no database, no Telegram calls."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.db.models import Case, CasePriority, Citizen, Direction, Message
from bot.i18n import Locales

# Cards are split below Telegram's 4,096 limit with room for entities.
CHUNK = 3800
TOPIC_NAME_MAX = 128
TRANSCRIPT_LINE_CHARS = 400
EDIT_NOTICE_CHARS = 3000
BADGE = {CasePriority.URGENT: "🔴 URGENT", CasePriority.NORMAL: "🔵 normal"}
CLOSED_MARK = "✅ "
_SAID_BY = {Direction.CITIZEN: "👤", Direction.OFFICER: "👮", Direction.BOT: "🤖"}

StaffText = Callable[..., str]


def citizen_label(citizen: Citizen) -> str:
    """A short label for topic names: first name and last initial ("Ann L.")."""
    first = (citizen.first_name or "").strip()
    last = (citizen.last_name or "").strip()
    label = f"{first} {last[0]}." if first and last else first or last
    return label or f"id {citizen.id}"


def badge(case: Case) -> str:
    return BADGE.get(CasePriority(case.priority), case.priority)


def topic_name(case: Case, citizen: Citizen, closed: bool = False) -> str:
    """The topic title: "#12 🔴 URGENT · Ann L." (prefixed "✅ " once closed)."""
    name = f"{CLOSED_MARK if closed else ''}#{case.id} {badge(case)} · {citizen_label(citizen)}"
    return name[:TOPIC_NAME_MAX]


def topic_link(chat_id: int, thread_id: int | None) -> str | None:
    """A t.me link to a forum topic (supergroup ids are -100<internal id>)."""
    raw = str(chat_id)
    if thread_id is None or not raw.startswith("-100"):
        return None
    return f"https://t.me/c/{raw[4:]}/{thread_id}"


def mention(user_id: int, name: str) -> str:
    """An HTML mention that notifies the user."""
    return f'<a href="tg://user?id={user_id}">{html.escape(name, quote=False)}</a>'


def split_html_lines(lines: Sequence[str], limit: int = CHUNK) -> list[str]:
    """Join self-contained HTML lines into messages no longer than `limit` characters."""
    parts: list[str] = []
    current = ""
    for line in lines:
        line = line if len(line) <= limit else line[:limit]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit and current:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current:
        parts.append(current)
    return parts


def short(text: str | None, limit: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def emergency_numbers(locales: Locales, lang: str | None) -> dict[str, str]:
    """The emergency and crisis-line numbers of a locale, from content (never from code)."""
    return {
        "emergency": locales.t(lang, "ho_emergency_number"),
        "ambulance": locales.t(lang, "ho_ambulance_number"),
        "fire": locales.t(lang, "ho_fire_number"),
        "crisis_line_name": locales.t(lang, "ho_crisis_line_name"),
        "crisis_line": locales.t(lang, "ho_crisis_line"),
    }


def page_mentions(
    st: StaffText, on_duty: Sequence[tuple[int, str]], everyone: Sequence[tuple[int, str]]
) -> str:
    """Who a page notifies: the officers on duty, else (saying so) every officer."""
    # Names with spaces ("Officer Wang") need a separator to read as two people.
    if on_duty:
        return ", ".join(mention(uid, name) for uid, name in on_duty)
    names = ", ".join(mention(uid, name) for uid, name in everyone)
    return st("ho_nobody_on_duty") + (f" {names}" if names else "")


def minutes_since(start: datetime, now: datetime) -> int:
    return int((now - start).total_seconds() // 60)


def card(
    st: StaffText,
    tz: tzinfo,
    case: Case,
    citizen: Citizen,
    *,
    earlier: Sequence[int],
    history: Sequence[Message],
    asked: bool,
    recreated: bool = False,
    page: str | None = None,
) -> list[str]:
    """The case card as HTML messages (split below Telegram's limit), led by `page`.

    `earlier` are the citizen's other cases, `history` their messages before this case (oldest
    first), `asked` whether the case was opened by /human or a button, with no message of the
    citizen's in it yet."""
    e = html.escape
    who = [f"<b>{e(citizen.full_name)}</b>"]
    if citizen.username:
        who.append(f"@{e(citizen.username)}")
    who.append(f"id <code>{citizen.id}</code>")
    lang = case.language or citizen.language or citizen.telegram_language or "?"
    who.append(st("ho_card_language", code=lang))
    lines = [*page.splitlines(), ""] if page else []
    if recreated:
        lines.append(st("ho_card_recreated"))
    lines.append(st("ho_card_title", id=case.id, reason=case.reason) + f" · <b>{badge(case)}</b>")
    lines.append("👤 " + " · ".join(who))
    lines.append(st("ho_card_earlier", cases=", ".join(f"#{i}" for i in earlier) or "—"))
    lines.append(
        st(
            "ho_card_signals",
            level=case.reason,
            signals=", ".join(str(s) for s in case.signals) or "—",
        )
    )
    opened = case.opened_at.astimezone(tz)
    offset = opened.strftime("%z")  # "+0800": shown as UTC+08:00, never an ambiguous "CST"
    lines.append(st("ho_card_opened", at=f"{opened:%Y-%m-%d %H:%M} UTC{offset[:3]}:{offset[3:]}"))
    key = "ho_card_transcript_asked" if asked else "ho_card_transcript"
    lines.append(st(key, count=len(history)))
    for row in history:
        who_said = _SAID_BY.get(Direction(row.direction), "•")
        body = row.text if row.text else f"[{row.content_type}]"
        stamp = row.created_at.astimezone(tz).strftime("%m-%d %H:%M")
        lines.append(f"{who_said} <i>{stamp}</i> {e(short(body, TRANSCRIPT_LINE_CHARS))}")
    lines.append(st("ho_card_commands"))
    return split_html_lines(lines)


def merged(st: StaffText, tz: tzinfo, rows: Sequence[Message]) -> list[str]:
    """Several piled-up texts of the citizen as one message in the topic, each with its time."""
    lines = [st("ho_relay_merged", count=len(rows))]
    lines += [
        f"<i>{row.created_at.astimezone(tz):%H:%M}</i> {html.escape(row.text or '', quote=False)}"
        for row in rows
    ]
    return split_html_lines(lines)


def escalation(st: StaffText, case: Case, citizen: Citizen, now: datetime) -> str:
    """The backup desk's message about an urgent case nobody claimed."""
    link = topic_link(case.forum_chat_id or 0, case.forum_topic_id)
    ref = f'<a href="{link}">#{case.id}</a>' if link else f"#{case.id}"
    text = st(
        "ho_escalated",
        case=f"#{case.id}",
        minutes=minutes_since(case.opened_at, now),
        name=citizen_label(citizen),
    )
    text = text.replace(f"#{case.id}", ref, 1)
    if case.delivered_at is None:
        who = f"{citizen.full_name} (id {citizen.id}" + (
            f", @{citizen.username})" if citizen.username else ")"
        )
        text += "\n" + st(
            "ho_escalated_undelivered",
            error=case.last_delivery_error or "?",
            who=who,
            reason=case.reason,
        )
    return text


class RateCb(CallbackData, prefix="rate"):
    """A 1-5 rating button under the "case closed" message (checked against the case)."""

    case_id: int
    stars: int


class ReopenCb(CallbackData, prefix="reopen"):
    """ "Talk to the officer again" under the "case closed" message (checked against the case)."""

    case_id: int


def closed_keyboard(case_id: int, talk_again: str, rating: bool) -> InlineKeyboardMarkup:
    """Under the "case closed" message: 1-5 stars (unless `rating` is off, as after a crisis)
    and a button that brings the officer back."""
    rows = []
    if rating:
        rows.append(
            [
                InlineKeyboardButton(
                    text=f"{stars} ⭐", callback_data=RateCb(case_id=case_id, stars=stars).pack()
                )
                for stars in range(1, 6)
            ]
        )
    rows.append(
        [InlineKeyboardButton(text=talk_again, callback_data=ReopenCb(case_id=case_id).pack())]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)
