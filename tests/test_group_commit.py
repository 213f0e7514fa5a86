"""Updates that end together leave the inbox in one commit, each only once its rows are in."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import repo
from bot.db.models import (
    Citizen,
    Direction,
    FaqQuery,
    InboxUpdate,
    Message,
    ProcessedUpdate,
    Subscription,
    random_id,
)
from bot.db.session import detachable, end_reading, wrote
from bot.intake.handled import GroupCommit

Maker = async_sessionmaker[AsyncSession]


async def _inbox(sessionmaker: Maker, update_ids: list[int]) -> None:
    async with sessionmaker() as session:
        session.add(Citizen(id=42, first_name="Ann"))
        session.add_all(InboxUpdate(update_id=u, chat_id=42, payload="{}") for u in update_ids)
        await session.commit()


def _rows(update_id: int, citizen_id: int = 42) -> list[object]:
    return [
        FaqQuery(
            id=random_id(),
            citizen_id=citizen_id,
            text=f"q{update_id}",
            language="en",
            outcome="none",
        ),
        Message(
            citizen_id=citizen_id,
            direction=Direction.CITIZEN,
            content_type="text",
            text=f"m{update_id}",
            telegram_message_id=update_id,
        ),
    ]


def _commits(sessionmaker: Maker) -> list[int]:
    seen: list[int] = []
    engine = sessionmaker.kw["bind"]
    event.listen(engine.sync_engine, "commit", lambda _conn: seen.append(1))
    return seen


async def _counts(sessionmaker: Maker) -> tuple[int, int, int, int]:
    async with sessionmaker() as session:
        return tuple(  # type: ignore[return-value]
            [
                await session.scalar(select(func.count()).select_from(table))
                for table in (InboxUpdate, ProcessedUpdate, FaqQuery, Message)
            ]
        )


async def test_updates_ending_together_share_one_commit(sessionmaker: Maker) -> None:
    ids = list(range(1, 31))
    await _inbox(sessionmaker, ids)
    group = GroupCommit(sessionmaker)
    commits = _commits(sessionmaker)
    await asyncio.gather(*(group.end(u, _rows(u)) for u in ids))
    assert await _counts(sessionmaker) == (0, 30, 30, 30)
    # All thirty ended before the writer's turn came: one transaction for them all.
    assert len(commits) == 1


async def test_one_bad_update_does_not_fail_the_others(sessionmaker: Maker) -> None:
    await _inbox(sessionmaker, [1, 2, 3, 4])
    group = GroupCommit(sessionmaker)
    results = await asyncio.gather(
        group.end(1, _rows(1)),
        group.end(2, _rows(2)),
        group.end(3, _rows(3, citizen_id=999)),  # no such citizen: the foreign key refuses
        group.end(4, _rows(4)),
        return_exceptions=True,
    )
    assert [r is None for r in results] == [True, True, False, True]
    async with sessionmaker() as session:
        left = (await session.scalars(select(InboxUpdate.update_id))).all()
        texts = set((await session.scalars(select(Message.text))).all())
    assert left == [3]  # still in the inbox: handled again later
    assert texts == {"m1", "m2", "m4"}


async def test_the_database_away_fails_every_waiting_update(sessionmaker: Maker) -> None:
    await _inbox(sessionmaker, [1, 2])
    engine = sessionmaker.kw["bind"]
    broken = async_sessionmaker(engine.execution_options(), expire_on_commit=False)

    def refuse(*_args: object) -> None:
        raise ConnectionError("database away")

    event.listen(engine.sync_engine, "before_cursor_execute", refuse)
    try:
        group = GroupCommit(broken)
        results = await asyncio.gather(
            group.end(1, _rows(1)), group.end(2, _rows(2)), return_exceptions=True
        )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", refuse)
    assert all(isinstance(r, Exception) for r in results)
    assert await _counts(sessionmaker) == (2, 0, 0, 0)
    # Written again later (the intake's retry), with the ids the database gives then.
    group = GroupCommit(sessionmaker)
    rows = _rows(1)
    await group.end(1, rows)
    assert await _counts(sessionmaker) == (1, 1, 1, 1)


async def test_a_session_that_only_read_ends_without_writing_its_new_rows(
    sessionmaker: Maker,
) -> None:
    await _inbox(sessionmaker, [1])
    async with sessionmaker() as session:
        citizen = await session.get(Citizen, 42)
        assert citizen is not None and not wrote(session)
        session.add_all(_rows(1))
        assert not wrote(session) and all(map(detachable, session.new))
        rows = await end_reading(session)
        assert len(rows) == 2 and not session.new
    assert await _counts(sessionmaker) == (1, 0, 0, 0)  # nothing written yet
    async with sessionmaker() as session:
        await repo.claim_updates(session, [7])
        assert wrote(session)  # a statement that writes
        await session.commit()
        assert not wrote(session)
        citizen = await session.get(Citizen, 42)
        assert citizen is not None
        citizen.first_name = "Anne"
        assert wrote(session)  # a changed row


@pytest.mark.parametrize("related", [True, False])
async def test_rows_pointing_at_loaded_objects_are_not_detached(
    sessionmaker: Maker, related: bool
) -> None:
    await _inbox(sessionmaker, [1])
    async with sessionmaker() as session:
        citizen = await session.get(Citizen, 42)
        assert citizen is not None
        row = Subscription(category="traffic")
        if related:
            row.citizen = citizen  # pulled along into any session the row is added to
        else:
            row.citizen_id = 42
        session.add(row)
        assert detachable(row) is not related
