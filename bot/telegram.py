"""How Safewell talks to the Bot API: one place for retry rules shared by every sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, ClassVar, Protocol

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.methods.base import Response, TelegramMethod, TelegramType
from aiohttp import ClientSession

from bot import metrics
from bot.config import Settings
from bot.windows import LocalWindow, Window

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
        self, n: int = 1, *, urgent: bool = False, critical: bool = False, lifeline: bool = False
    ) -> float: ...


# Set while an urgent case's card, page or relay (CRITICAL) or a crisis or emergency reply
# (LIFELINE) is being sent: they take the limiter's lines that never wait behind FAQ answers
# or ordinary relays, and a crisis reply waits behind nothing but the rate.
CRITICAL, LIFELINE = 1, 2
_critical: ContextVar[int] = ContextVar("safewell_critical_send", default=0)
_LINES = {0: "urgent", CRITICAL: "critical", LIFELINE: "lifeline"}  # metric labels


@contextlib.contextmanager
def critical_sends(lifeline: bool = False) -> Iterator[None]:
    """Sends inside this block are critical, or with `lifeline` a crisis reply's (see
    `UrgentLimitMiddleware`)."""
    token = _critical.set(LIFELINE if lifeline else CRITICAL)
    try:
        yield
    finally:
        _critical.reset(token)


class SessionClosedError(RuntimeError):
    """A Bot API call made after the application closed its bot session."""


class Session(AiohttpSession):
    """aiogram's HTTP session, counting every Bot API call (each attempt) in `bot.metrics`.

    It also keeps each method's parsed-response model alive: aiogram reads every answer
    through `Response[<returned type>]`, a pydantic generic that pydantic caches only weakly,
    so with nothing holding it, it was collected and built again, schema and all, for a later
    call (a few per cent of a FAQ answer's CPU in a surge).
    """

    _responses: ClassVar[dict[Any, Any]] = {}
    _shut = False

    async def close(self) -> None:
        """Close for good: a call after this is refused instead of opening a new connection
        pool that nothing would close (aiogram reopens one on demand)."""
        if self._session is not None:  # not aiogram's own reset before the first session
            self._shut = True
        await super().close()

    async def create_session(self) -> ClientSession:
        if self._shut:
            log.warning("a Bot API call after the bot's session was closed", stack_info=True)
            raise SessionClosedError("the bot's HTTP session is closed (shutting down)")
        return await super().create_session()

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 (aiogram's signature)
    ) -> TelegramType:
        returning = method.__returning__
        if returning not in self._responses:
            self._responses[returning] = Response[returning]  # type: ignore[valid-type]
        name = type(method).__name__
        try:
            result = await super().make_request(bot, method, timeout)
        except TelegramAPIError as exc:
            metrics.telegram_call(name, exc)
            raise
        metrics.telegram_call(name)
        return result


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
            level = _critical.get()
            waited = await self.limiter.acquire(
                urgent=True, critical=level == CRITICAL, lifeline=level == LIFELINE
            )
            metrics.LIMITER_WAIT.labels(_LINES[level]).observe(waited)
        return await make_request(bot, method)


class ForumLane:
    """The officers' forum's share of Telegram's group limit (about 20 messages a minute).

    A sliding window of the last minute's messages to the forum. Ordinary sends (cards and
    relays of ordinary cases, officers' commands) may fill it up to `per_minute - reserve`;
    the last `reserve` slots are kept for urgent cases' cards, pages and relays, so a crisis
    never finds the forum's minute used up by questions. The window is this process's, or
    shared in Redis by every process (`bot.windows`).
    """

    WINDOW = 60.0
    KEY = "forum"

    def __init__(
        self,
        per_minute: int = 20,
        reserve: int = 5,
        *,
        window: Window | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError("a forum lane needs at least one message a minute")
        self.per_minute = per_minute
        self.reserve = max(0, min(reserve, per_minute - 1))
        self.window = window or LocalWindow(self.WINDOW, clock)
        self._clock = clock
        self._sleep = sleep

    def _limit(self, urgent: bool) -> int:
        return self.per_minute if urgent else self.per_minute - self.reserve

    async def room(self, urgent: bool = False) -> int:
        """How many more messages of this kind may go to the forum right now."""
        return self._limit(urgent) - await self.window.count(self.KEY)

    async def acquire(self, urgent: bool = False) -> float:
        """Wait for a slot of this kind and take it; the seconds waited."""
        start = self._clock()
        while (wait := await self.window.take(self.KEY, self._limit(urgent))) > 0:
            await self._sleep(wait)
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
            await self.lane.acquire(urgent=bool(_critical.get()))
        return await make_request(bot, method)


def build_bot(settings: Settings, *, retry_after: bool = True) -> Bot:
    """A Bot with HTML parse mode, pointed at Telegram or at BOT_API_BASE_URL.

    `retry_after=False` gives a bot for the broadcast engine, which handles 429 itself.
    """
    token = settings.require_token().get_secret_value()
    api = (
        TelegramAPIServer.from_base(settings.bot.api_base_url)
        if settings.bot.api_base_url
        else None
    )
    session = Session(api=api) if api else Session()
    if retry_after:
        session.middleware(RetryAfterMiddleware())
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
