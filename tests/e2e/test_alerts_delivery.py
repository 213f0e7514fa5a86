"""Broadcasts through the running application: restart mid-broadcast, 429 storms, scheduling."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.alerts import service
from bot.db.models import Alert, AlertStatus, utcnow
from tests.support.e2e import Harness

CONTENT = {"en": {"headline": "Storm warning", "description": "Strong winds tonight."}}
PEOPLE = range(901, 913)


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    # A slow broadcast (8/s) so a restart lands in the middle of it.
    return {"alerts": {"rate": 10.0, "concurrency": 2}}


async def subscribe_all(harness: Harness) -> None:
    for uid in PEOPLE:
        await (await harness.new_citizen(uid)).say("/start sub_weather-and-disasters")


async def queue(harness: Harness, **fields: Any) -> int:
    assert harness.app is not None
    draft = service.AlertDraft(
        category="weather-and-disasters", severity="Moderate", content=CONTENT, **fields
    )
    async with harness.app.sessionmaker() as session:
        alert = await service.create_draft(session, draft, author_id=9201)
        await service.submit(session, alert.id, actor_id=9201, approval_severities=[])
        await session.commit()
        return alert.id


async def copies(harness: Harness) -> list[int]:
    out = []
    for uid in PEOPLE:
        transcript = await harness.emu.transcript(uid)
        out.append(sum("Storm warning" in (e["message"].get("text") or "") for e in transcript))
    return out


async def wait_status(harness: Harness, alert_id: int, status: str, within: float = 20) -> None:
    assert harness.app is not None
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with harness.app.sessionmaker() as session:
            if await session.scalar(select(Alert.status).where(Alert.id == alert_id)) == status:
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"alert {alert_id} never reached {status}")


async def test_restart_mid_broadcast_resumes_without_loss(harness: Harness) -> None:
    await subscribe_all(harness)
    alert_id = await queue(harness)
    for _ in range(100):
        if 0 < sum(await copies(harness)) < len(PEOPLE) - 3:
            break
        await asyncio.sleep(0.1)
    await harness.restart()
    await wait_status(harness, alert_id, AlertStatus.SENT)
    got = await copies(harness)
    assert min(got) == 1  # nobody lost
    assert sum(got) - len(PEOPLE) <= 2  # at most the in-flight sends repeat


async def test_429_storm_is_obeyed_and_nothing_is_lost(harness: Harness) -> None:
    await subscribe_all(harness)
    await harness.emu.add_fault("sendmessage", "retry_after", count=3, retry_after=2)
    start = time.monotonic()
    alert_id = await queue(harness)
    await wait_status(harness, alert_id, AlertStatus.SENT)
    assert time.monotonic() - start >= 2.0
    assert await copies(harness) == [1] * len(PEOPLE)


async def test_scheduled_waits_and_expired_is_withdrawn(harness: Harness) -> None:
    await subscribe_all(harness)
    later = await queue(
        harness,
        scheduled_at=utcnow() + timedelta(seconds=3),
        expires_at=utcnow() + timedelta(hours=1),
    )
    await asyncio.sleep(1.5)
    assert sum(await copies(harness)) == 0  # not yet
    await wait_status(harness, later, AlertStatus.SENT)
    assert await copies(harness) == [1] * len(PEOPLE)
    gone = await queue(
        harness,
        scheduled_at=utcnow() + timedelta(seconds=3),
        expires_at=utcnow() + timedelta(seconds=1),
    )
    await wait_status(harness, gone, AlertStatus.CANCELLED)


async def test_staff_stop_pauses_and_resume_finishes_without_loss(harness: Harness) -> None:
    await subscribe_all(harness)
    comms = await harness.new_citizen(9201, "Comms Chen")
    await comms.say("/start")
    assert (await comms.say("/stop"))["text"] == "No broadcast is running."
    alert_id = await queue(harness)
    for _ in range(100):
        if sum(await copies(harness)) > 0:
            break
        await asyncio.sleep(0.05)
    assert (await comms.say("/stop"))["text"] == f"Paused: #{alert_id}. /resume continues."
    await wait_status(harness, alert_id, AlertStatus.PAUSED)
    await asyncio.sleep(0.5)  # in-flight messages finish
    paused_at = sum(await copies(harness))
    assert paused_at < len(PEOPLE)
    await asyncio.sleep(1.0)
    assert sum(await copies(harness)) == paused_at  # nothing more while paused
    assert (await comms.say("/resume"))["text"] == f"Resumed: #{alert_id}."
    await wait_status(harness, alert_id, AlertStatus.SENT)
    assert await copies(harness) == [1] * len(PEOPLE)
