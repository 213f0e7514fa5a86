"""Retention: delete what is older than `RETENTION_*` allows, one process at a time.

Kinds (each `RETENTION_<KIND>_DAYS`, 0 keeps it forever):

- citizens' messages outside cases (`messages`), never one still waiting to be relayed;
- questions the FAQ saw (`faq_queries`);
- ids of handled updates (`processed_updates`);
- delivery rows of finished alerts (`alert_deliveries`): an alert sent, cancelled or rejected,
  counted from when it finished or expired, whichever is later, and never while an update or
  cancellation of it is still to be sent (that goes to the original's recipients).

Cases are official records and are never deleted here.

Several processes may run against one database. A pass first holds the claim "retention"
(`bot.claims`, renewed while it works, so a process that dies mid-pass leaves it to another
once the lease runs out); inside it, the row "retention:next" in `work_claims` says when the
next pass is due, and is pushed on only after a pass completed. So a pass runs once per
`RETENTION_INTERVAL_MINUTES` across all processes, and a dead process's turn is taken over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from bot import metrics
from bot.aio import repeat
from bot.claims import Claims
from bot.db.models import (
    RETENTION_NEXT,
    Alert,
    AlertDelivery,
    AlertStatus,
    FaqQuery,
    Message,
    ProcessedUpdate,
    RelayState,
    utcnow,
)

if TYPE_CHECKING:
    from bot.config import RetentionSettings

log = logging.getLogger(__name__)

CLAIM = "retention"
# Rows deleted per transaction: SQLite has one writer, and the crisis path must not wait
# behind a long delete.
BATCH = 500
# How often each process looks whether a pass is due (at most the interval itself).
CHECK_SECONDS = 60.0
FINISHED = (AlertStatus.SENT, AlertStatus.CANCELLED, AlertStatus.REJECTED)

Maker = async_sessionmaker[AsyncSession]


@dataclass
class Pruned:
    """How many rows of each kind one pass deleted."""

    messages: int = 0
    faq_queries: int = 0
    processed_updates: int = 0
    alert_deliveries: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def describe(self) -> str:
        return ", ".join(f"{getattr(self, f.name)} {f.name}" for f in fields(self))


async def _delete_in_batches(sessionmaker: Maker, model: Any, pk: Any, *where: Any) -> int:
    """Delete the rows matching `where`, BATCH at a time, each batch its own transaction."""
    total = 0
    while True:
        async with sessionmaker() as session:
            ids = select(pk).where(*where).limit(BATCH).scalar_subquery()
            result = await session.execute(
                delete(model).where(pk.in_(ids)).execution_options(synchronize_session=False)
            )
            await session.commit()
        count = int(cast(CursorResult[Any], result).rowcount or 0)
        total += count
        if count < BATCH:
            return total
        await asyncio.sleep(0)  # let the rest of the process breathe between batches


def _cutoff(now: datetime, days: int) -> datetime | None:
    return None if days == 0 else now - timedelta(days=days)


def finished_alerts(cutoff: datetime) -> Any:
    """Ids of alerts whose delivery rows may go: finished (and expired) before `cutoff`, with
    no update or cancellation of them still to send."""
    later = aliased(Alert)
    return select(Alert.id).where(
        Alert.status.in_(FINISHED),
        func.coalesce(Alert.finished_at, Alert.started_at, Alert.created_at) < cutoff,
        or_(Alert.expires_at.is_(None), Alert.expires_at < cutoff),
        ~exists().where(later.references_id == Alert.id, later.status.not_in(FINISHED)),
    )


async def prune(
    sessionmaker: Maker, settings: RetentionSettings, *, now: datetime | None = None
) -> Pruned:
    """Delete every kind of row older than its setting allows; returns the counts."""
    now = now or utcnow()
    pruned = Pruned()
    if (cutoff := _cutoff(now, settings.messages_days)) is not None:
        pruned.messages = await _delete_in_batches(
            sessionmaker,
            Message,
            Message.id,
            Message.case_id.is_(None),
            Message.relay_state != RelayState.PENDING,
            Message.created_at < cutoff,
        )
    if (cutoff := _cutoff(now, settings.faq_queries_days)) is not None:
        pruned.faq_queries = await _delete_in_batches(
            sessionmaker, FaqQuery, FaqQuery.id, FaqQuery.created_at < cutoff
        )
    if (cutoff := _cutoff(now, settings.processed_updates_days)) is not None:
        pruned.processed_updates = await _delete_in_batches(
            sessionmaker,
            ProcessedUpdate,
            ProcessedUpdate.update_id,
            ProcessedUpdate.processed_at < cutoff,
        )
    if (cutoff := _cutoff(now, settings.alert_deliveries_days)) is not None:
        pruned.alert_deliveries = await _delete_in_batches(
            sessionmaker,
            AlertDelivery,
            AlertDelivery.id,
            AlertDelivery.alert_id.in_(finished_alerts(cutoff)),
        )
    return pruned


class RetentionJob:
    """The retention pass of one process; `run_once` does it when it is this process's turn."""

    def __init__(
        self,
        sessionmaker: Maker,
        settings: RetentionSettings,
        claims: Claims,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.claims = claims
        self.clock = clock

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.settings.interval_minutes)

    async def run_once(self) -> Pruned | None:
        """Prune when a pass is due and no other process is at it; None when it was not our
        turn (another process is pruning, or one did less than an interval ago)."""
        async with self.claims.hold(CLAIM) as held:
            if not held:
                return None
            due = await self.claims.due(RETENTION_NEXT)
            now = self.clock()
            if due is not None and due > now:
                return None
            pruned = await prune(self.sessionmaker, self.settings, now=now)
            await self.claims.schedule(RETENTION_NEXT, now + self.interval)
        for field in fields(pruned):
            metrics.RETENTION_DELETED.labels(field.name).inc(getattr(pruned, field.name))
        log.info(
            "retention: removed %s (older than %d / %d / %d / %d days; 0 = kept)",
            pruned.describe(),
            self.settings.messages_days,
            self.settings.faq_queries_days,
            self.settings.processed_updates_days,
            self.settings.alert_deliveries_days,
        )
        return pruned

    async def run(self, check_seconds: float = CHECK_SECONDS) -> None:
        """Forever: look every `check_seconds` (at most the interval) whether a pass is due."""
        await repeat(self.run_once, min(check_seconds, self.interval.total_seconds()), "retention")
