"""Crisis and emergency replies owed per update: recorded once, sent at once, retried until
Telegram takes them or the citizen cannot be reached (then the case topic is told).

With several processes on one database each reply is claimed before it is sent (`claimed_by`,
`claimed_until` on its row, taken with one atomic UPDATE and renewed while sending), so the
process that owes it and another's retry loop never both send it; a dead process's claim runs
out and the reply is taken over.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
)
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import failpoints
from bot.claims import process_identity
from bot.db import repo
from bot.db.models import UrgentReply, UrgentReplyState, utcnow
from bot.telegram import critical_sends

log = logging.getLogger(__name__)

# How long the path that owes a reply waits for it to be sent before going on (Telegram slow
# or away: the reply keeps trying in the background).
SEND_WAIT_SECONDS = 5.0

# How often a process waiting for another's send looks whether it went out.
CLAIM_POLL_SECONDS = 0.1

# Triage level -> the locale key of the reply owed for it.
URGENT_REPLY_KEYS = {"crisis": "ho_crisis_reply", "emergency": "ho_emergency_reply"}


class UrgentReplies:
    """Crisis and emergency replies: one per update, sent at once, retried until delivered."""

    def __init__(
        self,
        bot: Bot,
        sessionmaker: async_sessionmaker[AsyncSession],
        text: Callable[[str | None, str], str],
        *,
        unreachable: Callable[[int, str], Awaitable[bool]] | None = None,
        backoff_max: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        owner: str | None = None,
        lease_seconds: float = 10.0,
    ) -> None:
        self.bot = bot
        self.sessionmaker = sessionmaker
        self._text = text
        # Told (citizen id, error) when a reply cannot reach the citizen; True once the case
        # topic has been told, so the officers know the citizen did not get the crisis line.
        self.unreachable = unreachable
        self.backoff_max = backoff_max
        self.sleep = sleep
        self._sending: dict[int, asyncio.Task[None]] = {}
        # This process, as it signs its claims; how long a claim lasts unless renewed.
        self.owner = owner or process_identity()
        self.lease = timedelta(seconds=lease_seconds)

    def text_for(self, lang: str | None, level: str) -> str:
        """The reply a citizen gets for this level, in their language, numbers filled in."""
        return self._text(lang, URGENT_REPLY_KEYS[level])

    def row(self, update_id: int, chat_id: int, level: str, lang: str | None) -> dict[str, Any]:
        """The values of a reply row (for an insert that ignores an existing one)."""
        return {
            "update_id": update_id,
            "chat_id": chat_id,
            "level": level,
            "text": self.text_for(lang, level),
            "state": UrgentReplyState.PENDING,
            "attempts": 0,
            "noticed": False,
            "created_at": utcnow(),
        }

    async def owe(
        self, session: AsyncSession, update_id: int, chat_id: int, level: str, lang: str | None
    ) -> None:
        """Record the reply this update is owed (once per update) and COMMIT, then send it.

        Waits (up to `SEND_WAIT_SECONDS`) until it is sent: the reply goes out before the case
        card, and a crash after this point finds the reply recorded as sent.
        """
        await insert_ignore(session, UrgentReply, [self.row(update_id, chat_id, level, lang)])
        await session.commit()
        await self.deliver([update_id])

    def kick(self, update_id: int) -> asyncio.Task[None]:
        """Start sending a pending reply unless it is being sent already."""
        task = self._sending.get(update_id)
        if task is not None:
            return task
        task = asyncio.create_task(self._deliver(update_id), name=f"urgent-reply-{update_id}")
        self._sending[update_id] = task
        task.add_done_callback(lambda _: self._sending.pop(update_id, None))
        return task

    async def deliver(self, update_ids: Iterable[int]) -> None:
        """Send these owed replies, waiting a few seconds at most (they go on after that)."""
        tasks = [self.kick(update_id) for update_id in update_ids]
        if tasks:
            await asyncio.wait(tasks, timeout=SEND_WAIT_SECONDS)

    @property
    def busy(self) -> bool:
        return bool(self._sending)

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109
        """Let replies being sent finish (shutdown)."""
        if self._sending:
            await asyncio.wait(list(self._sending.values()), timeout=timeout)

    def _free(self, now: Any) -> Any:
        """Rows no process is sending (unclaimed, their claim run out, or ours)."""
        return or_(
            UrgentReply.claimed_until.is_(None),
            UrgentReply.claimed_until < now,
            UrgentReply.claimed_by == self.owner,
        )

    async def _claim(self, update_id: int) -> tuple[int, str] | None:
        """Claim a pending reply for sending: (chat, text), or None when there is nothing to
        send. When another process is sending it, waits (a few seconds at most) to see it go
        out or its claim run out, so the reply still comes before the case card."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SEND_WAIT_SECONDS
        while True:
            now = utcnow()
            async with self.sessionmaker() as session:
                claimed = (
                    await session.execute(
                        update(UrgentReply)
                        .where(
                            UrgentReply.update_id == update_id,
                            UrgentReply.state == UrgentReplyState.PENDING,
                            self._free(now),
                        )
                        .values(claimed_by=self.owner, claimed_until=now + self.lease)
                        .returning(UrgentReply.chat_id, UrgentReply.text)
                    )
                ).first()
                state = None
                if claimed is None:
                    state = await session.scalar(
                        select(UrgentReply.state).where(UrgentReply.update_id == update_id)
                    )
                await session.commit()
            if claimed is not None:
                return claimed[0], claimed[1]
            if state != UrgentReplyState.PENDING or loop.time() > deadline:
                return None  # sent, unreachable, or still another's (its loop goes on)
            await asyncio.sleep(CLAIM_POLL_SECONDS)

    async def _keep_claim(self, update_id: int) -> None:
        """Renew the claim while Telegram is slow (429 waits, retries)."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                async with self.sessionmaker() as session:
                    await session.execute(
                        update(UrgentReply)
                        .where(
                            UrgentReply.update_id == update_id,
                            UrgentReply.claimed_by == self.owner,
                        )
                        .values(claimed_until=utcnow() + self.lease)
                    )
                    await session.commit()
            except Exception as exc:  # the next renewal tries again
                log.warning("urgent reply %s: claim not renewed: %s", update_id, exc)

    async def _deliver(self, update_id: int) -> None:
        try:
            claimed = await self._claim(update_id)
        except Exception as exc:  # the database is away: the loop tries again when it is back
            log.warning("urgent reply for update %s not loaded: %s", update_id, exc)
            return
        if claimed is None:
            return
        chat_id, text = claimed
        keeper = asyncio.create_task(self._keep_claim(update_id))
        try:
            delivered, attempts, error = await self.send(chat_id, text)
        finally:
            # Not waited for: a cancellation landing in that wait would lose the outcome
            # below; a renewal after it is harmless (the row's state says what happened).
            keeper.cancel()
        state = UrgentReplyState.SENT if delivered else UrgentReplyState.UNREACHABLE
        for pause in (0.5, 1, 2, 4, 8):
            try:
                async with self.sessionmaker() as session:
                    await session.execute(
                        update(UrgentReply)
                        .where(UrgentReply.update_id == update_id)
                        .values(
                            state=state,
                            attempts=UrgentReply.attempts + attempts,
                            last_error=error,
                            sent_at=utcnow() if delivered else None,
                            claimed_until=None,
                        )
                    )
                    await session.commit()
                break
            except Exception as exc:
                log.warning("urgent reply %s: state not recorded yet: %s", update_id, exc)
                await self.sleep(pause)
        else:
            log.error("urgent reply %s sent but not recorded: it may be sent again", update_id)
        if delivered:
            failpoints.reached("replied")
            log.info("urgent reply for update %s delivered to %s", update_id, chat_id)
        else:
            log.error("urgent reply for update %s cannot reach %s: %s", update_id, chat_id, error)

    async def send(self, chat_id: int, text: str) -> tuple[bool, int, str | None]:
        """Send until Telegram takes it or says the chat cannot be reached.

        Returns (delivered, attempts, last error). A 429 waits as long as told; a 5xx, a
        dropped connection or a timeout waits 0.5 s, doubling up to `backoff_max`; 403 and 400
        (blocked, deactivated, chat not found) end it: more tries cannot help.
        """
        pause = 0.5
        for attempt in itertools.count(1):
            try:
                with critical_sends(lifeline=True):
                    await self.bot.send_message(chat_id, text)
                return True, attempt, None
            except TelegramRetryAfter as exc:
                wait = float(exc.retry_after)
                error = str(exc)
            except (TelegramForbiddenError, TelegramBadRequest, TelegramNotFound) as exc:
                return False, attempt, str(exc)[:1000]
            except Exception as exc:  # 5xx, network, timeouts: try again
                wait, pause = pause, min(pause * 2, self.backoff_max)
                error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "urgent reply to %s, try %d failed (%s); again in %.1fs",
                chat_id,
                attempt,
                error,
                wait,
            )
            await self.sleep(wait)
        raise AssertionError("unreachable")

    async def tick(self) -> None:
        """Send what is still owed (after a restart or an outage); tell topics of failures.

        Only replies no live process is sending are kicked; a failure is told by the one
        process that claims it."""
        now = utcnow()
        async with self.sessionmaker() as session:
            pending = (
                await session.scalars(
                    select(UrgentReply.update_id)
                    .where(UrgentReply.state == UrgentReplyState.PENDING, self._free(now))
                    .order_by(UrgentReply.update_id)
                    .limit(500)
                )
            ).all()
            failed = []
            if self.unreachable is not None:
                failed = list(
                    (
                        await session.execute(
                            update(UrgentReply)
                            .where(
                                UrgentReply.update_id.in_(
                                    select(UrgentReply.update_id)
                                    .where(
                                        UrgentReply.state == UrgentReplyState.UNREACHABLE,
                                        UrgentReply.noticed.is_(False),
                                        self._free(now),
                                    )
                                    .limit(100)
                                ),
                                self._free(now),
                            )
                            .values(claimed_by=self.owner, claimed_until=now + self.lease)
                            .returning(
                                UrgentReply.update_id, UrgentReply.chat_id, UrgentReply.last_error
                            )
                        )
                    ).all()
                )
            await session.commit()
        for update_id in pending:
            self.kick(update_id)
        if self.unreachable is None:
            return
        for update_id, chat_id, error in failed:
            told = False
            try:
                told = await self.unreachable(chat_id, error or "")
            finally:
                async with self.sessionmaker() as session:
                    await session.execute(
                        update(UrgentReply)
                        .where(
                            UrgentReply.update_id == update_id,
                            UrgentReply.claimed_by == self.owner,
                        )
                        .values(noticed=told, claimed_until=None)
                    )
                    await session.commit()


async def insert_ignore(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> set[int]:
    """Insert rows keyed by update_id, skipping ids already there; the ids inserted."""
    if not rows:
        return set()
    stmt = (
        repo.dialect_insert(session, table)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["update_id"])
        .returning(table.update_id)
    )
    return set((await session.scalars(stmt)).all())
