"""Migrations run both ways on SQLite and PostgreSQL and agree with the models."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import DBAPIError

from bot.db.migrate import downgrade_async, upgrade_async
from bot.db.models import AuditLog, Base
from bot.db.session import create_engine


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    await upgrade_async(empty_db_url)
    tables = await _tables(empty_db_url)
    assert {
        "citizens",
        "cases",
        "message_pairs",
        "alerts",
        "alert_deliveries",
        "audit_log",
    } <= tables
    await downgrade_async(empty_db_url)
    assert await _tables(empty_db_url) <= {"alembic_version"}
    await upgrade_async(empty_db_url)
    assert await _tables(empty_db_url) == tables


async def test_models_and_migrations_agree(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == [], f"models differ from migrations: {diff}"


async def test_audit_log_is_append_only(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    async with sessionmaker() as session:
        session.add(AuditLog(action="test.action", actor_id=1))
        await session.commit()
    for stmt in (sa.update(AuditLog).values(action="rewritten"), sa.delete(AuditLog)):
        async with sessionmaker() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(stmt)
    async with sessionmaker() as session:
        assert (await session.scalars(sa.select(AuditLog.action))).all() == ["test.action"]


REPO_ROOT = Path(__file__).resolve().parents[1]


async def test_processes_starting_together_migrate_one_at_a_time(empty_db_url: str) -> None:
    # N `safewell run` processes start at once and each upgrades first: none may fail on a
    # table another is creating (PostgreSQL takes an advisory lock; SQLite locks the file).
    # Processes, not threads: alembic's context is one per process.
    repo_root = REPO_ROOT
    code = "import sys; from bot.db.migrate import upgrade; upgrade(sys.argv[1])"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            empty_db_url,
            cwd=repo_root,
            env={**os.environ, "PYTHONPATH": str(repo_root)},
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for proc in procs:
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-2000:]
    assert "work_claims" in await _tables(empty_db_url)


async def test_faq_query_ids_chosen_by_the_bot_survive_a_downgrade(empty_db_url: str) -> None:
    # 0004: ids are random 63-bit numbers (PostgreSQL's column widened to BIGINT); going back
    # renumbers them in order so they fit the old 32-bit column and its sequence again.
    from bot.db.models import FaqQuery, random_id
    from bot.db.session import create_sessionmaker

    await upgrade_async(empty_db_url)
    engine = create_engine(empty_db_url)
    sessions = create_sessionmaker(engine)
    try:
        ids = [random_id() for _ in range(3)]
        async with sessions() as session:
            # Renumbered in the order they were asked (created_at, then id): three rows
            # flushed together may share a microsecond, so each is given its own second.
            first = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
            for n, query_id in enumerate(ids):
                asked = first + timedelta(seconds=n)
                session.add(
                    FaqQuery(
                        id=query_id, text=f"q{n}", language="en", outcome="none", created_at=asked
                    )
                )
            await session.commit()
        async with sessions() as session:
            assert sorted((await session.scalars(sa.select(FaqQuery.id))).all()) == sorted(ids)
    finally:
        await engine.dispose()
    await downgrade_async(empty_db_url, "0003")
    engine = create_engine(empty_db_url)
    try:
        async with engine.begin() as conn:
            rows = (await conn.execute(sa.text("SELECT id, text FROM faq_queries"))).all()
            if engine.dialect.name == "postgresql":
                assert sorted(rows) == [(1, "q0"), (2, "q1"), (3, "q2")]
                # The sequence is back and goes on after them.
                await conn.execute(
                    sa.text(
                        "INSERT INTO faq_queries (text, language, outcome, created_at) "
                        "VALUES ('q3', 'en', 'none', now())"
                    )
                )
                assert (await conn.scalar(sa.text("SELECT max(id) FROM faq_queries"))) == 4
            else:
                assert sorted(text for _, text in rows) == ["q0", "q1", "q2"]
    finally:
        await engine.dispose()
    await upgrade_async(empty_db_url)
