"""Puts the alert services into a running application: catalog, limiter, broadcaster, progress."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts.callbacks import AlertActCb
from bot.alerts.catalog import Catalog
from bot.alerts.engine import Broadcaster, EngineConfig, Progress
from bot.alerts.ratelimit import RateLimiter, RedisRateLimiter, build_rate_limiter
from bot.db.models import Alert, AlertKind
from bot.i18n import Locales, format_duration
from bot.telegram import UrgentLimitMiddleware, build_bot

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)
BAR_WIDTH = 16


def alert_subject(alert: Alert, locales: Locales, lang: str) -> str:
    """What a broadcast is, for staff: "Alert #1", "Cancellation #3 of alert #1"."""
    if alert.kind == AlertKind.ALERT or alert.references_id is None:
        return locales.t(lang, "alert_subject", id=alert.id)
    key = "alert_subject_cancel" if alert.kind == AlertKind.CANCEL else "alert_subject_update"
    return locales.t(lang, key, id=alert.id, original=alert.references_id)


def format_progress(progress: Progress, locales: Locales, lang: str, alert: Alert) -> str:
    """The staff member's live progress message (or the final report when done), naming the
    broadcast by what it is (a cancellation names the alert it cancels, not its own id)."""
    c = progress.counts
    values: dict[str, Any] = {
        "subject": alert_subject(alert, locales, lang),
        "sent": c.get("sent", 0),
        "blocked": c.get("blocked", 0),
        "failed": c.get("failed", 0),
        "total": progress.total,
    }
    if progress.done:
        return locales.t(lang, "progress_final", **values)
    share = progress.finished / progress.total if progress.total else 1.0
    filled = int(share * BAR_WIDTH)
    return locales.t(
        lang,
        "progress",
        status=progress.status,
        bar="█" * filled + "░" * (BAR_WIDTH - filled),
        percent=int(share * 100),
        rate=f"{progress.rate:.1f}",
        eta=format_duration(progress.eta_seconds),
        **values,
    )


def progress_sink(
    bot: Bot, locales: Locales, sessionmaker: async_sessionmaker[AsyncSession]
) -> Any:
    """Edits the staff member's progress message (in their language); the final one gets
    Update/Cancel buttons."""

    async def sink(alert: Alert, progress: Progress) -> None:
        if alert.progress_chat_id is None or alert.progress_message_id is None:
            return
        async with sessionmaker() as session:
            lang = await locales.for_user(session, alert.progress_chat_id)
        markup = None
        if progress.done and alert.kind == AlertKind.ALERT:
            kb = InlineKeyboardBuilder()
            kb.button(
                text=locales.t(lang, "act_update"),
                callback_data=AlertActCb(action="update", alert_id=alert.id),
            )
            kb.button(
                text=locales.t(lang, "act_cancel"),
                callback_data=AlertActCb(action="cancel", alert_id=alert.id),
            )
            markup = kb.as_markup()
        # "message is not modified" and the like must never stop a broadcast.
        with contextlib.suppress(TelegramAPIError):
            await bot.edit_message_text(
                text=format_progress(progress, locales, lang, alert),
                chat_id=alert.progress_chat_id,
                message_id=alert.progress_message_id,
                reply_markup=markup,
            )

    return sink


def build_limiter(settings: Settings) -> RateLimiter:
    """The global send limiter: Redis-shared when REDIS_URL is set."""
    redis = None
    if settings.redis.url:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis.url)
    rate = settings.alerts.rate
    return build_rate_limiter(redis, rate)


@dataclass
class AlertServices:
    """The alert services of a running bot, and what to close when it stops."""

    catalog: Catalog
    limiter: RateLimiter
    broadcaster: Broadcaster
    closers: list[Callable[[], Awaitable[None]]]


def build_alerts(
    settings: Settings,
    bot: Bot,
    locales: Locales,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AlertServices:
    """Create the alert services; `bot`'s conversational traffic takes the limiter's urgent
    path. The broadcast worker is `broadcaster.serve`."""
    catalog = Catalog.load(settings.faq.knowledge_dir)
    limiter = build_limiter(settings)
    closers: list[Callable[[], Awaitable[None]]] = []
    if isinstance(limiter, RedisRateLimiter):
        closers.append(limiter.close)
    default = settings.bot.default_language
    config = EngineConfig(
        concurrency=settings.alerts.concurrency, paid_broadcast=settings.alerts.paid_broadcast
    )
    # Broadcasts get their own session without the retry-after middleware: the engine pauses
    # every sender on a 429 instead of one request sleeping while the others carry on.
    broadcast_bot = build_bot(settings, retry_after=False)
    closers.append(broadcast_bot.session.close)
    # Conversational traffic (answers, crisis replies, officer relays) takes the limiter's
    # urgent path: counted in the one global rate, never queued behind a broadcast.
    bot.session.middleware(UrgentLimitMiddleware(limiter))
    broadcaster = Broadcaster(
        sessionmaker,
        broadcast_bot,
        limiter,
        catalog,
        default,
        config,
        on_progress=progress_sink(bot, locales, sessionmaker),
        tz=settings.bot.zone,
    )
    return AlertServices(catalog, limiter, broadcaster, closers)
