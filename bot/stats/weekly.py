"""The weekly report: last week's figures and chart posted to every communications staff
member and admin, in their language, once a week (`STATS_WEEKLY_REPORT`).

With several processes one posts it: the job's claim is taken in the database, and the next
report's time is kept there too (`Claims.due` / `Claims.schedule`), so a restart neither skips
nor repeats a week. A process that dies while posting leaves the week due: the next process
posts it again, so some staff may get that week twice (a report, not an alert: preferred to
none).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, tzinfo

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.aio import repeat
from bot.alerts.catalog import Catalog
from bot.alerts.service import staff_ids
from bot.claims import Claims
from bot.config import Settings
from bot.db import repo
from bot.db.models import utcnow
from bot.faq.service import FaqService
from bot.i18n import Locales
from bot.stats.figures import Period, collect
from bot.stats.post import post_stats

log = logging.getLogger(__name__)

CLAIM = "stats:weekly"
NEXT = "stats:weekly:next"
CHECK_SECONDS = 60.0


def next_slot(now: datetime, zone: tzinfo, weekday: int, hour: int) -> datetime:
    """The first `weekday` (0 Monday) at `hour` o'clock in `zone` after `now`."""
    local = now.astimezone(zone)
    day = local.date() + timedelta(days=(weekday - local.weekday()) % 7)
    slot = datetime.combine(day, time(hour), zone)
    return slot if slot > now else slot + timedelta(days=7)


def last_week(today: date, zone: tzinfo) -> Period:
    """The seven days before `today`."""
    return Period(today - timedelta(days=7), today - timedelta(days=1), zone)


class WeeklyReport:
    """Posts the week's figures when the week's slot has come and no other process has."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bot: Bot,
        settings: Settings,
        locales: Locales,
        faq: FaqService,
        catalog: Catalog,
        claims: Claims,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bot = bot
        self.settings = settings
        self.locales = locales
        self.faq = faq
        self.catalog = catalog
        self.claims = claims
        self.clock = clock

    def _next(self, now: datetime) -> datetime:
        stats = self.settings.stats
        return next_slot(now, self.settings.bot.zone, stats.weekly_weekday, stats.weekly_hour)

    async def run_once(self) -> int | None:
        """Post the report if it is due; how many staff got it (None: not due, or another
        process is at it). The first run only schedules the first report."""
        async with self.claims.hold(CLAIM) as held:
            if not held:
                return None
            now = self.clock()
            due = await self.claims.due(NEXT)
            if due is not None and due <= now:
                posted = await self._post(now)
            else:
                posted = None
            if due is None or due <= now:
                await self.claims.schedule(NEXT, self._next(now))
            return posted

    async def _post(self, now: datetime) -> int:
        zone = self.settings.bot.zone
        period = last_week(now.astimezone(zone).date(), zone)
        async with self.sessionmaker() as session:
            figures = await collect(session, period)
            people = await staff_ids(session, self.settings.bot.admin_ids)
            langs = {user: await self.locales.for_user(session, user) for user in people}
        posted = 0
        for user, lang in langs.items():
            try:
                await post_stats(
                    self.bot,
                    user,
                    figures,
                    locales=self.locales,
                    lang=lang,
                    catalog=self.catalog,
                    entries=self.faq.kb.entries,
                    caption_key="stats_weekly_caption",
                )
            except TelegramAPIError as exc:  # never started the bot, blocked it…
                log.warning("weekly report not delivered to %s: %s", user, exc)
                continue
            posted += 1
        async with self.sessionmaker() as session:
            repo.audit(
                session,
                "stats.weekly",
                actor_id=None,
                first=period.first.isoformat(),
                last=period.last.isoformat(),
                recipients=posted,
            )
            await session.commit()
        log.info("weekly report %s posted to %d of %d staff", period, posted, len(langs))
        return posted

    async def run(self, check_seconds: float = CHECK_SECONDS) -> None:
        """Forever: look every `check_seconds` whether the report is due."""
        await repeat(self.run_once, check_seconds, "weekly report")
