"""`safewell backup DIR` while the database is in use, and a restore from what it wrote, on
both databases: the restored database has what was committed before the backup, not after."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.cli import main
from bot.db import repo
from bot.db.models import Role
from bot.db.session import create_engine, create_sessionmaker
from tests.conftest import PG_URL, _pg_exec


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
    asyncio.run(_pg_exec(f"CREATE DATABASE {name}"))
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
            asyncio.run(_pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_a_missing_database_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'none.sqlite3'}")
    assert main(["--env-file", "/nonexistent", "backup", str(tmp_path / "b")]) == 1
    assert "backup failed: no SQLite database file at" in capsys.readouterr().err
