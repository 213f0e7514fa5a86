"""The case desk's rules: open (or upgrade, or reopen) a case, record what citizens and officers
write in it, claim, transfer, note, ban, close, rate.

The guarantees come from the order of operations: every row is written and committed *before*
Telegram is called (a case with `delivered_at` NULL, a message with relay_state PENDING) and
marked done after. The loop (`bot.cases.scheduler`, every OFFICERS_LOOP_SECONDS and once at
start) retries whatever is still pending, so neither a Telegram outage nor a restart loses a
case or a message. A per-case claim in the database (`bot.claims`: an in-process lock, then a
leased row) keeps relays of one case in order and stops the loop and an update, in this process
or another, from delivering the same card, page or relay twice; a dead process's claims are
taken over when their lease runs out.

`HandoffService` is the one object handlers and the bootstrap hold: it keeps the rules and
hands delivery to `Forum` and `Relay`, the loop to `Scheduler`. It knows Telegram only through
ids, text and the Bot's methods; handlers turn updates into these calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cases import cards
from bot.cases import repository as cases_repo
from bot.cases.context import CLAIM_WAIT_SECONDS, Desk
from bot.cases.forum import Forum
from bot.cases.relay import Relay
from bot.cases.scheduler import Scheduler
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
    RelayState,
    utcnow,
)
from bot.db.session import release as release_connection
from bot.i18n import Locales
from bot.telegram import ForumLane

if TYPE_CHECKING:
    from bot.config import OfficersSettings

log = logging.getLogger(__name__)


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
        self.desk = Desk(
            bot=bot,
            sessionmaker=sessionmaker,
            locales=locales,
            settings=settings,
            claims=claims or Claims(sessionmaker, getattr(settings, "claim_seconds", 15.0)),
            lane=lane,
            clock=clock,
            tz=tz,
        )
        self.forum = Forum(self.desk)
        self.relay = Relay(self.desk, self.forum)
        self.scheduler = Scheduler(self.desk, self.forum, self.relay)
        # The forum's work: posting in topics, relaying, the loop (see their modules).
        self.render_card = self.forum.render_card
        self.notice = self.forum.notice
        self.set_topic_closed = self.forum.set_topic_closed
        self.rename_topic = self.forum.rename_topic
        self.staff_name = self.forum.staff_name
        self.tick = self.scheduler.tick
        self.run = self.scheduler.run
        self.citizen_text = self.desk.citizen_text

    @property
    def settings(self) -> OfficersSettings:
        return self.desk.settings

    @settings.setter
    def settings(self, value: OfficersSettings) -> None:
        self.desk.settings = value

    @property
    def tz(self) -> tzinfo:
        """The bureau's time zone: times on cards and merged relays are shown in it."""
        return self.desk.tz

    @tz.setter
    def tz(self, value: tzinfo) -> None:
        self.desk.tz = value

    # ------------------------------------------------------------------ queries

    async def active_case(self, session: AsyncSession, citizen_id: int) -> Case | None:
        """The citizen's open or claimed case, else one closed within the reopen window."""
        if repo.never_had_case(session, citizen_id):
            return None
        return await cases_repo.active_case(
            session, citizen_id, self.desk.clock() - self.desk.reopen_window
        )

    async def case_by_topic(
        self, session: AsyncSession, chat_id: int, thread_id: int | None
    ) -> Case | None:
        """The case whose forum topic this is."""
        if thread_id is None:
            return None
        return await cases_repo.case_by_topic(session, chat_id, thread_id)

    async def open_cases(self, session: AsyncSession) -> list[tuple[Case, Citizen | None]]:
        """Cases not closed with their citizens (one statement): urgent first, oldest first
        within a priority."""
        return await cases_repo.open_cases(session)

    async def recent_texts(
        self, session: AsyncSession, citizen_id: int, within: timedelta, limit: int
    ) -> list[str]:
        """The citizen's last texts outside any case, oldest first (for reading a crisis said
        across several short messages together)."""
        return await cases_repo.recent_texts(session, citizen_id, self.desk.clock() - within, limit)

    async def answers_officer(self, session: AsyncSession, case: Case, message_id: int) -> bool:
        """Whether the citizen's message `message_id` is the bot's copy of an officer's message
        in this case (a citizen replying to it wants that officer)."""
        return await cases_repo.is_officer_copy(session, case, message_id)

    # ------------------------------------------------------------------ the citizen's side

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
        now = self.desk.clock()
        case = await cases_repo.open_case_of(session, citizen.id)
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
            repo.case_opened(session, citizen.id)
            self._audit(
                session,
                "case.open",
                case,
                actor_id=None,
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
            self._audit(session, "case.upgrade", case, actor_id=None, at=now, reason=str(reason))
        if trigger is not None and not await cases_repo.has_message(session, case, trigger[0]):
            message_id, content_type, text = trigger
            await self.store_citizen_message(
                session, citizen.id, case, message_id, content_type, text
            )
        await session.commit()
        return case

    async def open_case_or_none(
        self, session: AsyncSession, citizen: Citizen, **kwargs: Any
    ) -> Case | None:
        """`open_case`, for a crisis or emergency whose reply must go out even when the
        database is failing: a failure is logged and the session rolled back (the update stays
        in the inbox and is handled again, so the case is stored then)."""
        try:
            return await self.open_case(session, citizen, **kwargs)
        except Exception:
            log.exception("could not store a case for citizen %s", citizen.id)
            await session.rollback()
            return None

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
            created_at=self.desk.clock(),
        )
        session.add(row)
        return row

    def reopenable(self, case: Case) -> bool:
        """A closed case the citizen may still bring back (within the reopen window)."""
        return (
            case.status == CaseStatus.CLOSED
            and case.closed_at is not None
            and self.desk.clock() - case.closed_at <= self.desk.reopen_window
        )

    async def reopen(self, session: AsyncSession, case: Case) -> None:
        """A citizen wrote after the close: the case (and later its topic) opens again."""
        case.status = CaseStatus.CLAIMED if case.assigned_officer_id else CaseStatus.OPEN
        case.closed_at = None
        case.reopened_count += 1
        self._audit(session, "case.reopen", case, actor_id=None, at=self.desk.clock())

    async def flush_case(self, case_id: int, wait: float = CLAIM_WAIT_SECONDS) -> bool:
        """Deliver the card if needed, then relay every pending message in order.

        Returns True when nothing is left pending. Never raises for Telegram errors: they
        are logged with the case id and retried by the loop. When another process works on the
        case for longer than `wait` seconds, returns False and leaves it to the loop.
        """
        return bool(await self.relay.flush_case(case_id, wait))

    async def citizen_wrote(
        self,
        session: AsyncSession,
        citizen: Citizen,
        case: Case,
        *,
        message_id: int,
        content_type: str,
        text: str | None,
        urgent: CaseReason | None,
        signals: Sequence[str],
        lang: str,
    ) -> tuple[bool, bool]:
        """A message of a citizen with an active case: stored for the topic (committed), the
        case reopened if it was closed and made urgent if `urgent` names why.

        Returns (reopened, upgraded to urgent)."""
        reopened = case.status == CaseStatus.CLOSED
        if reopened:
            await self.reopen(session, case)
        upgraded = False
        if urgent is not None:
            upgraded = case.priority != CasePriority.URGENT
            await self.open_case(
                session,
                citizen,
                reason=urgent,
                priority=CasePriority.URGENT,
                signals=signals,
                lang=lang,
                trigger=(message_id, content_type, text),
            )
        else:
            await self.store_citizen_message(
                session, citizen.id, case, message_id, content_type, text
            )
            await session.commit()
        return reopened, upgraded

    async def make_urgent(
        self,
        session: AsyncSession,
        citizen: Citizen,
        case: Case,
        *,
        reason: CaseReason,
        signals: Sequence[str],
        lang: str,
    ) -> bool:
        """An edit of the citizen's now says crisis or emergency: the case (reopened if it was
        closed) becomes urgent, committed. Returns whether it was reopened."""
        reopened = case.status == CaseStatus.CLOSED
        if reopened:
            await self.reopen(session, case)
        await self.open_case(
            session,
            citizen,
            reason=reason,
            priority=CasePriority.URGENT,
            signals=signals,
            lang=lang,
        )
        return reopened

    async def bring_back(self, session: AsyncSession, case: Case) -> None:
        """The citizen asked for the officer again (the button under the close): reopened,
        committed."""
        await self.reopen(session, case)
        await session.commit()

    async def relay_citizen_edit(
        self,
        session: AsyncSession,
        citizen_id: int,
        message_id: int,
        html_text: str,
        is_caption: bool,
    ) -> None:
        """A citizen edited a message: the update's transaction ends (its connection goes
        back), then the copy in the topic is edited (or the new text posted)."""
        await session.commit()
        await self.relay.citizen_edit(citizen_id, message_id, html_text, is_caption)

    async def relay_officer_edit(
        self, session: AsyncSession, chat_id: int, message_id: int, html_text: str, is_caption: bool
    ) -> bool:
        """An officer edited a relayed message: the update's transaction ends, then the
        citizen's copy is edited. False if there is none."""
        await session.commit()
        return await self.relay.officer_edit(chat_id, message_id, html_text, is_caption)

    async def release(self, session: AsyncSession) -> None:
        """Give the update's connection back before a long wait (the models' queue in a
        surge): its transaction ends, what was read stays usable, and the rows it added wait
        in the session for the update's own commit."""
        await release_connection(session)

    async def case(self, session: AsyncSession, case_id: int) -> Case | None:
        return await session.get(Case, case_id)

    async def urgent_reply_unreachable(self, citizen_id: int, error: str) -> bool:
        """Tell the case topic that the crisis reply could not reach the citizen.

        False while there is no delivered case to tell yet (asked again on the next pass).
        """
        async with self.desk.sessionmaker() as session:
            case = await self.active_case(session, citizen_id)
        if case is None or case.delivered_at is None:
            return False
        await self.notice(case.id, self.desk.st("ho_urgent_reply_unreachable", error=error))
        return True

    async def citizen_blocked(self, session: AsyncSession, citizen_id: int, blocked: bool) -> None:
        """Tell the topic of the citizen's active case that they blocked (or unblocked) the bot
        (after the update's transaction ends: what it recorded is committed)."""
        await session.commit()
        async with self.desk.sessionmaker() as session:
            case = await self.active_case(session, citizen_id)
        if case is not None:
            key = "ho_citizen_blocked_event" if blocked else "ho_citizen_unblocked_event"
            await self.notice(case.id, self.desk.st(key))

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

    # ------------------------------------------------------------------ the officers' side

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
        now = self.desk.clock()
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
        now = self.desk.clock()
        case.assigned_officer_id = officer_id
        case.status = CaseStatus.CLAIMED
        case.claimed_at = case.claimed_at or now
        self._audit(session, "case.claim", case, actor_id=officer_id, at=now, auto=auto)

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
        self._audit(session, "case.transfer", case, actor_id=officer_id, at=self.desk.clock())
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
                created_at=self.desk.clock(),
            )
        )
        self._audit(session, "case.note", case, actor_id=officer_id)
        await session.commit()

    async def set_ban(
        self, session: AsyncSession, case: Case, officer_id: int, banned: bool
    ) -> Citizen:
        """Ban or unban the case's citizen (returned)."""
        citizen = await session.get(Citizen, case.citizen_id)
        assert citizen is not None
        citizen.banned = banned
        citizen.banned_at = self.desk.clock() if banned else None
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
        return citizen

    async def set_duty(self, session: AsyncSession, user_id: int, on_duty: bool) -> bool:
        """Mark an officer on or off duty; False when they hold no staff role."""
        rows = await cases_repo.staff_roles(session, user_id)
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
        now = self.desk.clock()
        case.status = CaseStatus.CLOSED
        case.closed_at = now
        case.closed_by = officer_id
        case.close_note = note or None
        self._audit(session, "case.close", case, actor_id=officer_id, at=now, note=note or "")
        await session.commit()
        lang = case.language or self.desk.locales.default
        # Safe messaging: a crisis conversation never ends without the crisis line and the
        # emergency numbers, and is not asked for a star rating in the same breath.
        crisis = case.reason in (CaseReason.CRISIS, CaseReason.EMERGENCY)
        try:
            await self.desk.bot.send_message(
                case.citizen_id,
                self.citizen_text(lang, "ho_closed_crisis" if crisis else "ho_closed_citizen"),
                reply_markup=cards.closed_keyboard(
                    case.id, self.citizen_text(lang, "ho_talk_again"), rating=not crisis
                ),
            )
        except TelegramForbiddenError as exc:
            await cases_repo.mark_blocked(session, case.citizen_id, self.desk.clock())
            await session.commit()
            await self.notice(case.id, self.desk.st("ho_citizen_blocked", error=exc.message))
        except TelegramAPIError as exc:
            log.error("case %s: close message to the citizen failed: %s", case.id, exc)
        await self.set_topic_closed(case.id, closed=True)

    @staticmethod
    def _audit(
        session: AsyncSession, action: str, case: Case, *, actor_id: int | None, **details: Any
    ) -> None:
        repo.audit(
            session, action, actor_id=actor_id, target_type="case", target_id=case.id, **details
        )
