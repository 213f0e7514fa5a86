"""The case loop: retries deliveries and relays, re-pages and escalates unclaimed urgent cases,
and tells a waiting citizen once that a person will answer.

Each pass claims every case it works on (`Desk.hold`), so two processes never page, escalate
or relay the same case twice, and a dead process's cases are taken over when its claim runs
out."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta

from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases import cards
from bot.cases import repository as cases_repo
from bot.cases.context import Desk
from bot.cases.forum import Forum
from bot.cases.relay import Relay
from bot.db import repo
from bot.db.models import Case, CasePriority, CaseStatus, Citizen

log = logging.getLogger(__name__)


class Scheduler:
    """One pass (`tick`) and the loop that runs it (`run`)."""

    def __init__(self, desk: Desk, forum: Forum, relay: Relay) -> None:
        self.desk = desk
        self.forum = forum
        self.relay = relay
        # case id -> (failed loop retries in a row, monotonic time of the next retry)
        self._backoff: dict[int, tuple[int, float]] = {}

    async def tick(self) -> None:
        """One pass: deliver, relay pending, re-page, escalate, wait notices."""
        desk = self.desk
        async with desk.sessionmaker() as session:
            todo = await cases_repo.cases_to_flush(session)
        for case_id, priority in sorted(todo.items(), key=lambda c: c[1] != CasePriority.URGENT):
            if desk.lock(case_id).locked():
                continue  # an update is delivering it right now
            if not await desk.room(priority):
                continue  # the forum's minute is full; ordinary cases wait (no backoff)
            failures, next_try = self._backoff.get(case_id, (0, 0.0))
            if time.monotonic() < next_try:
                continue
            flushed = await self.relay.flush_case(case_id, wait=0)
            if flushed is None:
                continue  # another process delivers it right now
            if flushed:
                self._backoff.pop(case_id, None)
            elif not await desk.room(priority):
                pass  # stopped for the forum's minute, not for a failure: no backoff
            else:
                # Back off while the forum is down, up to 12 loop periods (a minute by default).
                period = getattr(desk.settings, "loop_seconds", 5.0)
                delay = min(period * 2**failures, period * 12)
                self._backoff[case_id] = (failures + 1, time.monotonic() + delay)
        await self._guarantees()

    async def _guarantees(self) -> None:
        desk = self.desk
        now = desk.clock()
        repage = timedelta(minutes=desk.settings.repage_minutes)
        escalate = timedelta(minutes=desk.settings.escalate_minutes)
        wait = timedelta(minutes=desk.settings.wait_notice_minutes)
        async with desk.sessionmaker() as session:
            waiting = await cases_repo.unclaimed_urgent(session)
            unnotified = await cases_repo.unanswered_since(session, now - wait)
        for case_id in waiting:
            # Under the case's claim, read afresh: another process may have paged it just now.
            async with desk.hold(case_id, 0) as held:
                if held:
                    await self._repage(case_id, now, repage, escalate)
        for case_id in unnotified:
            async with desk.hold(case_id, 0) as held:
                if held:
                    await self._wait_notice(case_id)

    async def _repage(
        self, case_id: int, now: datetime, repage: timedelta, escalate: timedelta
    ) -> None:
        async with self.desk.sessionmaker() as session:
            case = await session.get(Case, case_id)
            if case is None or case.status != CaseStatus.OPEN:
                return
            if case.priority != CasePriority.URGENT:
                return
            try:
                last = case.last_paged_at or case.opened_at
                if case.delivered_at is not None and now - last >= repage:
                    await self.forum.page(session, case)
                # Escalation does not wait for the forum: when the forum is what fails,
                # the backup desk is the one place left to hear about the case.
                if case.escalated_at is None and now - case.opened_at >= escalate:
                    await self._escalate(session, case)
            except TelegramAPIError as exc:
                log.error("case %s: paging failed: %s", case.id, exc)

    async def _escalate(self, session: AsyncSession, case: Case) -> None:
        desk = self.desk
        citizen = await session.get(Citizen, case.citizen_id)
        assert citizen is not None
        text = cards.escalation(desk.st, case, citizen, desk.clock())
        backup = desk.settings.backup_chat_id
        if backup is None:
            log.error("case %s: unclaimed and no OFFICERS_BACKUP_CHAT_ID to escalate to", case.id)
            await self.forum.notice_in(session, case, desk.st("ho_no_backup"))
        else:
            await desk.bot.send_message(backup, text, disable_web_page_preview=True)
            await self.forum.notice_in(session, case, desk.st("ho_escalated_topic"))
        case.escalated_at = desk.clock()
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
        desk = self.desk
        async with desk.sessionmaker() as session:
            case = await session.get(Case, case_id)
            if case is None or case.wait_notice_at is not None:
                return
            # Marked before sending: one "still here" is a comfort, a repeated one is noise.
            case.wait_notice_at = desk.clock()
            await session.commit()
            lang = case.language or desk.locales.default
            try:
                await desk.bot.send_message(
                    case.citizen_id, desk.citizen_text(lang, "ho_wait_notice")
                )
            except TelegramForbiddenError:
                await cases_repo.mark_blocked(session, case.citizen_id, desk.clock())
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
