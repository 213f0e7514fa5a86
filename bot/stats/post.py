"""A period's figures posted to one chat: the text, then the chart (/stats and the weekly
report both post this way)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiogram import Bot
from aiogram.types import BufferedInputFile

from bot.alerts.catalog import Catalog
from bot.faq.models import FaqEntry
from bot.i18n import Locales
from bot.stats.figures import Figures
from bot.stats.text import summary


async def post_stats(
    bot: Bot,
    chat_id: int,
    figures: Figures,
    *,
    locales: Locales,
    lang: str,
    catalog: Catalog,
    entries: Mapping[str, FaqEntry],
    caption_key: str = "stats_chart_caption",
) -> None:
    """Send the figures as text in `lang`, then messages per day and the FAQ's outcome shares
    as one image (drawn in a worker thread: it is CPU work)."""
    await bot.send_message(chat_id, summary(figures, locales, lang, catalog, entries))
    from bot.stats import charts  # matplotlib: imported on first use, not at start

    chart_lang = charts.chart_language(lang, locales.default)
    png = await asyncio.to_thread(charts.overview, figures, lambda key: locales.t(chart_lang, key))
    await bot.send_photo(
        chat_id,
        BufferedInputFile(png, filename="stats.png"),
        caption=locales.t(lang, caption_key, period=str(figures.period)),
    )
