"""/stats for communications staff and admins: a period's figures and a chart, in their
language. Anyone else's /stats is refused by the FAQ router's command check (and audited)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.alerts.catalog import Catalog
from bot.config import Settings
from bot.db.models import utcnow
from bot.faq.service import FaqService
from bot.i18n import Locales
from bot.stats.figures import PeriodError, parse_period
from bot.stats.post import post_stats
from bot.stats.view import view_figures
from handlers.filters import PRIVATE, alert_staff


def make_router() -> Router:
    """A new router with this module's handlers, in the order they are tried."""
    router = Router(name=__name__)
    router.message.filter(PRIVATE, alert_staff)
    router.message.register(stats, Command("stats"))
    return router


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
    user_id = message.from_user.id if message.from_user else None
    # The connection goes back before Telegram and the chart.
    figures = await view_figures(session, period, actor_id=user_id)
    await post_stats(
        bot,
        message.chat.id,
        figures,
        locales=locales,
        lang=lang,
        catalog=catalog,
        entries=faq.kb.entries,
    )
