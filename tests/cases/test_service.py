"""The handoff service on SQLite and PostgreSQL, with the emulator as Telegram and a hand clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cases.cards import CHUNK, citizen_label, split_html_lines, topic_name
from bot.cases.context import MAX_RELAY_ATTEMPTS
from bot.cases.service import HandoffService
from bot.cli import main
from bot.db import repo
from bot.db.models import (
    Case,
    CasePriority,
    CaseReason,
    CaseStatus,
    Citizen,
    Direction,
    Message,
    MessagePair,
    RelayState,
    Role,
)
from bot.db.session import create_engine, create_sessionmaker
from bot.emulator.client import EmulatorClient
from bot.emulator.server import EmulatorServer
from bot.stats.figures import case_stats, format_stats
from tests.support.cases import BACKUP, FORUM, OFFICER, ManualClock

Emu = tuple[EmulatorServer, EmulatorClient]


async def _citizen(
    sm: async_sessionmaker[AsyncSession], emu: Emu, user_id: int, text: str = "hello"
) -> tuple[Citizen, int]:
    """A citizen who wrote one message (so the bot may write back); returns its message id."""
    await emu[1].create_user(user_id, first_name="Ann", last_name="Lee", username="ann")
    sent = await emu[1].user(user_id).send(text)
    async with sm() as session:
        citizen = await repo.upsert_citizen(
            session,
            user_id,
            first_name="Ann",
            last_name="Lee",
            username="ann",
            telegram_language="en",
        )
        await session.commit()
    return citizen, int(sent["message_id"])


async def _open(
    service: HandoffService,
    sm: async_sessionmaker[AsyncSession],
    citizen: Citizen,
    message_id: int | None,
    priority: CasePriority = CasePriority.URGENT,
) -> Case:
    async with sm() as session:
        return await service.open_case(
            session,
            await session.merge(citizen),
            reason=CaseReason.CRISIS if priority == CasePriority.URGENT else CaseReason.HUMAN,
            priority=priority,
            signals=("kill_self",),
            lang="en",
            trigger=(message_id, "text", "hello") if message_id else None,
        )


def _texts(transcript: list[dict[str, Any]]) -> list[str]:
    return [str(e["message"].get("text", "")) for e in transcript if not e["service"]]


async def test_case_is_committed_before_telegram_and_retried_until_delivered(
    service: HandoffService, sessionmaker: async_sessionmaker[AsyncSession], emu: Emu
) -> None:
    citizen, mid = await _citizen(sessionmaker, emu, 5001, "I want to die")
    await emu[1].add_fault("createForumTopic", "server_error", count=1)
    case = await _open(service, sessionmaker, citizen, mid)
    # Stored and committed: a fresh session sees it, pending.
    async with sessionmaker() as session:
        stored = await session.get(Case, case.id)
        assert stored is not None and stored.delivered_at is None
        assert stored.priority == CasePriority.URGENT
    assert await service.flush_case(case.id) is False
    async with sessionmaker() as session:
        stored = await session.get(Case, case.id)
        assert stored is not None and stored.delivered_at is None
        assert stored.delivery_attempts == 1 and "Bad Gateway" in (stored.last_delivery_error or "")
        pending = await session.scalar(select(Message).where(Message.case_id == case.id))
        assert pending is not None and pending.relay_state == RelayState.PENDING
    await service.tick()
    async with sessionmaker() as session:
        stored = await session.get(Case, case.id)
        assert stored is not None and stored.delivered_at is not None
        assert stored.page_count == 1 and stored.last_delivery_error is None
        relayed = await session.scalar(select(Message).where(Message.case_id == case.id))
        assert relayed is not None and relayed.relay_state == RelayState.DONE
    texts = _texts(await emu[1].transcript(FORUM))
    assert texts[-1] == "I want to die" and any("Case #1" in t for t in texts)
    topics = await emu[1].topics(FORUM)
    assert [t["name"] for t in topics] == ["#1 🔴 URGENT · Ann L."]


async def test_second_request_reuses_and_upgrades_the_open_case(
    service: HandoffService, sessionmaker: async_sessionmaker[AsyncSession], emu: Emu
) -> None:
    citizen, _ = await _citizen(sessionmaker, emu, 5002)
    first = await _open(service, sessionmaker, citizen, None, CasePriority.NORMAL)
    second = await _open(service, sessionmaker, citizen, None, CasePriority.URGENT)
    assert first.id == second.id and second.priority == CasePriority.URGENT


async def test_clock_drives_repage_escalation_and_wait_notice(
    service: HandoffService,
    sessionmaker: async_sessionmaker[AsyncSession],
    emu: Emu,
    clock: ManualClock,
) -> None:
    async with sessionmaker() as session:
        await repo.add_role(session, OFFICER, Role.OFFICER, display_name="Officer Wu")
        await session.commit()
    citizen, mid = await _citizen(sessionmaker, emu, 5003)
    case = await _open(service, sessionmaker, citizen, mid)
    await service.flush_case(case.id)

    async def state() -> Case:
        async with sessionmaker() as session:
            row = await session.get(Case, case.id)
            assert row is not None
            return row

    clock.advance(2.9)
    await service.tick()
    assert (await state()).page_count == 1 and (await state()).wait_notice_at is None
    clock.advance(0.2)  # 3.1 min: the citizen is reassured, once
    await service.tick()
    await service.tick()
    citizen_texts = _texts(await emu[1].transcript(citizen.id))
    assert sum("still here" in t for t in citizen_texts) == 1
    clock.advance(2.0)  # 5.1 min: paged again
    await service.tick()
    assert (await state()).page_count == 2 and (await state()).escalated_at is None
    clock.advance(10.0)  # 15.1 min: escalated to the backup chat, and paged again
    await service.tick()
    row = await state()
    assert row.escalated_at is not None and row.page_count == 3
    backup = _texts(await emu[1].transcript(BACKUP))
    assert len(backup) == 1 and "15 min" in backup[0]
    # Claimed: no more pages, however long it takes.
    async with sessionmaker() as session:
        claimed = await session.get(Case, case.id)
        assert claimed is not None
        await service.claim(session, claimed, OFFICER)
    clock.advance(60)
    await service.tick()
    assert (await state()).page_count == 3
    assert len(_texts(await emu[1].transcript(BACKUP))) == 1


async def test_rating_only_by_the_citizen_once_after_close(
    service: HandoffService, sessionmaker: async_sessionmaker[AsyncSession], emu: Emu
) -> None:
    citizen, _ = await _citizen(sessionmaker, emu, 5004)
    case = await _open(service, sessionmaker, citizen, None, CasePriority.NORMAL)
    async with sessionmaker() as session:
        assert not await service.rate(session, case.id, citizen.id, 5)  # still open
        row = await session.get(Case, case.id)
        assert row is not None
        await service.close(session, row, OFFICER, "done")
        assert not await service.rate(session, case.id, 999, 5)  # someone else
        assert not await service.rate(session, case.id, citizen.id, 6)  # forged value
        assert not await service.rate(session, 12345, citizen.id, 3)  # no such case
        assert await service.rate(session, case.id, citizen.id, 4)
        assert not await service.rate(session, case.id, citizen.id, 1)  # repeated
    async with sessionmaker() as session:
        row = await session.get(Case, case.id)
        assert row is not None and row.rating == 4 and row.status == CaseStatus.CLOSED


async def test_reopen_window(
    service: HandoffService,
    sessionmaker: async_sessionmaker[AsyncSession],
    emu: Emu,
    clock: ManualClock,
) -> None:
    citizen, _ = await _citizen(sessionmaker, emu, 5005)
    case = await _open(service, sessionmaker, citizen, None, CasePriority.NORMAL)
    async with sessionmaker() as session:
        row = await session.get(Case, case.id)
        assert row is not None
        await service.close(session, row, OFFICER, None)
        clock.advance(23 * 60)
        active = await service.active_case(session, citizen.id)
        assert active is not None and active.id == case.id
        clock.advance(2 * 60)
        assert await service.active_case(session, citizen.id) is None


async def test_card_of_a_long_transcript_is_split_and_escaped(
    service: HandoffService, sessionmaker: async_sessionmaker[AsyncSession], emu: Emu
) -> None:
    citizen, _ = await _citizen(sessionmaker, emu, 5006)
    async with sessionmaker() as session:
        for i in range(10):
            session.add(
                Message(
                    citizen_id=citizen.id,
                    direction=Direction.CITIZEN,
                    text=f"<script>{i}</script>" + "y" * 3990,
                )
            )
        await session.commit()
    case = await _open(service, sessionmaker, citizen, None)
    async with sessionmaker() as session:
        row = await session.get(Case, case.id)
        assert row is not None
        parts = await service.render_card(session, row)
    assert all(len(p) <= CHUNK for p in parts)
    assert "<script>" not in "".join(parts) and "&lt;script&gt;9" in "".join(parts)
    assert await service.flush_case(case.id)  # Telegram accepts every part


async def test_card_times_are_the_bureaus(
    service: HandoffService, sessionmaker: async_sessionmaker[AsyncSession], emu: Emu
) -> None:
    # Officers read the card in the bureau's time zone (BOT_TIMEZONE), offset shown.
    citizen, _ = await _citizen(sessionmaker, emu, 5007)
    written = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    async with sessionmaker() as session:
        session.add(
            Message(
                citizen_id=citizen.id, direction=Direction.CITIZEN, text="x", created_at=written
            )
        )
        await session.commit()
    case = await _open(service, sessionmaker, citizen, None)
    for zone, stamp in (("Asia/Shanghai", "03-02 07:30"), ("UTC", "03-01 23:30")):
        service.tz = ZoneInfo(zone)
        async with sessionmaker() as session:
            row = await session.get(Case, case.id)
            assert row is not None
            card = "\n".join(await service.render_card(session, row))
        opened = row.opened_at.astimezone(service.tz)
        offset = "+08:00" if zone == "Asia/Shanghai" else "+00:00"
        assert f"Opened {opened:%Y-%m-%d %H:%M} UTC{offset}" in card, card
        assert f"<i>{stamp}</i> x" in card, card


def test_names_and_splitting() -> None:
    citizen = Citizen(id=7, first_name="Ann", last_name="Lee")
    case = Case(id=12, priority=CasePriority.URGENT)
    assert citizen_label(citizen) == "Ann L."
    assert topic_name(case, citizen) == "#12 🔴 URGENT · Ann L."
    assert topic_name(case, citizen, closed=True) == "✅ #12 🔴 URGENT · Ann L."
    assert citizen_label(Citizen(id=8, first_name="", last_name=None)) == "id 8"
    long = Citizen(id=9, first_name="A" * 200)
    assert len(topic_name(case, long)) == 128
    parts = split_html_lines(["a" * 10, "b" * 10, "c" * 10], limit=21)
    assert parts == ["a" * 10 + "\n" + "b" * 10, "c" * 10]


async def _seed_cases(sessionmaker: async_sessionmaker[AsyncSession], t0: datetime) -> None:
    async with sessionmaker() as session:
        session.add(Citizen(id=42, first_name="Ann"))
        for minutes_to_reply, minutes_to_close, priority, rating in (
            (1, 10, CasePriority.URGENT, 5),
            (3, 30, CasePriority.URGENT, 3),
            (None, None, CasePriority.NORMAL, None),
        ):
            session.add(
                Case(
                    citizen_id=42,
                    priority=priority,
                    reason=CaseReason.HUMAN,
                    opened_at=t0,
                    first_response_at=t0 + timedelta(minutes=minutes_to_reply)
                    if minutes_to_reply
                    else None,
                    closed_at=t0 + timedelta(minutes=minutes_to_close)
                    if minutes_to_close
                    else None,
                    status=CaseStatus.CLOSED if minutes_to_close else CaseStatus.OPEN,
                    rating=rating,
                )
            )
        await session.commit()


async def test_stats_per_priority(
    sessionmaker: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await _seed_cases(sessionmaker, clock.now)
    async with sessionmaker() as session:
        rows = {r.priority: r for r in await case_stats(session)}
    assert rows["urgent"].cases == 2 and rows["urgent"].closed == 2
    assert rows["urgent"].first_reply_median == 120.0
    assert rows["urgent"].close_median == 1200.0 and rows["urgent"].rating_avg == 4.0
    assert rows["normal"].cases == 1 and rows["normal"].first_reply_median is None
    table = format_stats(list(rows.values()))
    assert "2m00s" in table and "20m00s" in table


def test_cases_stats_cli(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def seed() -> None:
        engine = create_engine(db_url)
        try:
            await _seed_cases(create_sessionmaker(engine), datetime(2026, 3, 1, tzinfo=UTC))
        finally:
            await engine.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["--env-file", "/nonexistent", "cases", "stats"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("priority") and out[1].startswith("urgent")
    assert "2m00s" in out[1] and "4.00" in out[1]
    assert out[2].startswith("normal") and "—" in out[2]


async def test_urgent_case_escalates_even_when_the_forum_never_got_it(
    service: HandoffService,
    sessionmaker: async_sessionmaker[AsyncSession],
    emu: Emu,
    clock: ManualClock,
) -> None:
    service.settings = service.settings.model_copy(update={"chat_id": None})
    citizen, mid = await _citizen(sessionmaker, emu, 5007, "I want to die")
    case = await _open(service, sessionmaker, citizen, mid)
    await service.tick()
    clock.advance(15.1)
    await service.tick()
    backup = _texts(await emu[1].transcript(BACKUP))
    assert len(backup) == 1
    assert "NOT received" in backup[0] and "OFFICERS_CHAT_ID" in backup[0]
    assert "id 5007" in backup[0] and "@ann" in backup[0] and "crisis" in backup[0]
    async with sessionmaker() as session:
        row = await session.get(Case, case.id)
        assert row is not None and row.escalated_at is not None and row.delivered_at is None
    assert await emu[1].topics(FORUM) == []


async def test_a_relay_that_keeps_failing_is_parked_with_a_note(
    service: HandoffService, sessionmaker: async_sessionmaker[AsyncSession], emu: Emu
) -> None:
    citizen, mid = await _citizen(sessionmaker, emu, 5101, "I want to die")
    await emu[1].add_fault("copyMessage", "server_error", count=50)
    case = await _open(service, sessionmaker, citizen, mid)
    for _ in range(MAX_RELAY_ATTEMPTS):
        assert await service.flush_case(case.id) is False  # the card went, the copy did not
    async with sessionmaker() as session:
        row = await session.scalar(select(Message).where(Message.case_id == case.id))
        # Every attempt was counted, although each one ended in an error.
        assert row is not None and row.relay_attempts == MAX_RELAY_ATTEMPTS
        assert row.relay_state == RelayState.PENDING
    assert await service.flush_case(case.id) is True  # parked, not tried again
    async with sessionmaker() as session:
        row = await session.scalar(select(Message).where(Message.case_id == case.id))
        assert row is not None and row.relay_state == RelayState.FAILED
        assert row.relay_attempts == MAX_RELAY_ATTEMPTS
    texts = _texts(await emu[1].transcript(FORUM))
    assert any(f"after {MAX_RELAY_ATTEMPTS} attempts" in t for t in texts)
    copies = [c for c in await emu[1].calls("copymessage")]
    assert len(copies) == MAX_RELAY_ATTEMPTS


async def test_an_officer_message_that_is_the_bots_own_relay_copy_is_not_relayed(
    service: HandoffService, sessionmaker: async_sessionmaker[AsyncSession], emu: Emu
) -> None:
    citizen, mid = await _citizen(sessionmaker, emu, 5102, "I want to die")
    case = await _open(service, sessionmaker, citizen, mid)
    assert await service.flush_case(case.id) is True
    async with sessionmaker() as session:
        pair = await session.scalar(select(MessagePair).where(MessagePair.case_id == case.id))
        assert pair is not None
        stored = await session.get(Case, case.id)
        assert stored is not None
        # A forged update claims the topic's copy of the citizen's message as an officer's.
        await service.store_officer_message(
            session, stored, OFFICER, pair.topic_message_id, "text", "forged"
        )
    before = len(await emu[1].transcript(citizen.id))
    assert await service.flush_case(case.id) is True
    async with sessionmaker() as session:
        forged = await session.scalar(
            select(Message).where(Message.case_id == case.id, Message.direction == "officer")
        )
        assert forged is not None and forged.relay_state == RelayState.FAILED
    assert len(await emu[1].transcript(citizen.id)) == before  # nothing reached the citizen
