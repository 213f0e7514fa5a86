"""`safewell staff add|remove|list` against a real database, as an admin runs it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.db.models import AuditLog
from bot.db.session import create_engine, create_sessionmaker


async def _audit_actions(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as s:
            return list((await s.scalars(select(AuditLog.action).order_by(AuditLog.id))).all())
    finally:
        await engine.dispose()


def test_staff_lifecycle(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["--env-file", "/nonexistent", "staff", "list"]) == 0
    assert "no staff members" in capsys.readouterr().out
    assert main(["staff", "add", "1001", "--role", "officer", "--name", "Officer Li"]) == 0
    assert "1001 is now officer" in capsys.readouterr().out
    assert main(["staff", "add", "1001", "--role", "officer"]) == 0
    assert "already was officer" in capsys.readouterr().out
    assert main(["staff", "add", "2002", "--role", "staff"]) == 0
    capsys.readouterr()
    assert main(["staff", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["1001\tofficer (Officer Li)", "2002\tstaff"]
    assert main(["staff", "remove", "1001", "--role", "admin"]) == 1
    assert main(["staff", "remove", "1001"]) == 0
    capsys.readouterr()
    assert main(["staff", "list", "--role", "officer"]) == 0
    assert "no staff members" in capsys.readouterr().out


def test_staff_add_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["staff", "add", "-5", "--role", "officer"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["staff", "add", "5", "--role", "chief"])
    assert "invalid choice" in capsys.readouterr().err
