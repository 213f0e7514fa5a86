"""Retention on both databases: only rows older than each setting go, 0 keeps forever, and
two processes running the job at once do the work once (a dead one's turn is taken over)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import bot.retention as retention
from bot import metrics
from bot.claims import Claims
from bot.config import RetentionSettings
from bot.db import repo
from bot.db.models import (
    RETENTION_NEXT,
    Alert,
    AlertDelivery,
    AlertKind,
    AlertStatus,
    Case,
    Direction,
    FaqQuery,
    Message,
    ProcessedUpdate,
    WorkClaim,
    utcnow,
)
from bot.db.session import create_engine, create_sessionmaker
from bot.retention import Pruned, RetentionJob, prune

Maker = async_sessionmaker[AsyncSession]
CITIZEN = 7_000_000_303


def settings(**days: int) -> RetentionSettings:
    values: dict[str, Any] = {
        "messages_days": 30,
        "faq_queries_days": 90,
        "processed_updates_days": 3,
        "alert_deliveries_days": 30,
        **days,
    }
    return RetentionSettings(_env_file=None, **values)  # type: ignore[call-arg]


def ago(now: datetime, days: float) -> datetime:
    return now - timedelta(days=days)


async def _citizen(s: AsyncSession) -> None:
    await repo.upsert_citizen(
        s, CITIZEN, first_name="Ann", last_name=None, username=None, telegram_language="en"
    )


async def _alert(s: AsyncSession, name: str, status: str, **fields: Any) -> int:
    alert = Alert(identifier=name, category="traffic", severity="Minor", status=status, **fields)
    s.add(alert)
    await s.flush()
    s.add(AlertDelivery(alert_id=alert.id, citizen_id=CITIZEN, state="sent"))
    return alert.id


async def _fill(s: AsyncSession, now: datetime) -> dict[str, int]:
    """Rows just older and just newer than each default setting; returns the alerts' ids."""
    await _citizen(s)
    case = Case(citizen_id=CITIZEN, priority="normal", status="closed", reason="human")
    s.add(case)
    await s.flush()
    for days, text in ((31, "old outside"), (29, "new outside")):
        s.add(
            Message(citizen_id=CITIZEN, direction="citizen", text=text, created_at=ago(now, days))
        )
    s.add(
        Message(
            citizen_id=CITIZEN,
            case_id=case.id,
            direction=Direction.CITIZEN,
            text="old in a case",
            relay_state="done",
            created_at=ago(now, 400),
        )
    )
    for days, text in ((91, "old question"), (89, "new question")):
        s.add(
            FaqQuery(
                citizen_id=CITIZEN,
                text=text,
                language="en",
                outcome="none",
                created_at=ago(now, days),
            )
        )
    s.add_all(
        [
            ProcessedUpdate(update_id=1, processed_at=ago(now, 3.1)),
            ProcessedUpdate(update_id=2, processed_at=ago(now, 2.9)),
        ]
    )
    ids = {
        "sent long ago": await _alert(s, "a1", AlertStatus.SENT, finished_at=ago(now, 31)),
        "sent recently": await _alert(s, "a2", AlertStatus.SENT, finished_at=ago(now, 29)),
        "expired recently": await _alert(
            s, "a3", AlertStatus.SENT, finished_at=ago(now, 31), expires_at=ago(now, 20)
        ),
        "cancelled long ago": await _alert(s, "a4", AlertStatus.CANCELLED, created_at=ago(now, 40)),
        "still sending": await _alert(s, "a5", AlertStatus.SENDING, started_at=ago(now, 40)),
        "paused": await _alert(s, "a6", AlertStatus.PAUSED, started_at=ago(now, 40)),
        "update pending": await _alert(s, "a7", AlertStatus.SENT, finished_at=ago(now, 40)),
    }
    s.add(
        Alert(
            identifier="a7-update",
            kind=AlertKind.UPDATE,
            references_id=ids["update pending"],
            category="traffic",
            severity="Minor",
            status=AlertStatus.SCHEDULED,
        )
    )
    return ids


