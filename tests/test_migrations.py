"""Migrations run both ways on SQLite and PostgreSQL and agree with the models."""

from __future__ import annotations

import asyncio
import os
import sys
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
