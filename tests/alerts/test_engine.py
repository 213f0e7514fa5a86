"""The broadcast engine against the emulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts import service
from bot.alerts.catalog import Catalog
from bot.alerts.engine import Broadcaster, RunStats
from bot.alerts.ratelimit import LocalRateLimiter
from bot.db.models import (
    Alert,
    AlertDelivery,
    AlertKind,
    AlertStatus,
    Citizen,
    DeliveryState,
    Subscription,
    utcnow,
)
from bot.emulator.core import Fault
from bot.emulator.server import EmulatorServer
from tests.support.alerts import (
    add_subscribers,
    make_engine,
    queued_alert,
    states,
    texts_in,
)


def slow_engine(
    sessionmaker: async_sessionmaker[AsyncSession], tg: Bot, catalog: Catalog, per_second: int
) -> Broadcaster:
    """Two senders at `per_second` messages a second: slow enough to stop mid-broadcast."""
    engine = make_engine(sessionmaker, tg, catalog, concurrency=2)
    engine.limiter = LocalRateLimiter(per_second, burst=4)
    return engine


async def sending(engine: Broadcaster, alert_id: int, seconds: float) -> asyncio.Task[RunStats]:
    """The queued alert started and broadcast for `seconds`; the run goes on."""
    await engine.start_due()
    task = asyncio.create_task(engine.run(alert_id))
    await asyncio.sleep(seconds)
    return task


async def stop_midway(engine: Broadcaster, alert_id: int, seconds: float) -> None:
    """Broadcast for `seconds`, then stop in the middle, like a shutdown, and close."""
    task = await sending(engine, alert_id, seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    engine.close()


async def pause_midway(
    sessionmaker: async_sessionmaker[AsyncSession], engine: Broadcaster, alert_id: int
) -> None:
    """Broadcast for a while, then pause the alert as /pause does."""
    task = await sending(engine, alert_id, 0.3)
    async with sessionmaker() as session:
        await service.set_paused(session, alert_id, paused=True, actor_id=1)
        await session.commit()
    await asyncio.wait_for(task, 3)  # promptly, not after the queued backlog is sent


async def derived(
    sessionmaker: async_sessionmaker[AsyncSession], alert_id: int, kind: AlertKind, **fields: Any
) -> int:
    """An update or cancellation of the alert, submitted (no approval needed); its id."""
    async with sessionmaker() as session:
        alert = await service.derive(session, alert_id, kind, author_id=1, **fields)
        await service.submit(session, alert.id, actor_id=1, approval_severities=[])
        await session.commit()
        return alert.id


async def test_sends_each_subscriber_once_in_their_language(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
) -> None:
    await add_subscribers(sessionmaker, emulator, range(100, 130))
    await add_subscribers(sessionmaker, emulator, range(200, 210), language="zh-hans")
    # Subscribed twice (district and everywhere) still means one message.
    async with sessionmaker() as session:
        await service.subscribe(session, 100, "traffic", "harbour")
        await service.subscribe(session, 100, "weather-and-disasters", "*")
        await session.commit()
    await add_subscribers(sessionmaker, emulator, range(300, 305), category="scam-warnings")
    alert_id = await queued_alert(sessionmaker)
    engine = make_engine(sessionmaker, tg, catalog)
    assert await engine.start_due() == [alert_id]
    stats = await engine.run(alert_id)
    assert stats.sent == 40
    assert await states(sessionmaker, alert_id) == {
        "pending": 0,
        "sending": 0,
        "sent": 40,
        "blocked": 0,
        "failed": 0,
    }
    assert len(texts_in(emulator, 100)) == 1
    assert "Road closed" in str(texts_in(emulator, 101)[0]["text"])
    assert "道路封闭" in str(texts_in(emulator, 205)[0]["text"])
    assert texts_in(emulator, 300) == []
    async with sessionmaker() as session:
        alert = await session.get(Alert, alert_id)
        assert alert is not None and alert.status == AlertStatus.SENT
        assert alert.total_recipients == 40
    # Running again sends nothing more.
    assert (await engine.run(alert_id)).sent == 0


async def test_districts_and_minor_is_silent(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
) -> None:
    await add_subscribers(sessionmaker, emulator, [1, 2], district="harbour")
    await add_subscribers(sessionmaker, emulator, [3], district="old-town")
    await add_subscribers(sessionmaker, emulator, [4], district="*")
    async with sessionmaker() as session:
        assert await service.count_recipients(session, "traffic", ["harbour"]) == 3
    alert_id = await queued_alert(sessionmaker, severity="Minor", districts=["harbour"])
    engine = make_engine(sessionmaker, tg, catalog)
    await engine.start_due()
    await engine.run(alert_id)
    assert [len(texts_in(emulator, u)) for u in (1, 2, 3, 4)] == [1, 1, 0, 1]
    sends = [c["params"] for c in emulator.emulator.calls if c["method"] == "sendmessage"]
    assert sends and all(str(p.get("disable_notification")).lower() == "true" for p in sends)


async def test_blocked_and_missing_chats_end_subscriptions(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
) -> None:
    await add_subscribers(sessionmaker, emulator, range(10, 20))
    emulator.emulator.set_blocked(11, True)
    emulator.emulator.set_deactivated(12)
    emulator.emulator.delete_chat(13)
    alert_id = await queued_alert(sessionmaker)
    engine = make_engine(sessionmaker, tg, catalog)
    await engine.start_due()
    stats = await engine.run(alert_id)
    assert (stats.sent, stats.blocked) == (7, 3)
    async with sessionmaker() as session:
        blocked = set(
            (await session.scalars(select(Citizen.id).where(Citizen.blocked_bot.is_(True)))).all()
        )
        assert blocked == {11, 12, 13}
        subs = await session.scalar(
            select(func.count()).where(Subscription.citizen_id.in_([11, 12, 13]))
        )
        assert subs == 0
        errors = (
            await session.scalars(
                select(AlertDelivery.error).where(AlertDelivery.state == DeliveryState.BLOCKED)
            )
        ).all()
        assert any("blocked" in (e or "") for e in errors)


async def test_429_storm_obeys_retry_after_and_loses_nothing(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
) -> None:
    await add_subscribers(sessionmaker, emulator, range(40, 60))
    emulator.emulator.add_fault(Fault("sendmessage", "retry_after", count=3, retry_after=1))
    alert_id = await queued_alert(sessionmaker)
    engine = make_engine(sessionmaker, tg, catalog)
    await engine.start_due()
    stats = await engine.run(alert_id)
    assert stats.rate_limited == 3
    assert stats.elapsed >= 1.0  # everyone waited for retry_after
    assert (await states(sessionmaker, alert_id))["sent"] == 20
    assert all(len(texts_in(emulator, u)) == 1 for u in range(40, 60))


async def test_transient_errors_retry_with_backoff_then_fail(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
) -> None:
    await add_subscribers(sessionmaker, emulator, [70, 71])
    emulator.emulator.add_fault(Fault("sendmessage", "server_error", count=1, chat_id=70))
    emulator.emulator.add_fault(Fault("sendmessage", "server_error", count=99, chat_id=71))
    alert_id = await queued_alert(sessionmaker)
    engine = make_engine(sessionmaker, tg, catalog, backoff_base=0.01, max_attempts=3)
    await engine.start_due()
    await engine.run(alert_id)
    async with sessionmaker() as session:
        rows = {
            d.citizen_id: d
            for d in (
                await session.scalars(
                    select(AlertDelivery).where(AlertDelivery.alert_id == alert_id)
                )
            ).all()
        }
    assert rows[70].state == DeliveryState.SENT and rows[70].attempts == 2
    assert rows[71].state == DeliveryState.FAILED and rows[71].attempts == 3
    assert "Bad Gateway" in (rows[71].error or "")


async def test_update_and_cancel_reply_to_the_original(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
) -> None:
    await add_subscribers(sessionmaker, emulator, [80, 81])
    alert_id = await queued_alert(sessionmaker)
    engine = make_engine(sessionmaker, tg, catalog)
    await engine.start_due()
    await engine.run(alert_id)
    # A citizen who subscribes later does not get the update of an alert they never saw.
    await add_subscribers(sessionmaker, emulator, [82])
    update_id = await derived(
        sessionmaker,
        alert_id,
        AlertKind.UPDATE,
        content={"en": {"description": "Open again at 18:00."}},
    )
    await engine.start_due()
    await engine.run(update_id)
    original = texts_in(emulator, 80)[0]
    update = texts_in(emulator, 80)[1]
    assert "UPDATE" in str(update["text"]) and "Open again" in str(update["text"])
    assert update["reply_to_message"]["message_id"] == original["message_id"]  # type: ignore[index]
    assert texts_in(emulator, 82) == []
    async with sessionmaker() as session:
        assert [a.id for a in await service.active_alerts(session)] == [alert_id]
    cancel_id = await derived(sessionmaker, alert_id, AlertKind.CANCEL)
    await engine.start_due()
    await engine.run(cancel_id)
    assert "CANCELLED" in str(texts_in(emulator, 81)[-1]["text"])
    async with sessionmaker() as session:
        assert await service.active_alerts(session) == []


async def test_restart_resumes_without_duplicates(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
) -> None:
    await add_subscribers(sessionmaker, emulator, range(1000, 1060))
    alert_id = await queued_alert(sessionmaker)
    await stop_midway(slow_engine(sessionmaker, tg, catalog, 60), alert_id, 0.4)
    done = await states(sessionmaker, alert_id)
    assert 0 < done["sent"] < 60
    second = make_engine(sessionmaker, tg, catalog)
    await second.run(alert_id)
    assert (await states(sessionmaker, alert_id))["sent"] == 60
    copies = [len(texts_in(emulator, u)) for u in range(1000, 1060)]
    assert min(copies) == 1
    assert sum(copies) - 60 <= 2  # only messages in flight at the stop may repeat


async def test_another_hosts_claim_is_taken_over_only_after_its_lease(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
) -> None:
    """A worker on another machine claimed deliveries and vanished: no process here can see
    whether it lives, so its rows wait for their lease to run out, then are sent, once."""
    await add_subscribers(sessionmaker, emulator, range(1100, 1120))
    alert_id = await queued_alert(sessionmaker)
    await stop_midway(slow_engine(sessionmaker, tg, catalog, 40), alert_id, 0.2)
    far = "far-host:4242:0badc0de"
    async with sessionmaker() as session:
        claimed = await session.execute(
            update(AlertDelivery)
            .where(
                AlertDelivery.alert_id == alert_id,
                AlertDelivery.state.in_([DeliveryState.PENDING, DeliveryState.SENDING]),
            )
            .values(state=DeliveryState.SENDING, claimed_by=far, claimed_at=utcnow())
        )
        await session.commit()
    taken = int(claimed.rowcount or 0)  # type: ignore[attr-defined]
    assert taken > 0
    second = make_engine(sessionmaker, tg, catalog)
    assert await second.recover(alert_id) == 0  # its lease runs: it may still be sending
    async with sessionmaker() as session:
        await session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.claimed_by == far)
            .values(claimed_at=utcnow() - timedelta(seconds=second.config.lease_seconds + 1))
        )
        await session.commit()
    assert await second.recover(alert_id) == taken
    await second.run(alert_id)
    assert (await states(sessionmaker, alert_id))["sent"] == 20
    copies = [len(texts_in(emulator, u)) for u in range(1100, 1120)]
    assert min(copies) == 1
    assert sum(copies) - 20 <= 2  # only the first engine's sends in flight at its stop


async def test_pause_and_resume(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
) -> None:
    await add_subscribers(sessionmaker, emulator, range(500, 540))
    alert_id = await queued_alert(sessionmaker)
    engine = slow_engine(sessionmaker, tg, catalog, 50)
    await pause_midway(sessionmaker, engine, alert_id)
    paused = await states(sessionmaker, alert_id)
    assert paused["sending"] == 0 and 0 < paused["sent"] < 40
    # Every message that went out is recorded: none will be repeated on resume.
    assert sum(len(texts_in(emulator, u)) for u in range(500, 540)) == paused["sent"]
    async with sessionmaker() as session:
        await service.set_paused(session, None, paused=False, actor_id=1)
        await session.commit()
    await engine.run(alert_id)
    assert (await states(sessionmaker, alert_id))["sent"] == 40
    assert all(len(texts_in(emulator, u)) == 1 for u in range(500, 540))


async def test_scheduled_waits_and_expired_never_starts(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
) -> None:
    await add_subscribers(sessionmaker, emulator, [90])
    later = await queued_alert(sessionmaker, scheduled_at=utcnow() + timedelta(hours=1))
    engine = make_engine(sessionmaker, tg, catalog)
    assert await engine.start_due() == []
    async with sessionmaker() as session:
        alert = await session.get(Alert, later)
        assert alert is not None
        alert.scheduled_at = utcnow() - timedelta(seconds=1)
        alert.expires_at = utcnow() - timedelta(seconds=1)
        await session.commit()
    assert await engine.start_due() == []
    async with sessionmaker() as session:
        alert = await session.get(Alert, later, populate_existing=True)
        assert alert is not None and alert.status == AlertStatus.CANCELLED
    assert texts_in(emulator, 90) == []


async def test_two_workers_share_one_broadcast_on_postgres(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
    db_url: str,
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer: one worker sends (no SKIP LOCKED)")
    await add_subscribers(sessionmaker, emulator, range(3000, 3200))
    alert_id = await queued_alert(sessionmaker)
    one = make_engine(sessionmaker, tg, catalog, concurrency=4)
    two = make_engine(sessionmaker, tg, catalog, concurrency=4)
    await one.start_due()
    first, second = await asyncio.gather(one.run(alert_id), two.run(alert_id))
    assert first.sent > 0 and second.sent > 0  # both claimed batches
    assert first.sent + second.sent == 200
    assert all(len(texts_in(emulator, u)) == 1 for u in range(3000, 3200))
    assert (await states(sessionmaker, alert_id))["sent"] == 200


async def test_cancel_stops_a_paused_broadcast_for_good(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
) -> None:
    users = range(600, 640)
    await add_subscribers(sessionmaker, emulator, users)
    alert_id = await queued_alert(sessionmaker)
    engine = slow_engine(sessionmaker, tg, catalog, 50)
    await pause_midway(sessionmaker, engine, alert_id)
    got = {u for u in users if texts_in(emulator, u)}
    assert 0 < len(got) < 40
    cancel_id = await derived(sessionmaker, alert_id, AlertKind.CANCEL)
    async with sessionmaker() as session:
        assert (await service.get_alert(session, alert_id)).status == AlertStatus.CANCELLED
        # /resume no longer finds it: the rest never get the cancelled alert.
        assert await service.set_paused(session, None, paused=False, actor_id=1) == []
    engine.limiter = LocalRateLimiter(10_000, burst=50)
    await engine.start_due()
    await engine.run(cancel_id)
    for user in users:
        texts = [str(m["text"]) for m in texts_in(emulator, user)]
        if user in got:
            assert len(texts) == 2 and "CANCELLED" in texts[1]
        else:
            assert texts == []


async def test_cancel_waits_for_the_originals_messages_in_flight(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
) -> None:
    await add_subscribers(sessionmaker, emulator, range(650, 655))
    alert_id = await queued_alert(sessionmaker)
    engine = make_engine(sessionmaker, tg, catalog)
    await engine.start_due()  # sending: deliveries exist, two of them claimed by a sender now
    async with sessionmaker() as session:
        ids = (
            await session.scalars(
                select(AlertDelivery.id).where(AlertDelivery.alert_id == alert_id).limit(2)
            )
        ).all()
        await session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id.in_(ids))
            .values(state=DeliveryState.SENDING, claimed_by="elsewhere:1:x", claimed_at=utcnow())
        )
        update_alert = await service.derive(
            session, alert_id, AlertKind.UPDATE, author_id=1, content={"en": {"headline": "x"}}
        )
        await service.submit(session, update_alert.id, actor_id=1, approval_severities=[])
        await session.commit()
        update_id = update_alert.id
    # An update does not wait (a broadcast always has messages in flight until it ends).
    assert await engine.materialise(update_id) is True
    cancel_id = await derived(sessionmaker, alert_id, AlertKind.CANCEL)
    # Those two may be delivered any moment: the cancellation must not start without them.
    assert await engine.materialise(cancel_id) is False
    async with sessionmaker() as session:
        assert (await service.get_alert(session, cancel_id)).status == AlertStatus.SCHEDULED
        # A claim older than the lease is a dead sender's: not waited for.
        await session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id.in_(ids))
            .values(claimed_at=utcnow() - timedelta(seconds=engine.config.lease_seconds + 1))
        )
        await session.commit()
    assert await engine.materialise(cancel_id) is True
