"""/stats for communications staff and admins: a period's figures and a chart, in their
language. Anyone else's /stats is refused by the FAQ router's command check (and audited)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.alerts.catalog import Catalog
from bot.config import Settings
from bot.db import repo
from bot.db.models import utcnow
from bot.db.session import end_reading
from bot.faq.service import FaqService
from bot.i18n import Locales
from bot.stats.figures import PeriodError, collect, parse_period
from bot.stats.post import post_stats
from handlers.filters import PRIVATE, alert_staff

router = Router(name=__name__)
router.message.filter(PRIVATE, alert_staff)


@router.message(Command("stats"))
async def stats(
    message: Message,
    command: CommandObject,
    bot: Bot,
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    faq: FaqService,
    locales: Locales,
    lang: str,
) -> None:
    """/stats [period]: the figures as text, then messages per day and outcome shares."""
    zone = settings.bot.zone
    try:
        period = parse_period(command.args or "", utcnow().astimezone(zone).date(), zone)
    except PeriodError as exc:
        await message.answer(locales.t(lang, "stats_period_error", error=str(exc)))
        return
    figures = await collect(session, period)
    user_id = message.from_user.id if message.from_user else None
    repo.audit(
        session,
        "stats.view",
        actor_id=user_id,
        first=period.first.isoformat(),
        last=period.last.isoformat(),
    )
    # The connection goes back before Telegram and the chart; the audit row is written with
    # the update's last commit.
    session.add_all(await end_reading(session))
    await post_stats(
        bot,
        message.chat.id,
        figures,
        locales=locales,
        lang=lang,
        catalog=catalog,
        entries=faq.kb.entries,
    )
