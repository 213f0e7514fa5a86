"""What every part of the case desk shares: the bot, the database, the texts, the settings,
the claims on cases and the forum's lane."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cases.cards import emergency_numbers
from bot.claims import Claims
from bot.db.models import CasePriority
from bot.i18n import Locales
from bot.telegram import ForumLane

if TYPE_CHECKING:
    from bot.config import OfficersSettings

# A relay still failing after this many tries (over the loop's backoff) is parked, not retried.
MAX_RELAY_ATTEMPTS = 10
# How long an update's handler waits for a case another process is working on before leaving
# the rest to the loop (which takes it over once a dead process's claim runs out).
CLAIM_WAIT_SECONDS = 5.0


def refused(exc: TelegramAPIError, *needles: str) -> bool:
    """Telegram's error names one of these reasons."""
    text = exc.message.lower()
    return any(n.lower() in text for n in needles)


@dataclass
class Desk:
    """The shared state; one per service, mutable so tests may move the clock or settings."""

    bot: Bot
    sessionmaker: async_sessionmaker[AsyncSession]
    locales: Locales
    settings: OfficersSettings
    # Who works on a case now, shared with every other process on the database.
    claims: Claims
    # The forum's minute of messages: ordinary cases wait for room in it (and their messages
    # pile up meanwhile, to be relayed merged); urgent ones take the reserve.
    lane: ForumLane | None
    clock: Callable[[], datetime]
    # Times on cards and merged relays are the bureau's (BOT_TIMEZONE), as officers read them.
    tz: tzinfo

    def lock(self, case_id: int) -> asyncio.Lock:
        """This process's lock of a case (taken before its claim in the database)."""
        return self.claims.lock(f"case:{case_id}")

    def hold(self, case_id: int, wait: float) -> AbstractAsyncContextManager[bool]:
        """Work on a case alone, across processes: True when held (see `Claims.hold`)."""
        return self.claims.hold(f"case:{case_id}", wait)

    def st(self, key: str, **kw: Any) -> str:
        """A text for the staff, in the bureau's default language."""
        return self.locales.t(self.locales.default, key, **kw)

    def citizen_text(self, lang: str | None, key: str, **kw: Any) -> str:
        """A citizen-facing text with the locale's emergency and crisis-line numbers filled in."""
        return self.locales.t(lang, key, **emergency_numbers(self.locales, lang), **kw)

    async def room(self, priority: CasePriority | str) -> bool:
        """Whether the forum's lane has room for one more message of a case of this priority
        now (an urgent case always has: it waits for the reserve instead)."""
        return self.lane is None or priority == CasePriority.URGENT or await self.lane.room() > 0

    @property
    def reopen_window(self) -> timedelta:
        return timedelta(hours=getattr(self.settings, "reopen_hours", 24.0))
