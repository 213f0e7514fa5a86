"""Relaying a case's messages both ways, as the bot, in order, exactly once.

A message is stored PENDING before anything is sent; its attempt is counted and committed
before Telegram is called; the copy's pair (citizen's message <-> topic's message) is recorded
with its DONE, so edits follow and a retry after a crash is recognised."""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Sequence
from contextlib import nullcontext

from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases import cards
from bot.cases import repository as cases_repo
from bot.cases.context import CLAIM_WAIT_SECONDS, MAX_RELAY_ATTEMPTS, Desk, refused
from bot.cases.forum import Forum
from bot.db import repo
from bot.db.models import Case, CasePriority, Direction, Message, MessagePair, RelayState
from bot.faq.telegram_html import MAX_CAPTION_LENGTH, fit_html
from bot.telegram import critical_sends

log = logging.getLogger(__name__)

# A text longer than this (escaped) is copied on its own, not merged with others.
MERGED_TEXT_MAX = 1500


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


class Relay:
    """Delivers a case (card, then pending messages) and carries edits across."""

    def __init__(self, desk: Desk, forum: Forum) -> None:
        self.desk = desk
        self.forum = forum

    async def flush_case(self, case_id: int, wait: float = CLAIM_WAIT_SECONDS) -> bool | None:
        """Deliver the card if needed, then relay every pending message in order.

        True when nothing is left pending; None when another process (or task) held the case
        for longer than `wait` seconds. Never raises for Telegram errors: they are logged with
        the case id and retried by the loop."""
        async with self.desk.hold(case_id, wait) as held:
            if not held:
                log.info("case %s: another process is working on it", case_id)
                return None
            return await self._flush_held(case_id)

    async def _flush_held(self, case_id: int) -> bool:
        async with self.desk.sessionmaker() as session:
            case = await session.get(Case, case_id)
            if case is None:
                return True
            # An urgent case's card, pages and relays take the limiter's critical line: they
            # never wait behind FAQ answers or ordinary cases' relays.
            lane = critical_sends() if case.priority == CasePriority.URGENT else nullcontext()
            try:
                with lane:
                    if case.delivered_at is None and (
                        not await self.desk.room(case.priority)
                        or not await self.forum.deliver(session, case)
                    ):
                        return False
                    return await self._relay_pending(session, case)
            except TelegramAPIError as exc:
                log.error("case %s: Telegram refused: %s", case_id, exc)
                return False

    async def _relay_pending(self, session: AsyncSession, case: Case) -> bool:
        rows = await cases_repo.pending_messages(session, case)
        start = 0
        while start < len(rows):
            # An urgent case's messages go one by one (they have the reserve of the forum's
            # minute, and each keeps its pair for replies and edits); ordinary ones merge.
            run = [] if case.priority == CasePriority.URGENT else _mergeable_run(rows, start)
            if rows[start].direction == Direction.CITIZEN and not await self.desk.room(
                case.priority
            ):
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
        return await self.desk.bot.send_message(chat_id, text, message_thread_id=thread_id)

    async def _relay_merged(self, session: AsyncSession, case: Case, rows: list[Message]) -> bool:
        """Several text messages of the citizen piled up (the forum's minute was full): one
        message in the topic carries them all, each with its time. No pair is kept: an edit of
        one of them is posted as a notice."""
        for row in rows:
            row.relay_attempts += 1
        await session.commit()
        try:
            for part in cards.merged(self.desk.st, self.desk.tz, rows):
                await self.forum.topic_call(
                    session, case, functools.partial(self._send_in_topic, part)
                )
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
        st = self.desk.st
        source_id = row.telegram_message_id
        assert source_id is not None
        if row.relay_attempts >= MAX_RELAY_ATTEMPTS:
            row.relay_state = RelayState.FAILED
            await session.commit()
            log.error(
                "case %s: message %s parked after %d attempts", case.id, row.id, row.relay_attempts
            )
            await self.forum.notice_in(
                session, case, st("ho_relay_parked", attempts=row.relay_attempts)
            )
            return True
        row.relay_attempts += 1
        await session.commit()
        if row.direction == Direction.OFFICER and await cases_repo.is_relay_copy(
            session, case, source_id
        ):
            # Not an officer's message: it is the bot's own copy of a citizen's message (only a
            # forged update claims that). Copying it would show one citizen's words to another.
            row.relay_state = RelayState.FAILED
            await session.commit()
            log.warning("case %s: message %s is a relay copy, not relayed", case.id, source_id)
            return True
        if row.direction == Direction.CITIZEN:
            return await self._to_topic(session, case, row, source_id)
        return await self._to_citizen(session, case, row, source_id)

    async def _to_topic(
        self, session: AsyncSession, case: Case, row: Message, source_id: int
    ) -> bool:
        bot = self.desk.bot
        try:
            copied = await self.forum.topic_call(
                session,
                case,
                lambda c, t: bot.copy_message(c, case.citizen_id, source_id, message_thread_id=t),
            )
        except TelegramBadRequest as exc:
            if refused(exc, "chat not found", "thread not found", "topic_closed"):
                await session.commit()
                log.error("case %s: relay to the forum failed: %s", case.id, exc)
                return False
            # The source is gone or cannot be copied: say so instead of retrying forever.
            row.relay_state = RelayState.FAILED
            await session.commit()
            await self.forum.notice_in(
                session,
                case,
                self.desk.st(
                    "ho_copy_failed",
                    kind=row.content_type,
                    text=cards.short(row.text, cards.EDIT_NOTICE_CHARS) or "—",
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

    async def _to_citizen(
        self, session: AsyncSession, case: Case, row: Message, source_id: int
    ) -> bool:
        """Officer -> citizen, as the bot."""
        st = self.desk.st
        assert case.forum_chat_id is not None
        try:
            copied = await self.desk.bot.copy_message(
                case.citizen_id, case.forum_chat_id, source_id
            )
        except TelegramForbiddenError as exc:
            row.relay_state = RelayState.FAILED
            await cases_repo.mark_blocked(session, case.citizen_id, self.desk.clock())
            await session.commit()
            await self.forum.notice_in(session, case, st("ho_citizen_blocked", error=exc.message))
            return True
        except TelegramBadRequest as exc:
            row.relay_state = RelayState.FAILED
            await session.commit()
            await self.forum.notice_in(session, case, st("ho_relay_failed", error=exc.message))
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
            at=self.desk.clock(),
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
            await cases_repo.mark_relayed_done(session, row_id)
            await session.commit()
            log.warning("message %s was relayed twice (a retry after a crash)", row_id)

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

    # ------------------------------------------------------------------ edits

    async def citizen_edit(
        self, citizen_id: int, message_id: int, html_text: str, is_caption: bool
    ) -> None:
        """A citizen edited a message: edit its copy in the topic (or post the new text)."""
        async with self.desk.sessionmaker() as session:
            pair = await cases_repo.pair_of_citizen_message(session, citizen_id, message_id)
            if pair is not None:
                if await self._edit(
                    pair.topic_chat_id, pair.topic_message_id, html_text, is_caption
                ):
                    return
                case_id = pair.case_id
            else:
                row = await cases_repo.citizen_message(session, citizen_id, message_id)
                if row is not None and row.relay_state == RelayState.PENDING:
                    return  # the copy is not made yet; it will carry the new text
                case = await cases_repo.active_case(
                    session, citizen_id, self.desk.clock() - self.desk.reopen_window
                )
                if case is None:
                    return
                case_id = case.id
        await self.forum.notice(
            case_id,
            self.desk.st("ho_citizen_edited") + "\n" + fit_html(html_text, cards.EDIT_NOTICE_CHARS),
        )

    async def officer_edit(
        self, chat_id: int, message_id: int, html_text: str, is_caption: bool
    ) -> bool:
        """An officer edited a relayed message: edit the citizen's copy. False if none."""
        async with self.desk.sessionmaker() as session:
            pair = await cases_repo.pair_of_officer_message(session, chat_id, message_id)
        if pair is None:
            return False
        return await self._edit(
            pair.citizen_chat_id, pair.citizen_message_id, html_text, is_caption
        )

    async def _edit(self, chat_id: int, message_id: int, html_text: str, is_caption: bool) -> bool:
        bot = self.desk.bot
        try:
            if is_caption:
                await bot.edit_message_caption(
                    chat_id=chat_id,
                    message_id=message_id,
                    caption=fit_html(html_text, MAX_CAPTION_LENGTH),
                )
            else:
                await bot.edit_message_text(
                    fit_html(html_text), chat_id=chat_id, message_id=message_id
                )
        except TelegramBadRequest as exc:
            if refused(exc, "not modified"):
                return True
            log.warning("edit of %s/%s not relayed: %s", chat_id, message_id, exc)
            return False
        except TelegramAPIError as exc:
            log.warning("edit of %s/%s not relayed: %s", chat_id, message_id, exc)
            return False
        return True
