"""How Safewell talks to the Bot API: one place for retry rules shared by every sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, Protocol

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods.base import TelegramMethod, TelegramType

log = logging.getLogger(__name__)

# Methods that put a new message into a chat: what Telegram's flood limits count.
MESSAGE_METHODS = ("Send", "Copy", "Forward")


class UrgentLimiter(Protocol):
    """The part of `bot.alerts.ratelimit.RateLimiter` this module needs."""

    async def acquire(
        self, n: int = 1, *, urgent: bool = False, critical: bool = False
    ) -> float: ...


# Set while a crisis or emergency reply is being sent: its sends take the limiter's critical
# line, which waits for the rate alone, never behind FAQ answers or relays.
_critical: ContextVar[bool] = ContextVar("safewell_critical_send", default=False)


@contextlib.contextmanager
def critical_sends() -> Iterator[None]:
    """Sends inside this block are critical (see `UrgentLimitMiddleware`)."""
    token = _critical.set(True)
    try:
        yield
    finally:
        _critical.reset(token)


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Obeys Telegram's 429 `retry_after` for conversational traffic, then tries again.

    Telegram's limits are unpublished and flexible, so the bot never guesses: it waits exactly
    as long as told. Waits longer than `max_wait` are raised to the caller instead (a reply
    that late is better handled by the caller's own retry, e.g. the case delivery loop).
    Broadcasts use their own bot session without this middleware: the delivery engine pauses
    every sender at once instead of retrying one message.
    """

    def __init__(
        self,
        attempts: int = 3,
        max_wait: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.attempts = attempts
        self.max_wait = max_wait
        self.sleep = sleep

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
                await self.sleep(exc.retry_after)
        raise AssertionError("unreachable")


class UrgentLimitMiddleware(BaseRequestMiddleware):
    """Counts every message the conversational bot sends against the global send limit.

    Uses the limiter's urgent path, which never waits behind broadcast senders, so a crisis
    reply or an officer's relay goes out at once while a broadcast runs at the remaining rate.
    """

    def __init__(self, limiter: UrgentLimiter) -> None:
        self.limiter = limiter

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        name = type(method).__name__
        if name.startswith(MESSAGE_METHODS) and name != "SendChatAction":
            await self.limiter.acquire(urgent=True, critical=_critical.get())
        return await make_request(bot, method)
