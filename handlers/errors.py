"""What the dispatcher does with an update whose handler Telegram refused."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import TelegramForbiddenError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import citizens

log = logging.getLogger(__name__)


def make_router() -> Router:
    """A fresh router of this module's handlers (`handlers.setup_routers` orders them)."""
    router = Router(name=__name__)
    router.errors.register(chat_unreachable, ExceptionTypeFilter(TelegramForbiddenError))
    return router


async def chat_unreachable(
    event: ErrorEvent, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Telegram refused a reply with 403: the citizen blocked the bot or is gone. There is
    no one to answer, so the update counts as handled (not retried, not parked) and the
    citizen is marked unreachable; alerts skip them until they write again."""
    method = getattr(event.exception, "method", None)
    chat_id = getattr(method, "chat_id", None)
    log.info("update %s: chat %s unreachable: %s", event.update.update_id, chat_id, event.exception)
    if not isinstance(chat_id, int) or chat_id <= 0:
        return
    await citizens.mark_unreachable(sessionmaker, chat_id)
