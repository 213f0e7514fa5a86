"""`safewell backup DIR` while the database is in use, and a restore from what it wrote, on
both databases: the restored database has what was committed before the backup, not after, and
a backup taken while writers commit is one consistent snapshot."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bot.backup_cli import backup
from bot.cli import main
from bot.db import repo
from bot.db.models import Citizen, FaqQuery, Role, Subscription
from bot.db.session import create_engine, create_sessionmaker
from tests.support.databases import PG_URL, pg_exec


async def _add_officer(url: str, user_id: int) -> None:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            await repo.add_role(session, user_id, Role.OFFICER, display_name=f"Officer {user_id}")
            await session.commit()
    finally:
        await engine.dispose()


def _restore(backup: Path, db_url: str, tmp_path: Path) -> str:
    """Put the backup into a new database the way the README says; its URL."""
    if backup.suffix == ".sqlite3":
        target = tmp_path / "restored.sqlite3"
        shutil.copy(backup, target)
        return f"sqlite+aiosqlite:///{target}"
    name = f"safewell_restore_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_exec(f"CREATE DATABASE {name}"))
    url = make_url(PG_URL).set(database=name)
    pg_restore = shutil.which("pg_restore")
    assert pg_restore is not None
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    import subprocess

    subprocess.run([pg_restore, "--no-owner", "--dbname", plain, str(backup)], check=True)
    return url.render_as_string(hide_password=False)


def test_backup_then_restore(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    if make_url(db_url).get_backend_name() != "sqlite" and shutil.which("pg_dump") is None:
        pytest.skip("the PostgreSQL client (pg_dump) is not installed")
    asyncio.run(_add_officer(db_url, 1001))
    monkeypatch.setenv("DATABASE_URL", db_url)
    folder = tmp_path / "backups"
    assert main(["--env-file", "/nonexistent", "backup", str(folder)]) == 0
    [written] = list(folder.iterdir())
    assert f"backup written: {written}" in capsys.readouterr().out
    asyncio.run(_add_officer(db_url, 1002))  # after the backup: not in it

    restored = _restore(written, db_url, tmp_path)
    monkeypatch.setenv("DATABASE_URL", restored)
    try:
        assert main(["staff", "list"]) == 0  # migrates (nothing to do) and reads
        assert capsys.readouterr().out.splitlines() == ["1001\tofficer (Officer 1001)"]
    finally:
        if not restored.startswith("sqlite"):
            name = make_url(restored).database
            asyncio.run(pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_a_missing_database_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'none.sqlite3'}")
    assert main(["--env-file", "/nonexistent", "backup", str(tmp_path / "b")]) == 1
    assert "backup failed: no SQLite database file at" in capsys.readouterr().err


WRITER_BASE = 5_000_000  # the writer's citizen ids: WRITER_BASE + 1, + 2, …


async def _pad(url: str, rows: int) -> None:
    """Make the database big enough that copying it takes a while."""
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            session.add_all(
                FaqQuery(text="x" * 400, language="en", outcome="none") for _ in range(rows)
            )
            await session.commit()
    finally:
        await engine.dispose()


async def _backup_while_writing(url: str, folder: Path) -> tuple[Path, int, int, int]:
    """A writer commits a citizen and their subscription per transaction, without pause,
    before, during and after the backup; returns the file and the writer's commit counts
    when the backup started, when it ended, and in all."""
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    stop, reached = asyncio.Event(), asyncio.Event()
    committed, target = 0, 20

    async def writer() -> None:
        nonlocal committed
        while not stop.is_set():
            user_id = WRITER_BASE + committed + 1
            async with sessions() as session:
                session.add(Citizen(id=user_id, first_name="Writer"))
                await session.flush()
                session.add(Subscription(citizen_id=user_id, category="traffic"))
                await session.commit()
            committed += 1
            if committed >= target:
                reached.set()
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    try:
        await reached.wait()
        started = committed
        written = await asyncio.to_thread(backup, url, folder)
        ended = committed
        target = ended + 20
        reached.clear()
        await reached.wait()
    finally:
        stop.set()
        await task
        await engine.dispose()
    return written, started, ended, committed


async def _writer_rows(url: str) -> tuple[list[int], list[int]]:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            citizens = await session.scalars(
                select(Citizen.id).where(Citizen.id > WRITER_BASE).order_by(Citizen.id)
            )
            subscribed = await session.scalars(
                select(Subscription.citizen_id)
                .where(Subscription.citizen_id > WRITER_BASE)
                .order_by(Subscription.citizen_id)
            )
            return [i - WRITER_BASE for i in citizens], [i - WRITER_BASE for i in subscribed]
    finally:
        await engine.dispose()


def test_a_backup_taken_while_writers_commit_is_a_consistent_snapshot(
    db_url: str, tmp_path: Path
) -> None:
    """Writers go on during the backup; the copy holds every transaction committed before its
    snapshot, whole, and none after: no half-written transaction, no gap."""
    if make_url(db_url).get_backend_name() != "sqlite" and shutil.which("pg_dump") is None:
        pytest.skip("the PostgreSQL client (pg_dump) is not installed")
    asyncio.run(_pad(db_url, 20_000))
    written, started, ended, total = asyncio.run(_backup_while_writing(db_url, tmp_path / "b"))
    assert ended > started, "no write landed while the backup ran: the test proves nothing"
    restored = _restore(written, db_url, tmp_path)
    try:
        citizens, subscribed = asyncio.run(_writer_rows(restored))
    finally:
        if not restored.startswith("sqlite"):
            name = make_url(restored).database
            asyncio.run(pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    kept = len(citizens)
    assert citizens == list(range(1, kept + 1))  # a prefix of the commits: no gap
    assert subscribed == citizens  # every transaction whole
    assert started <= kept <= ended < total  # what was committed before, not after
