"""The officers' forum: a topic per case, its card, pages, notices and the topic's state.

Every change of a case is committed before Telegram is called and marked done after, so a
failed call is retried by the loop, never lost."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases import cards
from bot.cases import repository as cases_repo
from bot.cases.context import CLAIM_WAIT_SECONDS, Desk, refused
from bot.db import repo
from bot.db.models import Case, CasePriority, CaseStatus, Citizen
from bot.faq.telegram_html import fit_html

log = logging.getLogger(__name__)
T = TypeVar("T")


class Forum:
    """Talks to the officers' forum about cases."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    async def staff_name(self, session: AsyncSession, user_id: int | None) -> str:
        """An officer's display name for colleagues (never shown to citizens)."""
        if user_id is None:
            return "—"
        return await repo.display_name(session, user_id) or f"id {user_id}"

    async def deliver(self, session: AsyncSession, case: Case) -> bool:
        """Post the case's card in its topic (made first if needed); the attempt, its error
        or the delivery is committed either way. False when it failed."""
        desk = self.desk
        chat_id = desk.settings.chat_id
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
            await self.topic_call(
                session, case, lambda c, t: self._post_card(session, case, c, t, page=page)
            )
            if page is not None:
                self._paged(case)
        except TelegramAPIError as exc:
            case.last_delivery_error = str(exc)[:1000]
            await session.commit()
            log.error("case %s: delivery to the officers failed: %s", case.id, exc)
            return False
        case.delivered_at = desk.clock()
        case.last_delivery_error = None
        await session.commit()
        log.info("case %s delivered to topic %s", case.id, case.forum_topic_id)
        return True

    async def _create_topic(self, session: AsyncSession, case: Case, chat_id: int) -> None:
        citizen = await session.get(Citizen, case.citizen_id)
        assert citizen is not None
        name = cards.topic_name(case, citizen)
        topic = await self.desk.bot.create_forum_topic(chat_id, name)
        case.forum_chat_id = chat_id
        case.forum_topic_id = topic.message_thread_id
        case.topic_name = name
        # Committed at once: a restart must reuse this topic, not open a second one.
        await session.commit()

    async def topic_call(
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
                if refused(exc, "thread not found"):
                    log.warning(
                        "case %s: topic %s is gone; recreating", case.id, case.forum_topic_id
                    )
                    await self._create_topic(session, case, case.forum_chat_id)
                    await self._post_card(
                        session, case, case.forum_chat_id, case.forum_topic_id, recreated=True
                    )
                    continue
                if refused(exc, "topic_closed"):
                    with contextlib.suppress(TelegramBadRequest):
                        await self.desk.bot.reopen_forum_topic(
                            case.forum_chat_id, case.forum_topic_id
                        )
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
            await self.desk.bot.send_message(
                chat_id, part, message_thread_id=thread_id, disable_web_page_preview=True
            )

    async def render_card(
        self, session: AsyncSession, case: Case, recreated: bool = False, page: str | None = None
    ) -> list[str]:
        """The case card as HTML messages (split below Telegram's limit), led by `page`."""
        citizen = await session.get(Citizen, case.citizen_id)
        assert citizen is not None
        # A case opened by /human or a button has no message of the citizen's to follow the
        # card, unless they have written since.
        return cards.card(
            self.desk.st,
            self.desk.tz,
            case,
            citizen,
            earlier=await cases_repo.other_case_ids(session, case),
            history=await cases_repo.history_before(
                session, case, self.desk.settings.transcript_messages
            ),
            asked=not await cases_repo.citizen_wrote_in(session, case),
            recreated=recreated,
            page=page,
        )

    async def _page_text(self, session: AsyncSession, case: Case, first: bool) -> str:
        """The page: what is urgent, and mentions of the officers to notify."""
        on_duty = await cases_repo.officers(session, on_duty_only=True)
        # Nobody marked on duty: page every officer rather than nobody.
        everyone = [] if on_duty else await cases_repo.officers(session, on_duty_only=False)
        mentions = cards.page_mentions(self.desk.st, on_duty, everyone)
        key = "ho_page_first" if first else "ho_page_again"
        waited = cards.minutes_since(case.opened_at, self.desk.clock())
        return self.desk.st(key, id=case.id, minutes=waited) + "\n" + mentions

    def _paged(self, case: Case) -> None:
        case.last_paged_at = self.desk.clock()
        case.page_count += 1

    async def page(self, session: AsyncSession, case: Case, first: bool = False) -> None:
        """Page the officers in the case's topic (committed)."""
        text = await self._page_text(session, case, first)
        await self.topic_call(
            session,
            case,
            lambda c, t: self.desk.bot.send_message(c, text, message_thread_id=t),
        )
        self._paged(case)
        await session.commit()

    async def notice_in(self, session: AsyncSession, case: Case, text: str) -> None:
        """Post a bot notice into the case topic; a failure is logged, not raised."""
        if case.forum_chat_id is None or case.forum_topic_id is None:
            return
        try:
            await self.topic_call(
                session,
                case,
                lambda c, t: self.desk.bot.send_message(c, fit_html(text), message_thread_id=t),
            )
        except TelegramAPIError as exc:
            log.error("case %s: notice not posted: %s", case.id, exc)

    async def notice(self, case_id: int, text: str) -> None:
        """Post a notice into a case topic (own session and claim)."""
        async with self.desk.hold(case_id, CLAIM_WAIT_SECONDS), self.desk.sessionmaker() as session:
            case = await session.get(Case, case_id)
            if case is not None and case.delivered_at is not None:
                await self.notice_in(session, case, text)
                await session.commit()

    async def _topic_case(
        self, session: AsyncSession, case_id: int, closed: bool | None = None
    ) -> tuple[Case, int, int, str] | None:
        """The case, its topic's chat and thread, and the name the topic should have (closed
        or open; by default as the case is), when the case has a topic."""
        case = await session.get(Case, case_id)
        if case is None or case.forum_chat_id is None or case.forum_topic_id is None:
            return None
        citizen = await session.get(Citizen, case.citizen_id)
        assert citizen is not None
        if closed is None:
            closed = case.status == CaseStatus.CLOSED
        name = cards.topic_name(case, citizen, closed=closed)
        return case, case.forum_chat_id, case.forum_topic_id, name

    async def set_topic_closed(self, case_id: int, closed: bool) -> None:
        """Close (✅ name) or reopen a case's topic; Telegram errors are logged."""
        desk, bot = self.desk, self.desk.bot
        # Done even if another process keeps the case past the wait: an officer asked for it.
        async with desk.hold(case_id, CLAIM_WAIT_SECONDS), desk.sessionmaker() as session:
            found = await self._topic_case(session, case_id, closed)
            if found is None:
                return
            case, chat, thread, name = found
            try:
                if closed:
                    closer = await self.staff_name(session, case.closed_by)
                    await self.notice_in(
                        session,
                        case,
                        desk.st(
                            "ho_closed_topic",
                            id=case.id,
                            officer=closer,
                            note=case.close_note or "—",
                        ),
                    )
                else:
                    with contextlib.suppress(TelegramBadRequest):
                        await bot.reopen_forum_topic(chat, thread)
                if name != case.topic_name:
                    with contextlib.suppress(TelegramBadRequest):
                        await bot.edit_forum_topic(chat, thread, name=name)
                    case.topic_name = name
                if closed:
                    with contextlib.suppress(TelegramBadRequest):
                        await bot.close_forum_topic(chat, thread)
                else:
                    await self.notice_in(session, case, desk.st("ho_reopened_topic", id=case.id))
            except TelegramAPIError as exc:
                log.error("case %s: topic state not updated: %s", case.id, exc)
            await session.commit()

    async def rename_topic(self, case_id: int) -> None:
        """Bring the topic name in line with the case (after a priority change)."""
        desk = self.desk
        async with desk.hold(case_id, CLAIM_WAIT_SECONDS), desk.sessionmaker() as session:
            found = await self._topic_case(session, case_id)
            if found is None:
                return
            case, chat, thread, name = found
            if name == case.topic_name:
                return
            try:
                await desk.bot.edit_forum_topic(chat, thread, name=name)
                case.topic_name = name
                if case.priority == CasePriority.URGENT and case.status == CaseStatus.OPEN:
                    await self.page(session, case, first=True)
            except TelegramAPIError as exc:
                log.error("case %s: topic not renamed: %s", case.id, exc)
            await session.commit()
