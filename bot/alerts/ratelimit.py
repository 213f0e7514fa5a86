"""The global send rate limiter shared by broadcasts and urgent traffic.

Telegram allows a bot about 30 messages per second overall and answers bursts beyond that with
``429 Too Many Requests`` plus ``retry_after``; the exact limits are unpublished, so we stay
under a configurable ``rate`` (default 25/s) and obey every ``retry_after``.

Algorithm: GCRA (generic cell rate algorithm), the arithmetic form of a token bucket. Each
bucket keeps one number, the theoretical arrival time ``tat``. A send of ``n`` messages at time
``now`` conforms when ``max(tat, now) + (n - 1) * interval - tolerance <= now``; it then moves
``tat`` to ``max(tat, now) + n * interval``. ``interval = 1 / rate`` and
``tolerance = (burst - 1) * interval``, so an idle limiter lets ``burst`` sends go at once and
then spaces them ``interval`` apart.

Priority, so that urgent traffic (crisis replies, officer relays) never waits behind a
broadcast:

* Every send passes the **global** bucket at ``rate``.
* Broadcast sends (``acquire()``) also pass a **broadcast** bucket at
  ``rate * broadcast_share`` (default 80 %), which leaves steady headroom for urgent sends.
* Broadcast sends see the global bucket with ``urgent_reserve`` fewer burst slots than urgent
  sends do, so even when broadcasts fill their share the last slots stay free for urgent
  sends, and an urgent sender waiting for the same slot always becomes eligible first.
* Urgent sends (``acquire(urgent=True)``) queue only behind other urgent sends, never behind
  the (possibly long) line of broadcast workers.

A ``429`` means Telegram is already unhappy with *all* our traffic, so ``penalize(retry_after)``
pauses every sender sharing the limiter (urgent ones too) until it expires, and then resumes at
the steady rate without a burst. ``pause_for(seconds)`` is the plain pause (burst kept), e.g.
for an operator holding deliveries.

Two implementations share this behaviour: ``LocalRateLimiter`` for one process (asyncio,
injectable clock and sleep for tests) and ``RedisRateLimiter`` for several bot processes, where
one Lua script applies GCRA atomically on Redis with Redis's own clock and the pause is a key
with a TTL. Both queue their own waiters FIFO per priority inside a process. When Redis is
unreachable or slow, ``RedisRateLimiter`` falls back to an in-process limiter with the same
settings (and logs it) rather than failing: a crisis reply must never be lost because Redis
is down, and Telegram's own 429s still slow us down through ``penalize``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

__all__ = [
    "LocalRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "build_rate_limiter",
]


@runtime_checkable
class RateLimiter(Protocol):
    """What senders need from a rate limiter, whichever backend implements it."""

    @property
    def rate(self) -> float:
        """Global messages per second for all traffic together."""
        ...

    @property
    def broadcast_rate(self) -> float:
        """Messages per second that broadcast traffic may use at most."""
        ...

    async def acquire(
        self, n: int = 1, *, urgent: bool = False, critical: bool = False, lifeline: bool = False
    ) -> float:
        """Wait until ``n`` messages may be sent; return the seconds waited.

        ``critical`` (an urgent case's card, page or relay) is urgent and queues behind no
        ordinary send: it waits only for the rate and for ``lifeline`` sends (a crisis or
        emergency reply), which wait for the rate alone.
        """
        ...

    async def pause_for(self, seconds: float) -> None:
        """Stop every sender sharing this limiter for ``seconds`` (never shortens a pause)."""
        ...

    async def penalize(self, retry_after: float) -> None:
        """Obey a 429: pause everyone for ``retry_after`` s, then resume without a burst."""
        ...

    async def paused_remaining(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        ...


@dataclass(frozen=True)
class _Plan:
    """The numbers both backends derive from the configuration."""

    rate: float
    burst: int
    broadcast_share: float
    urgent_reserve: int

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number, got {self.rate}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst}")
        if not 0 < self.broadcast_share <= 1:
            raise ValueError(f"broadcast_share must be in (0, 1], got {self.broadcast_share}")
        if not 0 <= self.urgent_reserve < self.burst:
            raise ValueError(
                f"urgent_reserve must be in [0, burst), got {self.urgent_reserve} "
                f"with burst {self.burst}"
            )

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    @property
    def broadcast_burst(self) -> int:
        return self.burst - self.urgent_reserve

    @property
    def broadcast_interval(self) -> float:
        return 1.0 / (self.rate * self.broadcast_share)

    @property
    def urgent_tolerance(self) -> float:
        """Global-bucket tolerance seen by urgent sends."""
        return (self.burst - 1) * self.interval

    @property
    def broadcast_global_tolerance(self) -> float:
        """Global-bucket tolerance seen by broadcast sends (the urgent reserve held back)."""
        return (self.broadcast_burst - 1) * self.interval

    @property
    def broadcast_tolerance(self) -> float:
        return (self.broadcast_burst - 1) * self.broadcast_interval

    def check_n(self, n: int, urgent: bool) -> None:
        limit = self.burst if urgent else self.broadcast_burst
        if not 1 <= n <= limit:
            kind = "urgent" if urgent else "broadcast"
            raise ValueError(f"a {kind} acquire takes 1..{limit} messages at once, got {n}")


def _conform_at(tat: float, now: float, n: int, interval: float, tolerance: float) -> float:
    """Earliest time at which n sends conform to one GCRA bucket."""
    return max(tat, now) + (n - 1) * interval - tolerance


class _Limiter:
    """What both backends keep alike: the plan, the rates it gives, and this process's FIFO
    lines of waiting senders, one per priority."""

    def __init__(self, plan: _Plan) -> None:
        self._plan = plan
        self._urgent_lock = asyncio.Lock()
        self._broadcast_lock = asyncio.Lock()
        self._critical_lock = asyncio.Lock()
        self._lifeline_lock = asyncio.Lock()
        self._lifeline_waiting = 0

    @property
    def rate(self) -> float:
        """Global messages per second for all traffic together."""
        return self._plan.rate

    @property
    def broadcast_rate(self) -> float:
        """Messages per second that broadcast traffic may use at most."""
        return self._plan.rate * self._plan.broadcast_share

    def _line(self, urgent: bool, critical: bool, lifeline: bool) -> asyncio.Lock:
        """The FIFO line a sender waits in: one per priority, so no priority waits behind a
        lower one; a crisis reply (lifeline) waits behind nobody, an urgent case's traffic
        (critical) behind crisis replies only."""
        if lifeline:
            return self._lifeline_lock
        if critical:
            return self._critical_lock
        return self._urgent_lock if urgent else self._broadcast_lock


class LocalRateLimiter(_Limiter):
    """In-process GCRA limiter with broadcast/urgent priority and a shared pause."""

    def __init__(
        self,
        rate: float = 25.0,
        *,
        burst: int = 5,
        broadcast_share: float = 0.8,
        urgent_reserve: int = 2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        super().__init__(_Plan(rate, burst, broadcast_share, urgent_reserve))
        self._clock = clock
        self._sleep = sleep
        self._tat_global = -math.inf
        self._tat_broadcast = -math.inf
        self._paused_until = -math.inf
        self._critical_waiting = 0

    def _try(
        self, n: int, urgent: bool, now: float, critical: bool = False, lifeline: bool = False
    ) -> float:
        """Take n slots and return 0, or return how long to wait before trying again."""
        plan = self._plan
        if now < self._paused_until:
            return self._paused_until - now
        if self._lifeline_waiting and not lifeline:
            return plan.interval  # a crisis reply takes the next slot, whoever woke first
        if self._critical_waiting and not (critical or lifeline):
            return plan.interval  # then an urgent case's send
        if urgent:
            at = _conform_at(self._tat_global, now, n, plan.interval, plan.urgent_tolerance)
        else:
            at = max(
                _conform_at(
                    self._tat_global, now, n, plan.interval, plan.broadcast_global_tolerance
                ),
                _conform_at(
                    self._tat_broadcast,
                    now,
                    n,
                    plan.broadcast_interval,
                    plan.broadcast_tolerance,
                ),
            )
        if at > now:
            return at - now
        self._tat_global = max(self._tat_global, now) + n * plan.interval
        if not urgent:
            self._tat_broadcast = max(self._tat_broadcast, now) + n * plan.broadcast_interval
        return 0.0

    async def acquire(
        self, n: int = 1, *, urgent: bool = False, critical: bool = False, lifeline: bool = False
    ) -> float:
        """Wait until ``n`` messages may be sent; return the seconds waited."""
        critical = critical and not lifeline
        urgent = urgent or critical or lifeline
        self._plan.check_n(n, urgent)
        start = self._clock()
        async with self._line(urgent, critical, lifeline):
            self._critical_waiting += critical
            self._lifeline_waiting += lifeline
            try:
                while True:
                    now = self._clock()
                    wait = self._try(n, urgent, now, critical, lifeline)
                    if wait <= 0:
                        return now - start
                    # Re-check after waking: a 429 may have paused everyone meanwhile.
                    await self._sleep(wait)
            finally:
                self._critical_waiting -= critical
                self._lifeline_waiting -= lifeline

    async def pause_for(self, seconds: float) -> None:
        """Stop every sender sharing this limiter for ``seconds`` (never shortens a pause)."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    async def penalize(self, retry_after: float) -> None:
        """Obey a 429: pause everyone for ``retry_after`` s, then resume without a burst."""
        await self.pause_for(retry_after)
        plan = self._plan
        # Move each bucket so that its first conforming slot is the resume time, not earlier:
        # a full burst right after a 429 would likely earn the next one.
        resume = self._paused_until
        self._tat_global = max(self._tat_global, resume + plan.urgent_tolerance)
        self._tat_broadcast = max(self._tat_broadcast, resume + plan.broadcast_tolerance)

    async def paused_remaining(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())


# KEYS: 1 pause, 2 global bucket, 3 broadcast bucket.
# ARGV: 1 n, 2 urgent (1/0), 3 global interval, 4 global tolerance for this caller,
#       5 broadcast interval, 6 broadcast tolerance.  Times in microseconds.
# Returns 0 when the slots were taken, else the microseconds to wait before retrying.
_ACQUIRE_LUA = """
local pause = redis.call('PTTL', KEYS[1])
if pause > 0 then return pause * 1000 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local urgent = ARGV[2] == '1'
local function tat_of(key)
  local v = redis.call('GET', key)
  if v then return math.max(tonumber(v), now) end
  return now
end
local gi, gt = tonumber(ARGV[3]), tonumber(ARGV[4])
local g = tat_of(KEYS[2])
local at = g + (n - 1) * gi - gt
local b, bi, bt
if not urgent then
  bi, bt = tonumber(ARGV[5]), tonumber(ARGV[6])
  b = tat_of(KEYS[3])
  at = math.max(at, b + (n - 1) * bi - bt)
end
if at > now then return math.max(1, math.ceil(at - now)) end
local function store(key, tat)
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
store(KEYS[2], g + n * gi)
if not urgent then store(KEYS[3], b + n * bi) end
return 0
"""

# KEYS: 1 pause, 2 global bucket, 3 broadcast bucket.
# ARGV: 1 pause milliseconds, 2 reset burst (1/0), 3 global urgent tolerance,
#       4 broadcast tolerance (microseconds).  Returns the pause left in milliseconds.
_PAUSE_LUA = """
local ms = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
  left = ms
end
if ARGV[2] == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local resume = now + left * 1000
  local tols = {tonumber(ARGV[3]), tonumber(ARGV[4])}
  for i = 2, 3 do
    local v = redis.call('GET', KEYS[i])
    local target = resume + tols[i - 1]
    if (not v) or tonumber(v) < target then
      redis.call('SET', KEYS[i], string.format('%.0f', target),
                 'PX', math.ceil((target - now) / 1000) + 1000)
    end
  end
end
return left
"""


class RedisRateLimiter(_Limiter):
    """GCRA limiter whose state lives in Redis, so several processes share one rate."""

    def __init__(
        self,
        redis: Redis,
        rate: float = 25.0,
        *,
        prefix: str = "safewell:ratelimit",
        burst: int = 5,
        broadcast_share: float = 0.8,
        urgent_reserve: int = 2,
        redis_timeout: float = 0.5,
        retry_after_failure: float = 5.0,
    ) -> None:
        super().__init__(_Plan(rate, burst, broadcast_share, urgent_reserve))
        self._redis = redis
        self._timeout = redis_timeout
        self._fallback = LocalRateLimiter(
            rate, burst=burst, broadcast_share=broadcast_share, urgent_reserve=urgent_reserve
        )
        self._degraded = False
        self._retry_redis_at = 0.0
        self._retry_after_failure = retry_after_failure
        # The hash tag keeps all three keys in one Redis Cluster slot, as a script requires.
        tag = "{" + prefix + "}"
        self.keys = [f"{tag}:pause", f"{tag}:global", f"{tag}:broadcast"]
        self._acquire_script = redis.register_script(_ACQUIRE_LUA)
        self._pause_script = redis.register_script(_PAUSE_LUA)

    async def close(self) -> None:
        """Close the Redis client (the application does this when it stops)."""
        await self._redis.aclose()

    async def acquire(
        self, n: int = 1, *, urgent: bool = False, critical: bool = False, lifeline: bool = False
    ) -> float:
        """Wait until ``n`` messages may be sent; return the seconds waited."""
        critical = critical and not lifeline
        urgent = urgent or critical or lifeline
        plan = self._plan
        plan.check_n(n, urgent)
        us = 1_000_000.0
        args = [
            n,
            1 if urgent else 0,
            plan.interval * us,
            (plan.urgent_tolerance if urgent else plan.broadcast_global_tolerance) * us,
            plan.broadcast_interval * us,
            plan.broadcast_tolerance * us,
        ]
        start = time.monotonic()
        # Only the head of each local line polls Redis, so a process with many workers does
        # not flood Redis with retries.
        kind = {"urgent": urgent, "critical": critical, "lifeline": lifeline}
        async with self._line(urgent, critical, lifeline):
            self._lifeline_waiting += lifeline
            try:
                while True:
                    if self._lifeline_waiting and not lifeline:
                        # This process's crisis replies take the shared rate's next slots.
                        await asyncio.sleep(plan.interval)
                        continue
                    if self._degraded and time.monotonic() < self._retry_redis_at:
                        # Do not pay a connection timeout on every send while Redis is down.
                        await self._fallback.acquire(n, **kind)
                        return time.monotonic() - start
                    try:
                        async with asyncio.timeout(self._timeout):
                            wait_us = int(await self._acquire_script(keys=self.keys, args=args))
                    except (RedisError, OSError, TimeoutError) as exc:
                        self._note_failure(exc)
                        await self._fallback.acquire(n, **kind)
                        return time.monotonic() - start
                    self._note_success()
                    if wait_us <= 0:
                        return time.monotonic() - start
                    await asyncio.sleep(wait_us / us)
            finally:
                self._lifeline_waiting -= lifeline

    @property
    def degraded(self) -> bool:
        """True while Redis fails and this process limits itself alone."""
        return self._degraded

    def _note_failure(self, exc: BaseException) -> None:
        if not self._degraded:
            log.warning("Redis rate limiter unavailable, limiting this process alone: %r", exc)
        self._degraded = True
        self._retry_redis_at = time.monotonic() + self._retry_after_failure

    def _note_success(self) -> None:
        if self._degraded:
            log.warning("Redis rate limiter reachable again; sharing the rate again")
        self._degraded = False

    async def _pause(self, seconds: float, reset_burst: bool) -> None:
        plan = self._plan
        ms = max(0, math.ceil(seconds * 1000))
        # The local fallback is paused too, so a pause holds even if Redis fails meanwhile.
        if reset_burst:
            await self._fallback.penalize(seconds)
        else:
            await self._fallback.pause_for(seconds)
        try:
            async with asyncio.timeout(self._timeout):
                await self._pause_script(
                    keys=self.keys,
                    args=[
                        ms,
                        1 if reset_burst else 0,
                        plan.urgent_tolerance * 1_000_000,
                        plan.broadcast_tolerance * 1_000_000,
                    ],
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._note_failure(exc)

    async def pause_for(self, seconds: float) -> None:
        """Stop every sender sharing this limiter for ``seconds`` (never shortens a pause)."""
        await self._pause(seconds, reset_burst=False)

    async def penalize(self, retry_after: float) -> None:
        """Obey a 429: pause everyone for ``retry_after`` s, then resume without a burst."""
        await self._pause(retry_after, reset_burst=True)

    async def paused_remaining(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        local = await self._fallback.paused_remaining()
        try:
            async with asyncio.timeout(self._timeout):
                left = int(await self._redis.pttl(self.keys[0]))
        except (RedisError, OSError, TimeoutError) as exc:
            self._note_failure(exc)
            return local
        return max(local, max(0, left) / 1000.0)


def build_rate_limiter(
    redis: Redis | None,
    rate: float = 25.0,
    *,
    prefix: str = "safewell:ratelimit",
    burst: int = 5,
    broadcast_share: float = 0.8,
    urgent_reserve: int = 2,
) -> RateLimiter:
    """The Redis-shared limiter when a Redis client is given, else the in-process one."""
    if redis is None:
        return LocalRateLimiter(
            rate, burst=burst, broadcast_share=broadcast_share, urgent_reserve=urgent_reserve
        )
    return RedisRateLimiter(
        redis,
        rate,
        prefix=prefix,
        burst=burst,
        broadcast_share=broadcast_share,
        urgent_reserve=urgent_reserve,
    )
