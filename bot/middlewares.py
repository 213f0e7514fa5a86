"""Outer middlewares: in-flight tracking, one DB session per update, citizen, flood, bans.

Order matters and is set in `bot.app.build`: in-flight tracking first (so shutdown waits for
everything), then the session (so everything below shares one unit of work, aiogram's FSM state
included), then who is writing, then flood control and bans.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject, Update, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import repo
from bot.db.models import CasePriority, CaseStatus, Role
from bot.db.session import detachable, end_reading, wrote
from bot.i18n import Locales
from bot.intake.handled import GroupCommit, InboxDone
from bot.windows import Window

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class InflightMiddleware(BaseMiddleware):
    """Tracks updates being handled so a shutdown can let them finish."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            return await handler(event, data)
        finally:
            if task is not None:
                self._tasks.discard(task)

    @property
    def count(self) -> int:
        return len(self._tasks)

    async def wait(self, grace: float) -> None:
        """Wait up to `grace` seconds for in-flight updates to finish."""
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current and not t.done()]
        if pending:
            log.info("waiting for %d in-flight update(s)", len(pending))
            await asyncio.wait(pending, timeout=grace)


class DbSessionMiddleware(BaseMiddleware):
    """One session per update; commits what is left at the end, rolls back on failure.

    Redeliveries are recognised before this, by the intake (`bot.intake`), which records the
    update as handled only after the handler returned. The citizen's bookkeeping is committed
    by `IdentityMiddleware` before any handler talks to Telegram, and handlers commit before
    their own network calls: SQLite has one writer, and a write transaction held across an
    HTTP round trip would queue every other citizen behind it.

    An update from the intake (`inbox_done`) leaves the inbox in the same commit as the
    handler's last writes. When those are new rows only (the usual question), the reads end
    here and the rows go to the `GroupCommit`, written with other updates' in one transaction.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.group = GroupCommit(sessionmaker)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.sessionmaker() as session:
            data["session"] = session
            done: InboxDone | None = data.get("inbox_done")
            try:
                result = await handler(event, data)
                if done is not None and not wrote(session) and all(map(detachable, session.new)):
                    rows = await end_reading(session)
                    await self.group.end(done.update_id, rows)
                    done.marked = True
                    return result
                if done is not None:
                    # The update leaves the inbox in the same commit as the handler's last
                    # writes: one transaction fewer, and effects and "handled" agree.
                    await done.mark(session)
                await session.commit()
                if done is not None:
                    done.marked = True
            except BaseException:
                await session.rollback()
                raise
            return result


class IdentityMiddleware(BaseMiddleware):
    """Puts `roles`, `citizen` (private chats) and `lang` into handler data."""

    def __init__(self, locales: Locales, admin_ids: list[int]) -> None:
        self.locales = locales
        self.admin_ids = set(admin_ids)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        session: AsyncSession = data["session"]
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        data["citizen"] = None
        data["roles"] = set()
        data["lang"] = self.locales.default
        if user is None or user.is_bot:
            return await handler(event, data)
        # The citizen row comes along and, held here, saves `upsert_citizen` its own read.
        roles, _known = await repo.identify(session, user.id)
        if user.id in self.admin_ids:
            roles.add(Role.ADMIN)
        data["roles"] = roles
        if chat is None or chat.type == "private":
            citizen = await repo.upsert_citizen(
                session,
                user.id,
                first_name=user.first_name,
                last_name=user.last_name,
                username=user.username,
                telegram_language=user.language_code,
            )
            data["citizen"] = citizen
            data["lang"] = self.locales.for_citizen(citizen)
        else:
            data["lang"] = self.locales.resolve(user.language_code)
        if wrote(session):
            # Commit the bookkeeping before any handler waits on Telegram (DbSessionMiddleware).
            await session.commit()
        return await handler(event, data)


class FloodMiddleware(BaseMiddleware):
    """Marks a citizen who writes too fast as `throttled` and tells them once per window.

    Throttling only pauses automatic FAQ answers: triage and the relay to officers still see
    every message, so a crisis typed in a hurry is never dropped. The counts are this
    process's, or shared in Redis by every process (`bot.windows`).
    """

    def __init__(self, locales: Locales, limit: int, counts: Window) -> None:
        self.locales = locales
        self.limit = limit
        self.counts = counts

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        data["throttled"] = False
        citizen = data.get("citizen")
        update = event if isinstance(event, Update) else None
        if citizen is None or update is None or update.message is None:
            return await handler(event, data)
        if await self.counts.count(f"sent:{citizen.id}", record=True) > self.limit:
            data["throttled"] = True
            if await self.counts.take(f"told:{citizen.id}", 1) == 0:  # once per window
                await update.message.answer(self.locales.t(data["lang"], "flood"))
        return await handler(event, data)


class BanMiddleware(BaseMiddleware):
    """A banned citizen gets one polite notice, then silence, except in danger.

    A ban stops abuse, never help: a message that triages as crisis or emergency still goes
    through (the safe-messaging reply, an urgent case), and so does everything the citizen
    writes while such an urgent case is open, so the officers handling it hear them.
    """

    def __init__(self, locales: Locales) -> None:
        self.locales = locales

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        citizen = data.get("citizen")
        if citizen is None or not citizen.banned:
            return await handler(event, data)
        if isinstance(event, Update) and await self._in_danger(event, data):
            return await handler(event, data)
        if not citizen.ban_notified and isinstance(event, Update) and event.message is not None:
            citizen.ban_notified = True
            await event.message.answer(self.locales.t(data["lang"], "banned"))
        if isinstance(event, Update) and event.callback_query is not None:
            await event.callback_query.answer()
        return None

    async def _in_danger(self, event: Update, data: dict[str, Any]) -> bool:
        message = event.message
        if message is None:
            return False
        citizen = data["citizen"]
        text = message.text or message.caption or ""
        triage = data.get("triage")
        if triage is not None and text and not text.startswith("/"):
            lang = self.locales.for_citizen(citizen, text)
            level = (await triage.aclassify(text, lang)).level
            if level in ("crisis", "emergency"):
                log.warning("banned citizen %s: %s message let through", citizen.id, level)
                return True
        handoff, session = data.get("handoff"), data.get("session")
        if handoff is None or session is None:
            return False
        case = await handoff.active_case(session, citizen.id)
        return bool(
            case is not None
            and case.status != CaseStatus.CLOSED
            and case.priority == CasePriority.URGENT
        )
