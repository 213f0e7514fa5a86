"""Telegram's flood limits: per bot, per private chat and per group, answered with retry_after."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Limits:
    """Flood limits; Telegram does not publish exact numbers, these follow the Bot FAQ."""

    enabled: bool = True
    global_per_second: float = 30.0
    paid_per_second: float = 1000.0
    private_per_second: float = 1.0
    # A short burst into one private chat is tolerated before 429 (Bot FAQ: "short bursts").
    private_burst: int = 3
    group_per_minute: int = 20


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class RateLimiter:
    """Decides whether one more message may be sent now; returns seconds to wait otherwise."""

    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.monotonic
    _global: dict[str, deque[float]] = field(default_factory=dict)
    _private: dict[tuple[str, int], _Bucket] = field(default_factory=dict)
    _groups: dict[tuple[str, int], deque[float]] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget all past sends."""
        self._global.clear()
        self._private.clear()
        self._groups.clear()

    def check(self, token: str, chat_id: int, is_private: bool, paid: bool) -> int | None:
        """Record a send and return None, or return retry_after seconds without recording."""
        if not self.limits.enabled:
            return None
        now = self.clock()
        retry = 0.0
        per_second = self.limits.paid_per_second if paid else self.limits.global_per_second
        window = self._global.setdefault(token, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= per_second:
            retry = max(retry, window[int(len(window) - per_second)] + 1.0 - now)
        bucket: _Bucket | None = None
        group: deque[float] | None = None
        if is_private:
            bucket = self._private.get((token, chat_id))
            if bucket is None:
                bucket = _Bucket(float(self.limits.private_burst), now)
                self._private[(token, chat_id)] = bucket
            bucket.tokens = min(
                float(self.limits.private_burst),
                bucket.tokens + (now - bucket.stamp) * self.limits.private_per_second,
            )
            bucket.stamp = now
            if bucket.tokens < 1.0:
                retry = max(retry, (1.0 - bucket.tokens) / self.limits.private_per_second)
        else:
            group = self._groups.setdefault((token, chat_id), deque())
            while group and group[0] <= now - 60.0:
                group.popleft()
            if len(group) >= self.limits.group_per_minute:
                retry = max(retry, group[0] + 60.0 - now)
        if retry > 0:
            return max(1, math.ceil(retry))
        window.append(now)
        if bucket is not None:
            bucket.tokens -= 1.0
        if group is not None:
            group.append(now)
        return None
