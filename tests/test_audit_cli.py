"""`safewell audit export`: a period of the audit log as CSV or JSON lines, on both databases."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import main
from bot.db import repo
from bot.db.session import create_engine, create_sessionmaker


async def _write(url: str) -> None:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            # BOT_TIMEZONE is Asia/Shanghai (UTC+8): 2026-03-01 there starts at 02-28 16:00 UTC.
            for at, action in [
                (datetime(2026, 2, 28, 15, 59, tzinfo=UTC), "before"),
                (datetime(2026, 2, 28, 16, 0, tzinfo=UTC), "first"),
                (datetime(2026, 3, 2, 15, 59, tzinfo=UTC), "last"),
                (datetime(2026, 3, 2, 16, 0, tzinfo=UTC), "after"),
            ]:
                repo.audit(
                    session,
                    action,
                    actor_id=7,
                    target_type="case",
                    target_id=3,
                    at=at,
                    note='引号"，逗号,',
                )
            await session.commit()
    finally:
        await engine.dispose()


def test_export_a_period_in_both_formats(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("BOT_TIMEZONE", "Asia/Shanghai")
    asyncio.run(_write(db_url))
    args = ["--env-file", "/nonexistent", "audit", "export", "--from", "2026-03-01"]
    assert main([*args, "--to", "2026-03-02"]) == 0
    captured = capsys.readouterr()
    table = list(csv.DictReader(io.StringIO(captured.out)))
    assert [r["action"] for r in table] == ["first", "last"]
    assert json.loads(table[0]["details"]) == {"note": '引号"，逗号,'}
    assert table[0]["at"].startswith("2026-02-28T16:00:00") and table[0]["actor_id"] == "7"
    assert "2 audit row(s) exported" in captured.err

    out = tmp_path / "audit.jsonl"
    assert main([*args, "--to", "2026-03-01", "--format", "jsonl", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["action"] for line in lines] == ["first"]
    assert lines[0]["target_type"] == "case" and lines[0]["target_id"] == "3"

    # Each export is itself on record.
    assert main([*args, "--to", "2099-12-31", "--format", "jsonl"]) == 0
    exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    records = [e for e in exported if e["action"] == "audit.export"]
    assert [r["details"]["rows"] for r in records] == [2, 1]


def test_bad_dates_are_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["audit", "export", "--from", "March 1", "--to", "2026-03-02"])
    assert info.value.code == 2
    assert "not a date (YYYY-MM-DD)" in capsys.readouterr().err
    assert main(["audit", "export", "--from", "2026-03-02", "--to", "2026-03-01"]) == 2
    assert "the period ends before it starts" in capsys.readouterr().err
