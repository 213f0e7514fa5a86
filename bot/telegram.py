"""How Safewell talks to the Bot API: one place for retry rules shared by every sender."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods.base import TelegramMethod, TelegramType

log = logging.getLogger(__name__)


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Obeys Telegram's 429 `retry_after` for conversational traffic, then tries again.

    Telegram's limits are unpublished and flexible, so the bot never guesses: it waits exactly
    as long as told. Waits longer than `max_wait` are raised to the caller instead (a reply
    that late is better handled by the caller's own retry, e.g. the case delivery loop).
    Broadcasts use their own bot session without this middleware: the delivery engine pauses
    every sender at once instead of retrying one message.
    """

    def __init__(self, attempts: int = 3, max_wait: float = 30.0) -> None:
        self.attempts = attempts
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == self.attempts or exc.retry_after > self.max_wait:
                    raise
                log.warning(
                    "%s: flood limit, retrying in %ss", type(method).__name__, exc.retry_after
                )
                await asyncio.sleep(exc.retry_after)
        raise AssertionError("unreachable")