async def _left(s: AsyncSession, alerts: dict[str, int]) -> dict[str, Any]:
    by_id = {v: k for k, v in alerts.items()}
    return {
        "messages": sorted((await s.scalars(select(Message.text))).all()),
        "faq": sorted((await s.scalars(select(FaqQuery.text))).all()),
        "updates": sorted((await s.scalars(select(ProcessedUpdate.update_id))).all()),
        "deliveries": sorted(
            by_id[a] for a in (await s.scalars(select(AlertDelivery.alert_id))).all()
        ),
        "alerts": await s.scalar(select(func.count()).select_from(Alert)),
        "cases": await s.scalar(select(func.count()).select_from(Case)),
    }


async def test_only_rows_older_than_each_setting_go(sessionmaker: Maker) -> None:
    now = utcnow()
    async with sessionmaker() as s:
        alerts = await _fill(s, now)
        await s.commit()
    pruned = await prune(sessionmaker, settings(), now=now)
    assert pruned == Pruned(messages=1, faq_queries=1, processed_updates=1, alert_deliveries=2)
    async with sessionmaker() as s:
        left = await _left(s, alerts)
    assert left["messages"] == ["new outside", "old in a case"]  # cases are records: kept
    assert left["faq"] == ["new question"]
    assert left["updates"] == [2]
    assert left["deliveries"] == [
        "expired recently",  # counted from the expiry, which is later than the finish
        "paused",
        "sent recently",
        "still sending",
        "update pending",  # its update goes to those who got it
    ]
    assert left["alerts"] == 8 and left["cases"] == 1  # alerts and cases themselves stay
    assert await prune(sessionmaker, settings(), now=now) == Pruned()  # nothing more to do


async def test_zero_keeps_forever_and_shorter_settings_take_more(sessionmaker: Maker) -> None:
    now = utcnow()
    async with sessionmaker() as s:
        alerts = await _fill(s, now)
        await s.commit()
    forever = settings(
        messages_days=0, faq_queries_days=0, processed_updates_days=0, alert_deliveries_days=0
    )
    assert await prune(sessionmaker, forever, now=now + timedelta(days=3650)) == Pruned()
    short = settings(
        messages_days=1, faq_queries_days=1, processed_updates_days=1, alert_deliveries_days=1
    )
    pruned = await prune(sessionmaker, short, now=now)
    assert pruned == Pruned(messages=2, faq_queries=2, processed_updates=2, alert_deliveries=4)
    async with sessionmaker() as s:
        left = await _left(s, alerts)
    assert left["messages"] == ["old in a case"]
    assert left["deliveries"] == ["paused", "still sending", "update pending"]


async def test_many_rows_go_in_batches(
    sessionmaker: Maker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 3)
    now = utcnow()
    async with sessionmaker() as s:
        await _citizen(s)
        for i in range(8):
            s.add(
                Message(
                    citizen_id=CITIZEN,
                    direction="citizen",
                    text=f"old {i}",
                    created_at=ago(now, 40),
                )
            )
        s.add(Message(citizen_id=CITIZEN, direction="citizen", text="new", created_at=now))
        await s.commit()
    assert (await prune(sessionmaker, settings(), now=now)).messages == 8
    async with sessionmaker() as s:
        assert (await s.scalars(select(Message.text))).all() == ["new"]


async def _old_rows(sessionmaker: Maker, n: int) -> None:
    now = utcnow()
    async with sessionmaker() as s:
        await _citizen(s)
        for i in range(n):
            s.add(
                FaqQuery(
                    citizen_id=CITIZEN,
                    text=f"q{i}",
                    language="en",
                    outcome="none",
                    created_at=ago(now, 100),
                )
            )
        await s.commit()


