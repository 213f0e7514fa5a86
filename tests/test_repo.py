"""Repositories on both databases: upserts, redelivery detection, roles, aware timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.cases import repository as cases_repo
from bot.db import repo
from bot.db.models import (
    AuditLog,
    Case,
    CasePriority,
    CaseReason,
    Citizen,
    Direction,
    Message,
    Role,
)

Maker = async_sessionmaker[AsyncSession]


async def test_upsert_citizen_creates_then_refreshes(sessionmaker: Maker) -> None:
    big_id = 7_000_000_001  # Telegram ids exceed 32 bits
    async with sessionmaker() as s:
        c = await repo.upsert_citizen(
            s, big_id, first_name="Ann", last_name=None, username="ann", telegram_language="en"
        )
        c.language = "zh"
        await s.commit()
    async with sessionmaker() as s:
        c = await repo.upsert_citizen(
            s, big_id, first_name="Anne", last_name="Lee", username=None, telegram_language="en"
        )
        await s.commit()
    async with sessionmaker() as s:
        c = await s.get(Citizen, big_id)
        assert c is not None
        assert (c.first_name, c.last_name, c.language) == ("Anne", "Lee", "zh")
        assert c.created_at.tzinfo is not None and c.last_seen_at >= c.created_at


async def test_claim_update_detects_redelivery(sessionmaker: Maker) -> None:
    async with sessionmaker() as s:
        assert await repo.claim_updates(s, [10]) == 1
        await s.commit()
    async with sessionmaker() as s:
        assert await repo.claim_updates(s, [10]) == 0
        assert await repo.claim_updates(s, [10, 11]) == 1
        await s.commit()
    async with sessionmaker() as s:
        assert await repo.prune_processed_updates(s, timedelta(seconds=-1)) == 2
        await s.commit()


async def test_roles(sessionmaker: Maker) -> None:
    async with sessionmaker() as s:
        assert await repo.add_role(s, 5, Role.OFFICER, display_name="Officer Wang") is True
        assert await repo.add_role(s, 5, Role.OFFICER) is False
        await repo.add_role(s, 5, Role.STAFF)
        await repo.add_role(s, 6, Role.ADMIN)
        await s.commit()
    async with sessionmaker() as s:
        assert (await repo.identify(s, 5))[0] == {Role.OFFICER, Role.STAFF}
        assert [r.user_id for r in await repo.list_staff(s, Role.ADMIN)] == [6]
        assert await repo.remove_role(s, 5, Role.STAFF) == 1
        assert await repo.remove_role(s, 6) == 1
        await s.commit()
        assert (await repo.identify(s, 5))[0] == {Role.OFFICER}
        assert await repo.identify(s, 6) == (set(), None)


async def test_a_citizens_roles_come_with_the_citizen(sessionmaker: Maker) -> None:
    from sqlalchemy import event

    async with sessionmaker() as s:
        for user_id in (7, 8):
            await repo.upsert_citizen(
                s, user_id, first_name="A", last_name=None, username=None, telegram_language="en"
            )
        await repo.add_role(s, 7, Role.OFFICER)
        await repo.add_role(s, 7, Role.ADMIN)
        await s.commit()
    statements: list[str] = []
    engine = sessionmaker.kw["bind"].sync_engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        async with sessionmaker() as s:
            roles, seven = await repo.identify(s, 7)
            assert roles == {Role.OFFICER, Role.ADMIN} and seven is not None and seven.id == 7
            roles, eight = await repo.identify(s, 8)
            assert roles == set() and eight is not None
            read = len(statements)
            citizen = await repo.upsert_citizen(
                s, 8, first_name="A", last_name=None, username=None, telegram_language="en"
            )
            assert citizen.id == 8 and len(statements) == read  # already in the session
    finally:
        event.remove(engine, "before_cursor_execute", listener)


async def test_the_identity_read_says_whether_the_citizen_ever_had_a_case(
    sessionmaker: Maker,
) -> None:
    """A question from a citizen who never had a case needs no look for their open one; one
    who has (or just got) a case is always looked up."""
    async with sessionmaker() as s:
        for user_id in (21, 22):
            await repo.upsert_citizen(
                s, user_id, first_name="A", last_name=None, username=None, telegram_language="en"
            )
        s.add(
            Case(
                citizen_id=22,
                priority=CasePriority.NORMAL,
                status="closed",
                reason=CaseReason.HUMAN,
                opened_at=datetime.now(UTC),
            )
        )
        await s.commit()
    async with sessionmaker() as s:
        assert not repo.never_had_case(s, 21)  # nothing read yet: nothing is assumed
        await repo.identify_with_state(s, 21, "fsm:21")
        assert repo.never_had_case(s, 21)
        assert not repo.never_had_case(s, 22)  # another user's identity says nothing of 22
        repo.case_opened(s, 21)
        assert not repo.never_had_case(s, 21)
    async with sessionmaker() as s:
        await repo.identify_with_state(s, 22, "fsm:22")
        assert not repo.never_had_case(s, 22)  # a closed case counts
    async with sessionmaker() as s:
        await repo.identify(s, 22)
        assert not repo.never_had_case(s, 22)


async def test_an_update_that_only_reads_starts_no_transaction_on_postgresql(
    engine: AsyncEngine, sessionmaker: Maker
) -> None:
    """The identity read and the recent texts run outside any transaction on PostgreSQL (no
    BEGIN and COMMIT round trips for a question that only reads); what they load is the
    session's own, and once the session has written, reads see its writes."""
    postgres = engine.dialect.name == "postgresql"
    async with sessionmaker() as s:
        await repo.upsert_citizen(
            s, 31, first_name="A", last_name=None, username=None, telegram_language="en"
        )
        await s.commit()
    begun: list[str | None] = []

    def on_begin(conn: Connection) -> None:
        begun.append(conn.get_execution_options().get("isolation_level"))

    event.listen(engine.sync_engine, "begin", on_begin)
    try:
        since = datetime.now(UTC) - timedelta(minutes=5)
        async with sessionmaker() as s:
            await repo.identify_with_state(s, 31, "fsm:31")
            _roles, citizen = await repo.identify(s, 31)
            assert await cases_repo.recent_texts(s, 31, since, 5) == []
            assert citizen is not None and citizen in s
            if postgres:
                assert begun == ["AUTOCOMMIT", "AUTOCOMMIT"]
            else:
                assert begun == [None]  # SQLite: in the session's own transaction
            citizen.language = "zh"  # the loaded row is the session's: its change is written
            s.add(Message(citizen_id=31, direction=Direction.CITIZEN, text="help"))
            await s.flush()
            # Inside the transaction, the read sees what the session wrote.
            assert await cases_repo.recent_texts(s, 31, since, 5) == ["help"]
            await s.commit()
    finally:
        event.remove(engine.sync_engine, "begin", on_begin)
    async with sessionmaker() as s:
        row = await s.get(Citizen, 31)
        assert row is not None and row.language == "zh"


