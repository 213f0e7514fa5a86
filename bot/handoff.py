"""Case lifecycle: open, deliver to the officers' forum, relay both ways, claim, close, re-page.

The guarantees come from the order of operations: every row is written and committed *before*
Telegram is called (a case with `delivered_at` NULL, a message with relay_state PENDING) and
marked done after. `HandoffService.tick` (run every OFFICERS_LOOP_SECONDS by `run_worker`, and
once at start) retries whatever is still pending, so neither a Telegram outage nor a restart
loses a case or a message. A per-case claim in the database (`bot.claims`: an in-process lock,
then a leased row) keeps relays of one case in order and stops the loop and an update, in this
process or another, from delivering the same card, page or relay twice; a dead process's claims
are taken over when their lease runs out.

The service knows Telegram only through ids, text and the Bot's methods; handlers turn updates
into these calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
)
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.claims import Claims
from bot.db import repo
from bot.db.models import (
    Case,
    CasePriority,
    CaseReason,
    CaseStatus,
    Citizen,
    Direction,
    Message,
    MessagePair,
    RelayState,
    Role,
    StaffRole,
    utcnow,
)
from bot.faq.telegram_html import fit_html
from bot.i18n import Locales
from bot.telegram import ForumLane, critical_sends

if TYPE_CHECKING:
    from bot.config import OfficersSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Telegram's hard limits; cards are split below them with room for entities.
MAX_CAPTION = 1024
CHUNK = 3800
TOPIC_NAME_MAX = 128
TRANSCRIPT_LINE_CHARS = 400
EDIT_NOTICE_CHARS = 3000
# A relay still failing after this many tries (over the loop's backoff) is parked, not retried.
MAX_RELAY_ATTEMPTS = 10
# A text longer than this (escaped) is copied on its own, not merged with others.
MERGED_TEXT_MAX = 1500
# How long an update's handler waits for a case another process is working on before leaving
# the rest to the loop (which takes it over once a dead process's claim runs out).
CLAIM_WAIT_SECONDS = 5.0
BADGE = {CasePriority.URGENT: "🔴 URGENT", CasePriority.NORMAL: "🔵 normal"}
CLOSED_MARK = "✅ "


def _is(exc: TelegramAPIError, *needles: str) -> bool:
    text = exc.message.lower()
    return any(n.lower() in text for n in needles)


def citizen_label(citizen: Citizen) -> str:
    """A short label for topic names: first name and last initial ("Ann L.")."""
    first = (citizen.first_name or "").strip()
    last = (citizen.last_name or "").strip()
    label = f"{first} {last[0]}." if first and last else first or last
    return label or f"id {citizen.id}"


def topic_name(case: Case, citizen: Citizen, closed: bool = False) -> str:
    """The topic title: "#12 🔴 URGENT · Ann L." (prefixed "✅ " once closed)."""
    badge = BADGE.get(CasePriority(case.priority), case.priority)
    name = f"{CLOSED_MARK if closed else ''}#{case.id} {badge} · {citizen_label(citizen)}"
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


def _mergeable_run(rows: Sequence[Message], start: int) -> list[Message]:
    """The citizen's plain text messages from `start` on that can share one message in the
    topic (not parked-to-be, short enough to leave room for the others)."""
    run: list[Message] = []
    for row in rows[start:]:
        if (
            row.direction != Direction.CITIZEN
            or row.content_type != "text"
            or not row.text
            or len(html.escape(row.text, quote=False)) > MERGED_TEXT_MAX
            or row.relay_attempts >= MAX_RELAY_ATTEMPTS
        ):
            break
        run.append(row)
    return run


def _short(text: str | None, limit: int) -> str:
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


# Statements every citizen message runs, built once: building and hashing a statement costs
# more Python than the query itself in a surge.
_CLOSED = Case.status == CaseStatus.CLOSED
_ACTIVE_CASE = (
    select(Case)
    .where(
        Case.citizen_id == bindparam("citizen"),
        ~_CLOSED | (Case.closed_at >= bindparam("cutoff")),
    )
    .order_by(sql_case((_CLOSED, 1), else_=0), Case.id.desc())  # open ones first, then latest
    .limit(1)
)
_RECENT_TEXTS = (
    select(Message.text)
    .where(
        Message.citizen_id == bindparam("citizen"),
        Message.direction == Direction.CITIZEN,
        Message.case_id.is_(None),
        Message.text.is_not(None),
        Message.created_at >= bindparam("since"),
    )
    .order_by(Message.id.desc())
    .limit(bindparam("limit"))
)


class HandoffService:
    """Opens cases, delivers them to the officers' forum and relays messages both ways."""

    def __init__(
        self,
        bot: Bot,
        sessionmaker: async_sessionmaker[AsyncSession],
        locales: Locales,
        settings: OfficersSettings,
        *,
        lane: ForumLane | None = None,
        claims: Claims | None = None,
        clock: Callable[[], datetime] = utcnow,
        tz: tzinfo = UTC,
    ) -> None:
        self.bot = bot
        # Who works on a case now, shared with every other process on the database.
        self.claims = claims or Claims(sessionmaker, getattr(settings, "claim_seconds", 15.0))
        # The forum's minute of messages: ordinary cases wait for room in it (and their
        # messages pile up meanwhile, to be relayed merged); urgent ones take the reserve.
        self.lane = lane
        self.sessionmaker = sessionmaker
        self.locales = locales
        self.settings = settings
        self.clock = clock
        # Times on cards and merged relays are the bureau's (BOT_TIMEZONE), as officers read them.
        self.tz = tz
        self.staff_lang = locales.default
        # case id -> (failed loop retries in a row, monotonic time of the next retry)
        self._backoff: dict[int, tuple[int, float]] = {}

    # ------------------------------------------------------------------ helpers

    def _lock(self, case_id: int) -> asyncio.Lock:
        """This process's lock of a case (taken before its claim in the database)."""
        return self.claims.lock(f"case:{case_id}")

    def _hold(self, case_id: int, wait: float) -> AbstractAsyncContextManager[bool]:
        """Work on a case alone, across processes: True when held (see `Claims.hold`)."""
        return self.claims.hold(f"case:{case_id}", wait)

    def _st(self, key: str, **kw: Any) -> str:
        return self.locales.t(self.staff_lang, key, **kw)

    def citizen_text(self, lang: str | None, key: str, **kw: Any) -> str:
        """A citizen-facing text with the locale's emergency and crisis-line numbers filled in."""
        return self.locales.t(lang, key, **emergency_numbers(self.locales, lang), **kw)

    async def _room(self, priority: CasePriority | str) -> bool:
        """Whether the forum's lane has room for one more message of a case of this priority
        now (an urgent case always has: it waits for the reserve instead)."""
        return self.lane is None or priority == CasePriority.URGENT or await self.lane.room() > 0

    def _minutes(self, value: float) -> timedelta:
        return timedelta(minutes=value)

    @property
    def reopen_window(self) -> timedelta:
        return timedelta(hours=getattr(self.settings, "reopen_hours", 24.0))

    # ------------------------------------------------------------------ queries

    async def active_case(self, session: AsyncSession, citizen_id: int) -> Case | None:
        """The citizen's open or claimed case, else one closed within the reopen window."""
        cutoff = self.clock() - self.reopen_window
        return await session.scalar(_ACTIVE_CASE, {"citizen": citizen_id, "cutoff": cutoff})

    async def case_by_topic(
        self, session: AsyncSession, chat_id: int, thread_id: int | None
    ) -> Case | None:
        """The case whose forum topic this is."""
        if thread_id is None:
            return None
        return await session.scalar(
            select(Case)
            .where(Case.forum_chat_id == chat_id, Case.forum_topic_id == thread_id)
            .order_by(Case.id.desc())
            .limit(1)
        )

    async def open_cases(self, session: AsyncSession) -> list[tuple[Case, Citizen | None]]:
        """Cases not closed with their citizens (one statement): urgent first, oldest first
        within a priority."""
        rows = await session.execute(
            select(Case, Citizen)
            .outerjoin(Citizen, Citizen.id == Case.citizen_id)
            .where(Case.status != CaseStatus.CLOSED)
            .order_by(Case.priority == CasePriority.NORMAL, Case.opened_at, Case.id)
        )
        return [(case, citizen) for case, citizen in rows]

    async def _officers(self, session: AsyncSession, on_duty_only: bool) -> list[tuple[int, str]]:
        stmt = select(StaffRole).where(StaffRole.role == Role.OFFICER)
        if on_duty_only:
            stmt = stmt.where(StaffRole.on_duty.is_(True))
        rows = (await session.scalars(stmt.order_by(StaffRole.user_id))).all()
        return [(r.user_id, r.display_name or f"officer {r.user_id}") for r in rows]

    async def _page_mentions(self, session: AsyncSession) -> str:
        on_duty = await self._officers(session, on_duty_only=True)
        # Names with spaces ("Officer Wang") need a separator to read as two people.
        if on_duty:
            return ", ".join(mention(uid, name) for uid, name in on_duty)
        # Nobody marked on duty: page every officer rather than nobody.
        everyone = await self._officers(session, on_duty_only=False)
        names = ", ".join(mention(uid, name) for uid, name in everyone)
        return self._st("ho_nobody_on_duty") + (f" {names}" if names else "")

    async def staff_name(self, session: AsyncSession, user_id: int | None) -> str:
        """An officer's display name for colleagues (never shown to citizens)."""
        if user_id is None:
            return "—"
        return await repo.display_name(session, user_id) or f"id {user_id}"

    # ------------------------------------------------------------------ opening

    async def open_case(
        self,
        session: AsyncSession,
        citizen: Citizen,
        *,
        reason: CaseReason,
        priority: CasePriority,
        signals: Sequence[str] = (),
        lang: str | None = None,
        trigger: tuple[int, str, str | None] | None = None,
    ) -> Case:
        """Open (or upgrade and reuse) the citizen's case and COMMIT it before any Telegram call.

        `trigger` is (telegram message id, content type, text) of the message that asked for
        help; it is relayed into the topic right after the card.
        """
        now = self.clock()
        case = await session.scalar(
            select(Case)
            .where(Case.citizen_id == citizen.id, Case.status != CaseStatus.CLOSED)
            .order_by(Case.id.desc())
            .limit(1)
        )
        if case is None:
            case = Case(
                citizen_id=citizen.id,
                priority=priority,
                status=CaseStatus.OPEN,
                reason=reason,
                signals=list(signals),
                language=lang,
                opened_at=now,
            )
            session.add(case)
            await session.flush()
            repo.audit(
                session,
                "case.open",
                actor_id=None,
                target_type="case",
                target_id=case.id,
                at=now,
                reason=str(reason),
                priority=str(priority),
                signals=list(signals),
            )
        elif priority == CasePriority.URGENT and case.priority != CasePriority.URGENT:
            case.priority = CasePriority.URGENT
            case.reason = reason
            case.signals = sorted({*case.signals, *signals})
            case.last_paged_at = None  # page again at once for the new priority
            repo.audit(
                session,
                "case.upgrade",
                actor_id=None,
                target_type="case",
                target_id=case.id,
                at=now,
                reason=str(reason),
            )
        if trigger is not None and not await self._has_trigger(session, case, trigger[0]):
            message_id, content_type, text = trigger
            session.add(
                Message(
                    citizen_id=citizen.id,
                    case_id=case.id,
                    direction=Direction.CITIZEN,
                    content_type=content_type,
                    text=text,
                    telegram_message_id=message_id,
                    relay_state=RelayState.PENDING,
                    created_at=now,
                )
            )
        await session.commit()
        return case

    async def _has_trigger(self, session: AsyncSession, case: Case, message_id: int) -> bool:
        """The message is in the case already (its update is being handled a second time)."""
        found = await session.scalar(
            select(Message.id).where(
                Message.case_id == case.id,
                Message.direction == Direction.CITIZEN,
                Message.telegram_message_id == message_id,
            )
        )
        return found is not None

    async def store_citizen_message(
        self,
        session: AsyncSession,
        citizen_id: int,
        case: Case | None,
        message_id: int,
        content_type: str,
        text: str | None,
    ) -> Message:
        """Record a citizen message: the transcript, and (with a case) the relay outbox."""
        row = Message(
            citizen_id=citizen_id,
            case_id=case.id if case else None,
            direction=Direction.CITIZEN,
            content_type=content_type,
            text=text,
            telegram_message_id=message_id,
            relay_state=RelayState.PENDING if case else RelayState.NONE,
            created_at=self.clock(),
        )
        session.add(row)
        return row

    async def recent_texts(
        self, session: AsyncSession, citizen_id: int, within: timedelta, limit: int
    ) -> list[str]:
        """The citizen's last texts outside any case, oldest first (for reading a crisis said
        across several short messages together)."""
        since = self.clock() - within
        rows = await session.scalars(
            _RECENT_TEXTS, {"citizen": citizen_id, "since": since, "limit": limit}
        )
        return [text for text in reversed(rows.all()) if text]

    async def answers_officer(self, session: AsyncSession, case: Case, message_id: int) -> bool:
        """Whether the citizen's message `message_id` is the bot's copy of an officer's message
        in this case (a citizen replying to it wants that officer)."""
        found = await session.scalar(
            select(MessagePair.id).where(
                MessagePair.case_id == case.id,
                MessagePair.citizen_chat_id == case.citizen_id,
                MessagePair.citizen_message_id == message_id,
                MessagePair.direction == Direction.OFFICER,
            )
        )
        return found is not None

    def reopenable(self, case: Case) -> bool:
        """A closed case the citizen may still bring back (within the reopen window)."""
        return (
            case.status == CaseStatus.CLOSED
            and case.closed_at is not None
            and self.clock() - case.closed_at <= self.reopen_window
        )

    async def reopen(self, session: AsyncSession, case: Case) -> None:
        """A citizen wrote after the close: the case (and later its topic) opens again."""
        case.status = CaseStatus.CLAIMED if case.assigned_officer_id else CaseStatus.OPEN
        case.closed_at = None
        case.reopened_count += 1
        repo.audit(
            session,
            "case.reopen",
            actor_id=None,
            target_type="case",
            target_id=case.id,
            at=self.clock(),
        )

    # ------------------------------------------------------------------ delivery

    async def flush_case(self, case_id: int, wait: float = CLAIM_WAIT_SECONDS) -> bool:
        """Deliver the card if needed, then relay every pending message in order.

        Returns True when nothing is left pending. Never raises for Telegram errors: they
        are logged with the case id and retried by the loop. When another process works on the
        case for longer than `wait` seconds, returns False and leaves it to the loop.
        """
        return bool(await self._flush(case_id, wait))

    async def _flush(self, case_id: int, wait: float) -> bool | None:
        """`flush_case`; None when another process (or task) holds the case."""
        async with self._hold(case_id, wait) as held:
            if not held:
                log.info("case %s: another process is working on it", case_id)
                return None
            return await self._flush_held(case_id)

    async def _flush_held(self, case_id: int) -> bool:
        async with self.sessionmaker() as session:
            case = await session.get(Case, case_id)
            if case is None:
                return True
            # An urgent case's card, pages and relays take the limiter's critical line: they
            # never wait behind FAQ answers or ordinary cases' relays.
            lane = critical_sends() if case.priority == CasePriority.URGENT else nullcontext()
            try:
                with lane:
                    if case.delivered_at is None and (
                        not await self._room(case.priority)
                        or not await self._deliver(session, case)
                    ):
                        return False
                    return await self._relay_pending(session, case)
            except TelegramAPIError as exc:
                log.error("case %s: Telegram refused: %s", case_id, exc)
                return False

    async def _deliver(self, session: AsyncSession, case: Case) -> bool:
        chat_id = self.settings.chat_id
        case.delivery_attempts += 1
        if chat_id is None:
            case.last_delivery_error = "OFFICERS_CHAT_ID is not set"
            await session.commit()
            log.error("case %s: not delivered: OFFICERS_CHAT_ID is not set", case.id)
            return False
        try:
            if case.forum_topic_id is None or case.forum_chat_id != chat_id:
                await self._create_topic(session, case, chat_id)
            # An urgent case's first page rides on its card: a group takes only 20 messages a
            # minute, and every message saved is room for the next case.
            page = None
            if case.priority == CasePriority.URGENT and case.status == CaseStatus.OPEN:
                page = await self._page_text(session, case, first=True)
            await self._topic_call(
                session, case, lambda c, t: self._post_card(session, case, c, t, page=page)
            )
            if page is not None:
                self._paged(case)
        except TelegramAPIError as exc:
            case.last_delivery_error = str(exc)[:1000]
            await session.commit()
            log.error("case %s: delivery to the officers failed: %s", case.id, exc)
            return False
        case.delivered_at = self.clock()
        case.last_delivery_error = None
        await session.commit()
        log.info("case %s delivered to topic %s", case.id, case.forum_topic_id)
        return True

    async def _create_topic(self, session: AsyncSession, case: Case, chat_id: int) -> None:
        citizen = await session.get(Citizen, case.citizen_id)
        assert citizen is not None
        name = topic_name(case, citizen)
        topic = await self.bot.create_forum_topic(chat_id, name)
        case.forum_chat_id = chat_id
        case.forum_topic_id = topic.message_thread_id
        case.topic_name = name
        # Committed at once: a restart must reuse this topic, not open a second one.
        await session.commit()

    async def _topic_call(
        self,
        session: AsyncSession,
        case: Case,
        make: Callable[[int, int], Awaitable[T]],
    ) -> T:
        """Call Telegram inside the case topic, recreating a deleted or reopening a closed one."""
        for attempt in range(3):
            assert case.forum_chat_id is not None and case.forum_topic_id is not None
            try:
                return await make(case.forum_chat_id, case.forum_topic_id)
            except TelegramBadRequest as exc:
                if attempt == 2:
                    raise
                if _is(exc, "thread not found"):
                    log.warning(
                        "case %s: topic %s is gone; recreating", case.id, case.forum_topic_id
                    )
                    await self._create_topic(session, case, case.forum_chat_id)
                    await self._post_card(
                        session, case, case.forum_chat_id, case.forum_topic_id, recreated=True
                    )
                    continue
                if _is(exc, "topic_closed"):
                    with contextlib.suppress(TelegramBadRequest):
                        await self.bot.reopen_forum_topic(case.forum_chat_id, case.forum_topic_id)
                    continue
                raise
        raise AssertionError("unreachable")

    async def _post_card(
        self,
        session: AsyncSession,
        case: Case,
        chat_id: int,
        thread_id: int | None,
        recreated: bool = False,
        page: str | None = None,
    ) -> None:
        for part in await self.render_card(session, case, recreated=recreated, page=page):
            await self.bot.send_message(
                chat_id, part, message_thread_id=thread_id, disable_web_page_preview=True
            )

    async def render_card(
        self, session: AsyncSession, case: Case, recreated: bool = False, page: str | None = None
    ) -> list[str]:
        """The case card as HTML messages (split below Telegram's limit), led by `page`."""
        citizen = await session.get(Citizen, case.citizen_id)
        assert citizen is not None
        e = html.escape
        earlier = (
            await session.scalars(
                select(Case.id)
                .where(Case.citizen_id == citizen.id, Case.id != case.id)
                .order_by(Case.id)
            )
        ).all()
        who = [f"<b>{e(citizen.full_name)}</b>"]
        if citizen.username:
            who.append(f"@{e(citizen.username)}")
        who.append(f"id <code>{citizen.id}</code>")
        lang = case.language or citizen.language or citizen.telegram_language or "?"
        who.append(self._st("ho_card_language", code=lang))
        badge = BADGE.get(CasePriority(case.priority), case.priority)
        lines = [*page.splitlines(), ""] if page else []
        if recreated:
            lines.append(self._st("ho_card_recreated"))
        lines.append(
            self._st("ho_card_title", id=case.id, reason=case.reason) + f" · <b>{badge}</b>"
        )
        lines.append("👤 " + " · ".join(who))
        lines.append(
            self._st(
                "ho_card_earlier",
                cases=", ".join(f"#{i}" for i in earlier) if earlier else "—",
            )
        )
        lines.append(
            self._st(
                "ho_card_signals",
                level=case.reason,
                signals=", ".join(str(s) for s in case.signals) or "—",
            )
        )
        opened = case.opened_at.astimezone(self.tz)
        offset = opened.strftime("%z")  # "+0800": shown as UTC+08:00, never an ambiguous "CST"
        at = f"{opened:%Y-%m-%d %H:%M} UTC{offset[:3]}:{offset[3:]}"
        lines.append(self._st("ho_card_opened", at=at))
        limit = self.settings.transcript_messages
        history: list[Message] = []
        if limit:
            rows = await session.scalars(
                select(Message)
                .where(
                    Message.citizen_id == citizen.id,
                    Message.direction != Direction.NOTE,
                    or_(Message.case_id.is_(None), Message.case_id != case.id),
                )
                .order_by(Message.created_at.desc(), Message.id.desc())
                .limit(limit)
            )
            history = list(reversed(rows.all()))
        # A case opened by /human or a button has no message of the citizen's to follow the
        # card, unless they have written since.
        opener = await session.scalar(
            select(Message.id)
            .where(Message.case_id == case.id, Message.direction == Direction.CITIZEN)
            .limit(1)
        )
        key = "ho_card_transcript" if opener is not None else "ho_card_transcript_asked"
        lines.append(self._st(key, count=len(history)))
        for row in history:
            who_said = {
                Direction.CITIZEN: "👤",
                Direction.OFFICER: "👮",
                Direction.BOT: "🤖",
            }.get(Direction(row.direction), "•")
            body = row.text if row.text else f"[{row.content_type}]"
            stamp = row.created_at.astimezone(self.tz).strftime("%m-%d %H:%M")
            lines.append(f"{who_said} <i>{stamp}</i> {e(_short(body, TRANSCRIPT_LINE_CHARS))}")
        lines.append(self._st("ho_card_commands"))
        return split_html_lines(lines)

    async def _page_text(self, session: AsyncSession, case: Case, first: bool) -> str:
        """The page: what is urgent, and mentions of the officers to notify."""
        mentions = await self._page_mentions(session)
        key = "ho_page_first" if first else "ho_page_again"
        waited = int((self.clock() - case.opened_at).total_seconds() // 60)
        return self._st(key, id=case.id, minutes=waited) + "\n" + mentions

    def _paged(self, case: Case) -> None:
        case.last_paged_at = self.clock()
        case.page_count += 1

    async def _page(self, session: AsyncSession, case: Case, first: bool = False) -> None:
        text = await self._page_text(session, case, first)
        await self._topic_call(
            session,
            case,
            lambda c, t: self.bot.send_message(c, text, message_thread_id=t),
        )
        self._paged(case)
        await session.commit()

    async def _relay_pending(self, session: AsyncSession, case: Case) -> bool:
        rows = (
            await session.scalars(
                select(Message)
                .where(Message.case_id == case.id, Message.relay_state == RelayState.PENDING)
                # Updates are handled concurrently, so row ids may not follow the chat; Telegram's
                # message ids do, per side.
                .order_by(Message.direction, Message.telegram_message_id, Message.id)
            )
        ).all()
        start = 0
        while start < len(rows):
            # An urgent case's messages go one by one (they have the reserve of the forum's
            # minute, and each keeps its pair for replies and edits); ordinary ones merge.
            run = [] if case.priority == CasePriority.URGENT else _mergeable_run(rows, start)
            if rows[start].direction == Direction.CITIZEN and not await self._room(case.priority):
                return False  # the forum's minute is full: they wait, and go merged
            if len(run) > 1:
                relayed = await self._relay_merged(session, case, run)
            else:
                relayed = await self._relay_one(session, case, rows[start])
            if not relayed:
                return False
            start += max(len(run), 1)
        return True

    async def _send_in_topic(self, text: str, chat_id: int, thread_id: int) -> object:
        return await self.bot.send_message(chat_id, text, message_thread_id=thread_id)

    async def _relay_merged(self, session: AsyncSession, case: Case, rows: list[Message]) -> bool:
        """Several text messages of the citizen piled up (the forum's minute was full): one
        message in the topic carries them all, each with its time. No pair is kept: an edit of
        one of them is posted as a notice."""
        for row in rows:
            row.relay_attempts += 1
        await session.commit()
        lines = [self._st("ho_relay_merged", count=len(rows))]
        lines += [
            f"<i>{row.created_at.astimezone(self.tz):%H:%M}</i> "
            f"{html.escape(row.text or '', quote=False)}"
            for row in rows
        ]
        try:
            for part in split_html_lines(lines):
                await self._topic_call(session, case, functools.partial(self._send_in_topic, part))
        except TelegramAPIError as exc:
            await session.commit()
            log.error("case %s: merged relay to the forum failed: %s", case.id, exc)
            return False
        for row in rows:
            row.relay_state = RelayState.DONE
        await session.commit()
        log.info("case %s: %d messages relayed in one", case.id, len(rows))
        return True

    async def _relay_one(self, session: AsyncSession, case: Case, row: Message) -> bool:
        """Copy one stored message to the other side; False to stop and retry later.

        The attempt is counted and committed before Telegram is called, so the count survives
        whatever follows; after MAX_RELAY_ATTEMPTS the message is parked (FAILED) with a note
        in the topic instead of being sent again on every pass.
        """
        source_id = row.telegram_message_id
        assert source_id is not None
        if row.relay_attempts >= MAX_RELAY_ATTEMPTS:
            row.relay_state = RelayState.FAILED
            await session.commit()
            log.error(
                "case %s: message %s parked after %d attempts", case.id, row.id, row.relay_attempts
            )
            await self._notice(
                session, case, self._st("ho_relay_parked", attempts=row.relay_attempts)
            )
            return True
        row.relay_attempts += 1
        await session.commit()
        if row.direction == Direction.OFFICER and await self._is_relay_copy(
            session, case, source_id
        ):
            # Not an officer's message: it is the bot's own copy of a citizen's message (only a
            # forged update claims that). Copying it would show one citizen's words to another.
            row.relay_state = RelayState.FAILED
            await session.commit()
            log.warning("case %s: message %s is a relay copy, not relayed", case.id, source_id)
            return True
        if row.direction == Direction.CITIZEN:
            try:
                copied = await self._topic_call(
                    session,
                    case,
                    lambda c, t: self.bot.copy_message(
                        c, case.citizen_id, source_id, message_thread_id=t
                    ),
                )
            except TelegramBadRequest as exc:
                if _is(exc, "chat not found", "thread not found", "topic_closed"):
                    await session.commit()
                    log.error("case %s: relay to the forum failed: %s", case.id, exc)
                    return False
                # The source is gone or cannot be copied: say so instead of retrying forever.
                row.relay_state = RelayState.FAILED
                await session.commit()
                await self._notice(
                    session,
                    case,
                    self._st(
                        "ho_copy_failed",
                        kind=row.content_type,
                        text=_short(row.text, EDIT_NOTICE_CHARS) or "—",
                        error=exc.message,
                    ),
                )
                return True
            except TelegramAPIError as exc:
                await session.commit()
                log.error("case %s: relay to the forum failed: %s", case.id, exc)
                return False
            self._relayed(session, case, row, source_id, copied.message_id)
            await self._commit_relayed(session, row.id)
            return True
        # Officer -> citizen, as the bot.
        assert case.forum_chat_id is not None
        try:
            copied = await self.bot.copy_message(case.citizen_id, case.forum_chat_id, source_id)
        except TelegramForbiddenError as exc:
            row.relay_state = RelayState.FAILED
            await self._mark_blocked(session, case.citizen_id)
            await session.commit()
            await self._notice(session, case, self._st("ho_citizen_blocked", error=exc.message))
            return True
        except TelegramBadRequest as exc:
            row.relay_state = RelayState.FAILED
            await session.commit()
            await self._notice(session, case, self._st("ho_relay_failed", error=exc.message))
            return True
        except TelegramAPIError as exc:
            await session.commit()
            log.error("case %s: relay to the citizen failed: %s", case.id, exc)
            return False
        self._relayed(session, case, row, copied.message_id, source_id)
        repo.audit(
            session,
            "case.relay",
            actor_id=row.staff_user_id,
            target_type="case",
            target_id=case.id,
            at=self.clock(),
            message_id=row.telegram_message_id,
            content_type=row.content_type,
        )
        await self._commit_relayed(session, row.id)
        return True

    async def _commit_relayed(self, session: AsyncSession, row_id: int) -> None:
        """Commit a relay; if its pair is recorded already (the copy was made before a crash
        and made again now), the message is done all the same, not retried."""
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            await session.execute(
                update(Message).where(Message.id == row_id).values(relay_state=RelayState.DONE)
            )
            await session.commit()
            log.warning("message %s was relayed twice (a retry after a crash)", row_id)

    async def _is_relay_copy(
        self, session: AsyncSession, case: Case, topic_message_id: int
    ) -> bool:
        found = await session.scalar(
            select(MessagePair.id).where(
                MessagePair.topic_chat_id == case.forum_chat_id,
                MessagePair.topic_message_id == topic_message_id,
            )
        )
        return found is not None

    @staticmethod
    def _relayed(
        session: AsyncSession, case: Case, row: Message, citizen_msg: int, topic_msg: int
    ) -> None:
        """Mark a message relayed and remember the pair of copies, so edits follow."""
        assert case.forum_chat_id is not None
        session.add(
            MessagePair(
                case_id=case.id,
                citizen_chat_id=case.citizen_id,
                citizen_message_id=citizen_msg,
                topic_chat_id=case.forum_chat_id,
                topic_message_id=topic_msg,
                direction=row.direction,
            )
        )
        row.relay_state = RelayState.DONE

    async def _mark_blocked(self, session: AsyncSession, citizen_id: int) -> None:
        citizen = await session.get(Citizen, citizen_id)
        if citizen is not None and not citizen.blocked_bot:
            citizen.blocked_bot = True
            citizen.blocked_at = self.clock()

    async def _notice(self, session: AsyncSession, case: Case, text: str) -> None:
        """Post a bot notice into the case topic; a failure is logged, not raised."""
        if case.forum_chat_id is None or case.forum_topic_id is None:
            return
        try:
            await self._topic_call(
                session,
                case,
                lambda c, t: self.bot.send_message(c, fit_html(text), message_thread_id=t),
            )
        except TelegramAPIError as exc:
            log.error("case %s: notice not posted: %s", case.id, exc)

    async def notice(self, case_id: int, text: str) -> None:
        """Post a notice into a case topic (own session and claim)."""
        async with self._hold(case_id, CLAIM_WAIT_SECONDS), self.sessionmaker() as session:
            case = await session.get(Case, case_id)
            if case is not None and case.delivered_at is not None:
                await self._notice(session, case, text)
                await session.commit()

    # ------------------------------------------------------------------ officer side

    async def store_officer_message(
        self,
        session: AsyncSession,
        case: Case,
        officer_id: int,
        message_id: int,
        content_type: str,
        text: str | None,
    ) -> bool:
        """Record an officer message for relay; auto-claims. True when this claimed the case."""
        now = self.clock()
        session.add(
            Message(
                citizen_id=case.citizen_id,
                case_id=case.id,
                direction=Direction.OFFICER,
                content_type=content_type,
                text=text,
                telegram_message_id=message_id,
                staff_user_id=officer_id,
                relay_state=RelayState.PENDING,
                created_at=now,
            )
        )
        if case.first_response_at is None:
            case.first_response_at = now
        claimed = False
        if case.assigned_officer_id is None:
            self._claim(session, case, officer_id, auto=True)
            claimed = True
        await session.commit()
        return claimed

    def _claim(self, session: AsyncSession, case: Case, officer_id: int, auto: bool) -> None:
        now = self.clock()
        case.assigned_officer_id = officer_id
        case.status = CaseStatus.CLAIMED
        case.claimed_at = case.claimed_at or now
        repo.audit(
            session,
            "case.claim",
            actor_id=officer_id,
            target_type="case",
            target_id=case.id,
            at=now,
            auto=auto,
        )

    async def claim(self, session: AsyncSession, case: Case, officer_id: int) -> int | None:
        """An officer takes the case; returns the previous assignee when taken over."""
        previous = case.assigned_officer_id
        self._claim(session, case, officer_id, auto=False)
        await session.commit()
        return previous if previous not in (None, officer_id) else None

    async def transfer(self, session: AsyncSession, case: Case, officer_id: int) -> None:
        """Unassign: the case waits for another officer (and urgent ones are paged again)."""
        case.assigned_officer_id = None
        case.status = CaseStatus.OPEN
        case.last_paged_at = None
        repo.audit(
            session,
            "case.transfer",
            actor_id=officer_id,
            target_type="case",
            target_id=case.id,
            at=self.clock(),
        )
        await session.commit()

    async def add_note(self, session: AsyncSession, case: Case, officer_id: int, text: str) -> None:
        """An internal note: stored, never relayed."""
        session.add(
            Message(
                citizen_id=case.citizen_id,
                case_id=case.id,
                direction=Direction.NOTE,
                content_type="text",
                text=text,
                staff_user_id=officer_id,
                relay_state=RelayState.NONE,
                created_at=self.clock(),
            )
        )
        repo.audit(session, "case.note", actor_id=officer_id, target_type="case", target_id=case.id)
        await session.commit()

    async def set_ban(
        self, session: AsyncSession, case: Case, officer_id: int, banned: bool
    ) -> None:
        """Ban or unban the case's citizen."""
        citizen = await session.get(Citizen, case.citizen_id)
        assert citizen is not None
        citizen.banned = banned
        citizen.banned_at = self.clock() if banned else None
        citizen.ban_notified = False
        repo.audit(
            session,
            "citizen.ban" if banned else "citizen.unban",
            actor_id=officer_id,
            target_type="citizen",
            target_id=citizen.id,
            case_id=case.id,
        )
        await session.commit()

    async def set_duty(self, session: AsyncSession, user_id: int, on_duty: bool) -> bool:
        """Mark an officer on or off duty; False when they hold no staff role."""
        rows = (await session.scalars(select(StaffRole).where(StaffRole.user_id == user_id))).all()
        for row in rows:
            row.on_duty = on_duty
        repo.audit(
            session,
            "staff.onduty" if on_duty else "staff.offduty",
            actor_id=user_id,
            target_type="user",
            target_id=user_id,
        )
        await session.commit()
        return bool(rows)

    async def close(
        self,
        session: AsyncSession,
        case: Case,
        officer_id: int | None,
        note: str | None,
    ) -> None:
        """Close the case (committed), then tell the citizen and close the topic."""
        now = self.clock()
        case.status = CaseStatus.CLOSED
        case.closed_at = now
        case.closed_by = officer_id
        case.close_note = note or None
        repo.audit(
            session,
            "case.close",
            actor_id=officer_id,
            target_type="case",
            target_id=case.id,
            at=now,
            note=note or "",
        )
        await session.commit()
        lang = case.language or self.locales.default
        # Safe messaging: a crisis conversation never ends without the crisis line and the
        # emergency numbers, and is not asked for a star rating in the same breath.
        crisis = case.reason in (CaseReason.CRISIS, CaseReason.EMERGENCY)
        try:
            await self.bot.send_message(
                case.citizen_id,
                self.citizen_text(lang, "ho_closed_crisis" if crisis else "ho_closed_citizen"),
                reply_markup=closed_keyboard(
                    case.id, self.citizen_text(lang, "ho_talk_again"), rating=not crisis
                ),
            )
        except TelegramForbiddenError as exc:
            await self._mark_blocked(session, case.citizen_id)
            await session.commit()
            await self.notice(case.id, self._st("ho_citizen_blocked", error=exc.message))
        except TelegramAPIError as exc:
            log.error("case %s: close message to the citizen failed: %s", case.id, exc)
        await self.set_topic_closed(case.id, closed=True)

    async def set_topic_closed(self, case_id: int, closed: bool) -> None:
        """Close (✅ name) or reopen a case's topic; Telegram errors are logged."""
        # Done even if another process keeps the case past the wait: an officer asked for it.
        async with self._hold(case_id, CLAIM_WAIT_SECONDS), self.sessionmaker() as session:
            case = await session.get(Case, case_id)
            if case is None or case.forum_chat_id is None or case.forum_topic_id is None:
                return
            citizen = await session.get(Citizen, case.citizen_id)
            assert citizen is not None
            name = topic_name(case, citizen, closed=closed)
            chat, thread = case.forum_chat_id, case.forum_topic_id
            try:
                if closed:
                    closer = await self.staff_name(session, case.closed_by)
                    await self._notice(
                        session,
                        case,
                        self._st(
                            "ho_closed_topic",
                            id=case.id,
                            officer=closer,
                            note=case.close_note or "—",
                        ),
                    )
                else:
                    with contextlib.suppress(TelegramBadRequest):
                        await self.bot.reopen_forum_topic(chat, thread)
                if name != case.topic_name:
                    with contextlib.suppress(TelegramBadRequest):
                        await self.bot.edit_forum_topic(chat, case.forum_topic_id, name=name)
                    case.topic_name = name
                if closed:
                    with contextlib.suppress(TelegramBadRequest):
                        await self.bot.close_forum_topic(chat, case.forum_topic_id)
                else:
                    await self._notice(session, case, self._st("ho_reopened_topic", id=case.id))
            except TelegramAPIError as exc:
                log.error("case %s: topic state not updated: %s", case.id, exc)
            await session.commit()

    async def rename_topic(self, case_id: int) -> None:
        """Bring the topic name in line with the case (after a priority change)."""
        async with self._hold(case_id, CLAIM_WAIT_SECONDS), self.sessionmaker() as session:
            case = await session.get(Case, case_id)
            if case is None or case.forum_chat_id is None or case.forum_topic_id is None:
                return
            citizen = await session.get(Citizen, case.citizen_id)
            assert citizen is not None
            name = topic_name(case, citizen, closed=case.status == CaseStatus.CLOSED)
            if name == case.topic_name:
                return
            try:
                await self.bot.edit_forum_topic(case.forum_chat_id, case.forum_topic_id, name=name)
                case.topic_name = name
                if case.priority == CasePriority.URGENT and case.status == CaseStatus.OPEN:
                    await self._page(session, case, first=True)
            except TelegramAPIError as exc:
                log.error("case %s: topic not renamed: %s", case.id, exc)
            await session.commit()

    async def rate(self, session: AsyncSession, case_id: int, user_id: int, stars: int) -> bool:
        """Store a 1-5 rating from the case's own citizen, once, after the close."""
        if not 1 <= stars <= 5:
            return False
        case = await session.get(Case, case_id)
        if (
            case is None
            or case.citizen_id != user_id
            or case.status != CaseStatus.CLOSED
            or case.rating is not None
        ):
            return False
        case.rating = stars
        await session.commit()
        return True

    # ------------------------------------------------------------------ edits

    async def relay_citizen_edit(
        self, citizen_id: int, message_id: int, html_text: str, is_caption: bool
    ) -> None:
        """A citizen edited a message: edit its copy in the topic (or post the new text)."""
        async with self.sessionmaker() as session:
            pair = await session.scalar(
                select(MessagePair).where(
                    MessagePair.citizen_chat_id == citizen_id,
                    MessagePair.citizen_message_id == message_id,
                )
            )
            if pair is not None:
                if await self._edit(
                    pair.topic_chat_id, pair.topic_message_id, html_text, is_caption
                ):
                    return
                case_id = pair.case_id
            else:
                row = await session.scalar(
                    select(Message).where(
                        Message.citizen_id == citizen_id,
                        Message.telegram_message_id == message_id,
                        Message.direction == Direction.CITIZEN,
                    )
                )
                if row is not None and row.relay_state == RelayState.PENDING:
                    return  # the copy is not made yet; it will carry the new text
                case = await self.active_case(session, citizen_id)
                if case is None:
                    return
                case_id = case.id
        await self.notice(
            case_id, self._st("ho_citizen_edited") + "\n" + fit_html(html_text, EDIT_NOTICE_CHARS)
        )

    async def relay_officer_edit(
        self, chat_id: int, message_id: int, html_text: str, is_caption: bool
    ) -> bool:
        """An officer edited a relayed message: edit the citizen's copy. False if none."""
        async with self.sessionmaker() as session:
            pair = await session.scalar(
                select(MessagePair).where(
                    MessagePair.topic_chat_id == chat_id,
                    MessagePair.topic_message_id == message_id,
                    MessagePair.direction == Direction.OFFICER,
                )
            )
        if pair is None:
            return False
        return await self._edit(
            pair.citizen_chat_id, pair.citizen_message_id, html_text, is_caption
        )

    async def _edit(self, chat_id: int, message_id: int, html_text: str, is_caption: bool) -> bool:
        try:
            if is_caption:
                await self.bot.edit_message_caption(
                    chat_id=chat_id, message_id=message_id, caption=fit_html(html_text, MAX_CAPTION)
                )
            else:
                await self.bot.edit_message_text(
                    fit_html(html_text), chat_id=chat_id, message_id=message_id
                )
        except TelegramBadRequest as exc:
            if _is(exc, "not modified"):
                return True
            log.warning("edit of %s/%s not relayed: %s", chat_id, message_id, exc)
            return False
        except TelegramAPIError as exc:
            log.warning("edit of %s/%s not relayed: %s", chat_id, message_id, exc)
            return False
        return True

    async def urgent_reply_unreachable(self, citizen_id: int, error: str) -> bool:
        """Tell the case topic that the crisis reply could not reach the citizen.

        False while there is no delivered case to tell yet (asked again on the next pass).
        """
        async with self.sessionmaker() as session:
            case = await self.active_case(session, citizen_id)
        if case is None or case.delivered_at is None:
            return False
        await self.notice(case.id, self._st("ho_urgent_reply_unreachable", error=error))
        return True

    async def citizen_blocked(self, citizen_id: int, blocked: bool) -> None:
        """Tell the topic of the citizen's active case that they blocked (or unblocked) the bot."""
        async with self.sessionmaker() as session:
            case = await self.active_case(session, citizen_id)
        if case is not None:
            key = "ho_citizen_blocked_event" if blocked else "ho_citizen_unblocked_event"
            await self.notice(case.id, self._st(key))

    # ------------------------------------------------------------------ the loop

    async def tick(self) -> None:
        """One pass: deliver, relay pending, re-page, escalate, wait notices."""
        async with self.sessionmaker() as session:
            undelivered = (
                await session.execute(
                    select(Case.id, Case.priority)
                    .where(Case.delivered_at.is_(None), Case.status != CaseStatus.CLOSED)
                    .order_by(Case.priority == CasePriority.NORMAL, Case.id)
                )
            ).all()
            pending = (
                await session.execute(
                    select(Case.id, Case.priority)
                    .where(
                        Case.id.in_(
                            select(Message.case_id).where(
                                Message.relay_state == RelayState.PENDING,
                                Message.case_id.is_not(None),
                            )
                        )
                    )
                    .order_by(Case.priority == CasePriority.NORMAL, Case.id)
                )
            ).all()
        todo = dict([*undelivered, *pending])
        for case_id, priority in sorted(todo.items(), key=lambda c: c[1] != CasePriority.URGENT):
            if self._lock(case_id).locked():
                continue  # an update is delivering it right now
            if not await self._room(priority):
                continue  # the forum's minute is full; ordinary cases wait (no backoff)
            failures, next_try = self._backoff.get(case_id, (0, 0.0))
            if time.monotonic() < next_try:
                continue
            flushed = await self._flush(case_id, wait=0)
            if flushed is None:
                continue  # another process delivers it right now
            if flushed:
                self._backoff.pop(case_id, None)
            elif not await self._room(priority):
                pass  # stopped for the forum's minute, not for a failure: no backoff
            else:
                # Back off while the forum is down, up to 12 loop periods (a minute by default).
                period = getattr(self.settings, "loop_seconds", 5.0)
                delay = min(period * 2**failures, period * 12)
                self._backoff[case_id] = (failures + 1, time.monotonic() + delay)
        await self._guarantees()

    async def _guarantees(self) -> None:
        now = self.clock()
        repage = self._minutes(self.settings.repage_minutes)
        escalate = self._minutes(self.settings.escalate_minutes)
        wait = self._minutes(self.settings.wait_notice_minutes)
        async with self.sessionmaker() as session:
            waiting = (
                await session.scalars(
                    select(Case.id)
                    .where(Case.status == CaseStatus.OPEN, Case.priority == CasePriority.URGENT)
                    .order_by(Case.id)
                )
            ).all()
            unnotified = (
                await session.scalars(
                    select(Case.id).where(
                        Case.status == CaseStatus.OPEN,
                        Case.first_response_at.is_(None),
                        Case.wait_notice_at.is_(None),
                        Case.opened_at <= now - wait,
                    )
                )
            ).all()
        for case_id in waiting:
            # Under the case's claim, read afresh: another process may have paged it just now.
            async with self._hold(case_id, 0) as held:
                if held:
                    await self._repage(case_id, now, repage, escalate)
        for case_id in unnotified:
            await self._wait_notice(case_id)

    async def _repage(
        self, case_id: int, now: datetime, repage: timedelta, escalate: timedelta
    ) -> None:
        async with self.sessionmaker() as session:
            case = await session.get(Case, case_id)
            if case is None or case.status != CaseStatus.OPEN:
                return
            if case.priority != CasePriority.URGENT:
                return
            try:
                last = case.last_paged_at or case.opened_at
                if case.delivered_at is not None and now - last >= repage:
                    await self._page(session, case)
                # Escalation does not wait for the forum: when the forum is what fails,
                # the backup desk is the one place left to hear about the case.
                if case.escalated_at is None and now - case.opened_at >= escalate:
                    await self._escalate(session, case)
            except TelegramAPIError as exc:
                log.error("case %s: paging failed: %s", case.id, exc)

    async def _escalate(self, session: AsyncSession, case: Case) -> None:
        citizen = await session.get(Citizen, case.citizen_id)
        assert citizen is not None
        minutes = int((self.clock() - case.opened_at).total_seconds() // 60)
        link = topic_link(case.forum_chat_id or 0, case.forum_topic_id)
        ref = f'<a href="{link}">#{case.id}</a>' if link else f"#{case.id}"
        text = self._st(
            "ho_escalated", case=f"#{case.id}", minutes=minutes, name=citizen_label(citizen)
        )
        text = text.replace(f"#{case.id}", ref, 1)
        if case.delivered_at is None:
            who = f"{citizen.full_name} (id {citizen.id}" + (
                f", @{citizen.username})" if citizen.username else ")"
            )
            text += "\n" + self._st(
                "ho_escalated_undelivered",
                error=case.last_delivery_error or "?",
                who=who,
                reason=case.reason,
            )
        backup = self.settings.backup_chat_id
        if backup is None:
            log.error("case %s: unclaimed and no OFFICERS_BACKUP_CHAT_ID to escalate to", case.id)
            await self._notice(session, case, self._st("ho_no_backup"))
        else:
            await self.bot.send_message(backup, text, disable_web_page_preview=True)
            await self._notice(session, case, self._st("ho_escalated_topic"))
        case.escalated_at = self.clock()
        repo.audit(
            session,
            "case.escalate",
            actor_id=None,
            target_type="case",
            target_id=case.id,
            backup_chat_id=backup,
        )
        await session.commit()

    async def _wait_notice(self, case_id: int) -> None:
        async with self._hold(case_id, 0) as held:
            if held:
                await self._wait_notice_held(case_id)

    async def _wait_notice_held(self, case_id: int) -> None:
        async with self.sessionmaker() as session:
            case = await session.get(Case, case_id)
            if case is None or case.wait_notice_at is not None:
                return
            # Marked before sending: one "still here" is a comfort, a repeated one is noise.
            case.wait_notice_at = self.clock()
            await session.commit()
            lang = case.language or self.locales.default
            try:
                await self.bot.send_message(
                    case.citizen_id, self.citizen_text(lang, "ho_wait_notice")
                )
            except TelegramForbiddenError:
                await self._mark_blocked(session, case.citizen_id)
                await session.commit()
            except TelegramAPIError as exc:
                log.error("case %s: wait notice failed: %s", case.id, exc)

    async def run(self, period: float) -> None:
        """Run `tick` now and then every `period` seconds until cancelled."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive any single bad row or outage
                log.exception("handoff loop pass failed")
            await asyncio.sleep(period)


async def count_undelivered(session: AsyncSession) -> int:
    """Cases whose card has not reached the officers yet (for health checks)."""
    return int(
        await session.scalar(
            select(func.count(Case.id)).where(
                Case.delivered_at.is_(None), Case.status != CaseStatus.CLOSED
            )
        )
        or 0
    )
