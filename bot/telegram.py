"""How Safewell talks to the Bot API: one place for retry rules shared by every sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
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


def _is_message(method: TelegramMethod[Any]) -> bool:
    """Whether the call puts a new message into a chat (a chat action does not)."""
    name = type(method).__name__
    return name.startswith(MESSAGE_METHODS) and name != "SendChatAction"


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
        if _is_message(method):
            await self.limiter.acquire(urgent=True, critical=_critical.get())
        return await make_request(bot, method)


class ForumLane:
    """The officers' forum's share of Telegram's group limit (about 20 messages a minute).

    A sliding window of the last minute's messages to the forum. Ordinary sends (cards and
    relays of ordinary cases, officers' commands) may fill it up to `per_minute - reserve`;
    the last `reserve` slots are kept for urgent cases' cards, pages and relays, so a crisis
    never finds the forum's minute used up by questions. In-process: with several processes
    give each its share (see the README).
    """

    WINDOW = 60.0

    def __init__(
        self,
        per_minute: int = 20,
        reserve: int = 5,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError("a forum lane needs at least one message a minute")
        self.per_minute = per_minute
        self.reserve = max(0, min(reserve, per_minute - 1))
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()

    def _limit(self, urgent: bool) -> int:
        return self.per_minute if urgent else self.per_minute - self.reserve

    def room(self, urgent: bool = False) -> int:
        """How many more messages of this kind may go to the forum right now."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - self.WINDOW:
            self._sent.popleft()
        return self._limit(urgent) - len(self._sent)

    async def acquire(self, urgent: bool = False) -> float:
        """Wait for a slot of this kind and take it; the seconds waited."""
        start = self._clock()
        while (free := self.room(urgent)) <= 0:
            # The slot that frees this kind's room is the one `-free` places after the oldest.
            await self._sleep(max(self._sent[-free] + self.WINDOW - self._clock(), 0.01))
        self._sent.append(self._clock())
        return self._clock() - start


class ForumLaneMiddleware(BaseRequestMiddleware):
    """Every message to the officers' forum takes a slot of its `ForumLane`: urgent when sent
    inside `critical_sends()`, ordinary otherwise."""

    def __init__(self, lane: ForumLane, chat_id: int) -> None:
        self.lane = lane
        self.chat_id = chat_id

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        if _is_message(method) and getattr(method, "chat_id", None) == self.chat_id:
            await self.lane.acquire(urgent=_critical.get())
        return await make_request(bot, method)
