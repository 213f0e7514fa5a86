"""Helpers for the handoff service tests: the forum, backup group and officer they use, and a
clock the test moves by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

FORUM = -1001000000011
BACKUP = -1001000000012
OFFICER = 9501


@dataclass
class ManualClock:
    """A clock the test moves by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)
