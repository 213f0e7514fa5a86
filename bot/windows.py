"""Sliding windows of recent events, counted in this process or in Redis for several.

The officers' forum takes 20 messages a minute from the bot whatever number of processes send
them, and a citizen who floods is flooding the bot, not one process of it: with `REDIS_URL` set
every process counts in the same Redis keys (sorted sets of event times, changed by one Lua
script per call, so two processes never both take the last slot). If Redis fails the window
falls back to counting in this process (its share is then not shared, never lost) and tries
Redis again a few seconds later.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


class Window(Protocol):
    """Events in the last `seconds`, per key."""

    seconds: float

    async def take(self, key: str, limit: int) -> float:
        """Record an event if fewer than `limit` are in the window and return 0; else record
        nothing and return the seconds until one leaves the window."""
        ...

    async def count(self, key: str, record: bool = False) -> int:
        """The events in the window (after recording one, with `record`)."""
        ...


class LocalWindow:
    """A window counted in this process."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.seconds:
            events.popleft()
        if len(self._events) > 50_000:  # many keys (a flood of citizens): forget quiet ones
            self._events = {
                k: v for k, v in self._events.items() if v and v[-1] > now - self.seconds
            }
            self._events[key] = events
        return events

    async def take(self, key: str, limit: int) -> float:
        events = self._recent(key)
        if len(events) < limit:
            events.append(self._clock())
            return 0.0
        # The slot that frees room for one more is `limit` places before the newest.
        return max(events[-limit] + self.seconds - self._clock(), 0.01)

    async def count(self, key: str, record: bool = False) -> int:
        events = self._recent(key)
        if record:
            events.append(self._clock())
        return len(events)


# KEYS[1] the sorted set; ARGV: window ms, limit, member. Times from Redis's own clock, so
# processes on different machines agree.
_TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[2])
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local freeing = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return math.max(tonumber(freeing[2]) + window - now, 10)
"""

# KEYS[1] the sorted set; ARGV: window ms, member ("" records nothing).
_COUNT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], window)
end
return redis.call('ZCARD', KEYS[1])
"""


class RedisWindow:
    """A window counted in Redis, shared by every process using the same `prefix`."""

    def __init__(
        self,
        redis: Redis,
        seconds: float,
        prefix: str,
        *,
        retry_after_failure: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.prefix = prefix
        self._redis = redis
        self._take = redis.register_script(_TAKE_LUA)
        self._count = redis.register_script(_COUNT_LUA)
        self._fallback = LocalWindow(seconds, clock)
        self._clock = clock
        self._retry_after_failure = retry_after_failure
        self._retry_redis_at = 0.0

    def _usable(self) -> bool:
        return self._clock() >= self._retry_redis_at

    def _failed(self, exc: Exception) -> None:
        if self._retry_redis_at <= self._clock():
            log.warning("Redis window %s: %s; counting in this process for now", self.prefix, exc)
        self._retry_redis_at = self._clock() + self._retry_after_failure

    @staticmethod
    def _member() -> str:
        return uuid.uuid4().hex  # one event, unique even when two share a millisecond

    async def take(self, key: str, limit: int) -> float:
        if self._usable():
            try:
                ms = await self._take(
                    keys=[f"{self.prefix}:{key}"],
                    args=[int(self.seconds * 1000), limit, self._member()],
                )
                return float(ms) / 1000
            except (RedisError, OSError) as exc:
                self._failed(exc)
        return await self._fallback.take(key, limit)

    async def count(self, key: str, record: bool = False) -> int:
        if self._usable():
            try:
                return int(
                    await self._count(
                        keys=[f"{self.prefix}:{key}"],
                        args=[int(self.seconds * 1000), self._member() if record else ""],
                    )
                )
            except (RedisError, OSError) as exc:
                self._failed(exc)
        return await self._fallback.count(key, record)


def window(redis: Redis | None, seconds: float, prefix: str) -> Window:
    """A window shared in Redis when there is one, else this process's."""
    return RedisWindow(redis, seconds, prefix) if redis is not None else LocalWindow(seconds)
