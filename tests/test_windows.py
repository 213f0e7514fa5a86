"""Sliding windows: in this process, and in the real Redis shared by several processes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.telegram import ForumLane
from bot.windows import LocalWindow, RedisWindow, window
from tests.support.processes import free_port, redis_answers

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    if not redis_answers():
        pytest.fail("Redis does not answer on 127.0.0.1:6379 (.ci/run starts it)")
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_a_local_window_forgets_what_left_it() -> None:
    clock = Clock()
    counts = LocalWindow(60, clock)
    assert await counts.take("k", 2) == 0
    clock.now += 5
    assert await counts.take("k", 2) == 0
    clock.now += 5
    assert await counts.take("k", 2) == pytest.approx(50)  # the first leaves at 60
    assert await counts.count("k") == 2 and await counts.count("other") == 0
    clock.now += 50
    assert await counts.count("k", record=True) == 2  # the first left, one more recorded
    assert await counts.take("k", 2) > 0


async def test_two_processes_share_one_redis_window(redis: Redis) -> None:
    prefix = f"safewell:test:{uuid.uuid4().hex}"
    first, second = RedisWindow(redis, 60, prefix), RedisWindow(redis, 60, prefix)
    taken = [await w.take("forum", 3) for w in (first, second, first, second)]
    assert taken[:3] == [0, 0, 0] and 59 < taken[3] <= 60
    assert await first.count("forum") == await second.count("forum") == 3
    assert await first.count("citizen", record=True) == 1
    assert await second.count("citizen", record=True) == 2


async def test_a_short_redis_window_empties(redis: Redis) -> None:
    prefix = f"safewell:test:{uuid.uuid4().hex}"
    counts = RedisWindow(redis, 0.2, prefix)
    assert await counts.take("k", 1) == 0
    assert 0 < await counts.take("k", 1) <= 0.2
    await asyncio.sleep(0.25)
    assert await counts.take("k", 1) == 0


async def test_without_redis_the_window_counts_here() -> None:
    port = free_port()  # nothing listens on it
    away = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2)
    try:
        counts = window(away, 60, "safewell:test:away")
        assert isinstance(counts, RedisWindow)
        assert [await counts.take("k", 1), await counts.count("k")] == [0, 1]
        assert await counts.take("k", 1) > 0  # still limited, by this process's count
    finally:
        await away.aclose()


async def test_two_processes_forum_lanes_share_the_minute(redis: Redis) -> None:
    prefix = f"safewell:test:{uuid.uuid4().hex}"
    lanes = [
        ForumLane(per_minute=4, reserve=1, window=RedisWindow(redis, 60, prefix)) for _ in range(2)
    ]
    for lane in (*lanes, lanes[0]):
        assert await lane.acquire() < 0.5  # three ordinary messages, from either process
    assert await lanes[1].room() == 0 and await lanes[0].room(urgent=True) == 1
    assert await lanes[1].acquire(urgent=True) < 0.5  # the reserve, taken by the other one
    assert await lanes[0].room(urgent=True) == 0
