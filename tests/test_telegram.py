"""The conversational bot's request middlewares, against the emulator over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot

from bot.alerts.ratelimit import LocalRateLimiter
from bot.emulator.client import EmulatorClient
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer
from bot.telegram import (
    ForumLane,
    ForumLaneMiddleware,
    RetryAfterMiddleware,
    UrgentLimitMiddleware,
    critical_sends,
)
from tests.support.emulator import make_bot


class VirtualTime:
    """A clock that only moves when someone sleeps, so waits are counted exactly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@pytest.fixture
async def server() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(Emulator(EmulatorConfig(limits=Limits(enabled=False)))) as s:
        yield s


@pytest.fixture
async def bot(server: EmulatorServer) -> AsyncIterator[Bot]:
    instance = make_bot(server)
    yield instance
    await instance.session.close()


async def test_messages_count_against_the_global_limit_but_chat_actions_do_not(
    server: EmulatorServer, bot: Bot
) -> None:
    time = VirtualTime()
    limiter = LocalRateLimiter(
        rate=10, burst=2, urgent_reserve=0, clock=time.clock, sleep=time.sleep
    )
    bot.session.middleware(UrgentLimitMiddleware(limiter))
    async with EmulatorClient(server.base_url) as emu:
        await emu.user(7).send("hi")
    for _ in range(5):
        await bot.send_chat_action(7, "typing")
    assert time.slept == 0
    for i in range(12):
        await bot.send_message(7, f"answer {i}")
    # 12 messages at 10/s with a burst of 2: the last 10 each waited a tenth of a second.
    assert time.slept == pytest.approx(1.0, abs=0.11)


async def test_retry_after_is_obeyed_then_the_message_goes(
    server: EmulatorServer, bot: Bot
) -> None:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    bot.session.middleware(RetryAfterMiddleware(attempts=3, max_wait=30, sleep=no_wait))
    async with EmulatorClient(server.base_url) as emu:
        await emu.user(8).send("hi")
        await emu.add_fault("sendMessage", "retry_after", count=2, retry_after=4)
        sent = await bot.send_message(8, "you are not alone")
        assert sent.text == "you are not alone"
        assert waits == [4, 4]
        await emu.add_fault("sendMessage", "retry_after", count=1, retry_after=45)
        with pytest.raises(Exception, match="retry after 45"):
            await bot.send_message(8, "too late to wait for")


async def test_forum_lane_keeps_its_reserve_for_urgent_sends() -> None:
    time = VirtualTime()
    lane = ForumLane(per_minute=4, reserve=1, clock=time.clock, sleep=time.sleep)
    for _ in range(3):
        assert await lane.acquire() == 0
    assert await lane.room() == 0 and await lane.room(urgent=True) == 1
    # The reserve is the urgent sends' alone: one goes at once, the next waits its minute.
    assert await lane.acquire(urgent=True) == 0
    assert await lane.room(urgent=True) == 0
    time.now = 10.0
    assert await lane.acquire(urgent=True) == pytest.approx(50.0)  # the first slot frees at 60
    # Everything sent at 0 has left the window at 60: ordinary sends go again, up to 3.
    assert await lane.acquire() == 0 and await lane.acquire() == 0
    assert await lane.room() == 0
    assert await lane.acquire() == pytest.approx(60.0)  # until the sends of 60 leave at 120
    assert time.now == pytest.approx(120.0)


async def test_forum_lane_counts_messages_to_the_forum_only(
    server: EmulatorServer, bot: Bot
) -> None:
    time = VirtualTime()
    lane = ForumLane(per_minute=2, reserve=0, clock=time.clock, sleep=time.sleep)
    async with EmulatorClient(server.base_url) as emu:
        forum = await emu.create_forum(chat_id=-1001000000077)
        await emu.user(7).send("hi")
    bot.session.middleware(ForumLaneMiddleware(lane, forum["id"]))
    for _ in range(3):
        await bot.send_message(7, "to a citizen")  # not the forum's minute
    await bot.send_chat_action(forum["id"], "typing")  # not a message
    assert time.slept == 0 and await lane.room() == 2
    for _ in range(2):
        await bot.send_message(forum["id"], "in the forum")
    assert time.slept == 0
    with critical_sends():
        await bot.send_message(forum["id"], "urgent, but the minute is full")
    assert time.slept == pytest.approx(60.0)