async def test_a_new_citizen_is_written_and_loaded_in_one_statement(
    engine: AsyncEngine, sessionmaker: Maker
) -> None:
    """First contact: the identity read found no row, so the upsert neither looks again nor
    reads the row back (INSERT ... RETURNING)."""
    statements: list[str] = []

    def on_execute(*args: object) -> None:
        statements.append(str(args[2]).split()[0])

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        async with sessionmaker() as s:
            await repo.identify_with_state(s, 41, "fsm:41")
            del statements[:]
            citizen = await repo.upsert_citizen(
                s, 41, first_name="B", last_name=None, username="b", telegram_language="en"
            )
            assert statements == ["INSERT"]
            assert (await repo.identify(s, 41))[1] is citizen and citizen.username == "b"
            await s.commit()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)


async def test_the_identity_read_brings_the_last_texts_the_triage_reads_together(
    engine: AsyncEngine, sessionmaker: Maker
) -> None:
    """The two last texts outside a case come with the identity: the triage's look at them
    costs no statement; what is outside the window, in a case, or not yet written is not
    taken from there."""
    now = datetime.now(UTC)
    async with sessionmaker() as s:
        await repo.upsert_citizen(
            s, 51, first_name="C", last_name=None, username=None, telegram_language="en"
        )
        case = Case(
            citizen_id=51,
            priority=CasePriority.NORMAL,
            status="closed",
            reason=CaseReason.HUMAN,
            opened_at=now,
        )
        s.add(case)
        await s.flush()
        for text, minutes, case_id in (
            ("long ago", 30, None),
            ("in the case", 20, case.id),
            ("I am scared", 4, None),
            ("nobody listens", 1, None),
        ):
            s.add(
                Message(
                    citizen_id=51,
                    case_id=case_id,
                    direction=Direction.CITIZEN,
                    text=text,
                    created_at=now - timedelta(minutes=minutes),
                )
            )
            await s.flush()
        await s.commit()
    statements: list[str] = []

    def on_execute(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        async with sessionmaker() as s:
            await repo.identify_with_state(s, 51, "fsm:51")
            del statements[:]
            window = now - timedelta(minutes=5)
            assert await cases_repo.recent_texts(s, 51, window, 2) == [
                "I am scared",
                "nobody listens",
            ]
            assert await cases_repo.recent_texts(s, 51, now - timedelta(minutes=2), 2) == [
                "nobody listens"
            ]
            assert await cases_repo.recent_texts(s, 51, window, 1) == ["nobody listens"]
            assert statements == []
            # More than it brought, or a message of this update not written yet: asked.
            assert len(await cases_repo.recent_texts(s, 51, now - timedelta(hours=1), 3)) == 3
            s.add(Message(citizen_id=51, direction=Direction.CITIZEN, text="now"))
            assert await cases_repo.recent_texts(s, 51, window, 2) == ["nobody listens", "now"]
            assert len(statements) >= 2
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)