async def test_two_processes_at_once_do_the_work_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two processes (two engines, two owners) run the job at the same moment: one prunes,
    the other skips; neither runs again within the interval; after it, one runs again."""
    engines = [create_engine(db_url), create_engine(db_url)]
    makers = [create_sessionmaker(e) for e in engines]
    try:
        await _old_rows(makers[0], 5)
        passes: list[int] = []
        real_prune = retention.prune

        async def slow_prune(*args: Any, **kwargs: Any) -> Pruned:
            passes.append(1)
            await asyncio.sleep(0.3)  # the other process tries while this one works
            return await real_prune(*args, **kwargs)

        monkeypatch.setattr(retention, "prune", slow_prune)
        jobs = [
            RetentionJob(maker, settings(), Claims(maker, 5, owner=owner))
            for maker, owner in zip(makers, ("process-a", "process-b"), strict=True)
        ]
        with caplog.at_level(logging.INFO, logger="bot.retention"):
            results = await asyncio.gather(*(job.run_once() for job in jobs))
        done = [r for r in results if r is not None]
        assert len(passes) == 1 and len(done) == 1 and done[0].faq_queries == 5
        assert "retention: removed 0 messages, 5 faq_queries" in caplog.text
        # Within the interval nobody runs again, neither the one that did nor the other.
        assert await asyncio.gather(*(job.run_once() for job in jobs)) == [None, None]
        assert len(passes) == 1
        # The interval has passed: the next look of either process runs a pass.
        async with makers[1]() as s:
            await s.execute(
                update(WorkClaim)
                .where(WorkClaim.name == RETENTION_NEXT)
                .values(until=utcnow() - timedelta(seconds=1))
            )
            await s.commit()
        await _old_rows(makers[1], 2)
        again = await jobs[1].run_once()
        assert again is not None and again.faq_queries == 2 and len(passes) == 2
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_dead_processs_turn_is_taken_over(sessionmaker: Maker) -> None:
    """A process died during a pass: its claim stays until its lease ends, then another
    process does the pass (the next-due time was never pushed on)."""
    await _old_rows(sessionmaker, 3)
    async with sessionmaker() as s:
        s.add(WorkClaim(name=retention.CLAIM, owner="dead", until=utcnow() + timedelta(hours=1)))
        await s.commit()
    job = RetentionJob(sessionmaker, settings(), Claims(sessionmaker, 5, owner="alive"))
    assert await job.run_once() is None  # its lease has not run out yet
    async with sessionmaker() as s:
        await s.execute(
            update(WorkClaim)
            .where(WorkClaim.name == retention.CLAIM)
            .values(until=utcnow() - timedelta(seconds=1))
        )
        await s.commit()
    deleted = {"kind": "faq_queries"}
    before = REGISTRY.get_sample_value("safewell_retention_deleted_total", deleted) or 0
    pruned = await job.run_once()
    assert pruned is not None and pruned.faq_queries == 3
    async with sessionmaker() as s:
        claims = {c.name: c for c in (await s.scalars(select(WorkClaim))).all()}
        await metrics.refresh(s)
    assert retention.CLAIM not in claims  # released after the pass
    assert claims[RETENTION_NEXT].owner == "alive"
    assert claims[RETENTION_NEXT].until > utcnow() + timedelta(minutes=59)
    # Reported in the metrics: what this process deleted, and when the next pass is due.
    assert REGISTRY.get_sample_value("safewell_retention_deleted_total", deleted) == before + 3
    due = REGISTRY.get_sample_value("safewell_retention_next_pass_timestamp_seconds")
    assert due == claims[RETENTION_NEXT].until.timestamp()


async def test_the_worker_loop_keeps_going_after_a_failure(
    sessionmaker: Maker, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = RetentionJob(sessionmaker, settings(), Claims(sessionmaker, 5, owner="a"))
    calls: list[int] = []

    async def flaky() -> Pruned | None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("database away")
        return None

    monkeypatch.setattr(job, "run_once", flaky)
    task = asyncio.create_task(job.run(check_seconds=0.01))
    try:
        for _ in range(200):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert len(calls) >= 3
