"""Crisis and emergency replies owed per update: recorded once, sent at once, retried until
Telegram takes them or the citizen cannot be reached (then the case topic is told)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
)
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import failpoints
from bot.db import repo
from bot.db.models import UrgentReply, UrgentReplyState, utcnow
from bot.telegram import critical_sends

log = logging.getLogger(__name__)

# How long the path that owes a reply waits for it to be sent before going on (Telegram slow
# or away: the reply keeps trying in the background).
SEND_WAIT_SECONDS = 5.0

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

    async def _deliver(self, update_id: int) -> None:
        try:
            async with self.sessionmaker() as session:
                row = await session.get(UrgentReply, update_id)
                if row is None or row.state != UrgentReplyState.PENDING:
                    return
                chat_id, text = row.chat_id, row.text
        except Exception as exc:  # the database is away: the loop tries again when it is back
            log.warning("urgent reply for update %s not loaded: %s", update_id, exc)
            return
        delivered, attempts, error = await self.send(chat_id, text)
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
                with critical_sends():
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
        """Send what is still owed (after a restart or an outage); tell topics of failures."""
        async with self.sessionmaker() as session:
            pending = (
                await session.scalars(
                    select(UrgentReply.update_id)
                    .where(UrgentReply.state == UrgentReplyState.PENDING)
                    .order_by(UrgentReply.update_id)
                    .limit(500)
                )
            ).all()
            failed = (
                await session.execute(
                    select(UrgentReply.update_id, UrgentReply.chat_id, UrgentReply.last_error)
                    .where(
                        UrgentReply.state == UrgentReplyState.UNREACHABLE,
                        UrgentReply.noticed.is_(False),
                    )
                    .limit(100)
                )
            ).all()
        for update_id in pending:
            self.kick(update_id)
        if self.unreachable is None:
            return
        for update_id, chat_id, error in failed:
            if await self.unreachable(chat_id, error or ""):
                async with self.sessionmaker() as session:
                    await session.execute(
                        update(UrgentReply)
                        .where(UrgentReply.update_id == update_id)
                        .values(noticed=True)
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