async def test_datetimes_round_trip_as_utc(sessionmaker: Maker) -> None:
    plus8 = datetime(2026, 11, 21, 20, 0, tzinfo=UTC) + timedelta(hours=0)
    async with sessionmaker() as s:
        await repo.upsert_citizen(
            s, 1, first_name="A", last_name=None, username=None, telegram_language=None
        )
        s.add(
            Case(
                citizen_id=1,
                priority=CasePriority.URGENT,
                reason=CaseReason.CRISIS,
                opened_at=plus8,
            )
        )
        repo.audit(s, "case.open", actor_id=None, target_type="case", target_id=1, why="test")
        await s.commit()
    async with sessionmaker() as s:
        case = (await s.scalars(select(Case))).one()
        assert case.opened_at == plus8 and case.opened_at.tzinfo is not None
        entry = (await s.scalars(select(AuditLog))).one()
        assert entry.details == {"why": "test"} and entry.target_id == "1"


async def test_naive_datetimes_are_refused(sessionmaker: Maker) -> None:
    async with sessionmaker() as s:
        await repo.upsert_citizen(
            s, 1, first_name="A", last_name=None, username=None, telegram_language=None
        )
        s.add(
            Case(citizen_id=1, priority="urgent", reason="crisis", opened_at=datetime(2026, 1, 1))
        )
        with pytest.raises(Exception, match="naive datetime"):
            await s.commit()


async def test_check_constraints_refuse_unknown_states(sessionmaker: Maker) -> None:
    async with sessionmaker() as s:
        await repo.upsert_citizen(
            s, 1, first_name="A", last_name=None, username=None, telegram_language=None
        )
        s.add(Case(citizen_id=1, priority="whenever", reason="crisis"))
        with pytest.raises(Exception, match=r"(?i)check"):
            await s.commit()
