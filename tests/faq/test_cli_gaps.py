"""``safewell knowledge`` with settings: FAQ_KNOWLEDGE_DIR default and ``knowledge gaps``."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import Settings
from bot.db.models import FaqQuery, utcnow
from bot.db.session import create_engine, create_sessionmaker
from bot.faq.cli import add_commands, cmd_gaps, cmd_test


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="safewell")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def settings_for(tmp_path: Path, **groups: dict[str, object]) -> Settings:
    # No .env: only what the test passes counts.
    return Settings(env_file=None, **groups)


def test_knowledge_dir_comes_from_settings(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Run from a directory without ./knowledge: only FAQ_KNOWLEDGE_DIR can find the files.
    monkeypatch.chdir(tmp_path)
    settings = settings_for(tmp_path, faq={"knowledge_dir": data_dir / "good"})
    args = parse("knowledge", "check")
    assert args.func(args, settings) == 0
    assert "3 entries" in capsys.readouterr().out
    # --knowledge still wins over the setting.
    args = parse("knowledge", "check", "--knowledge", str(data_dir / "problems"))
    assert args.func(args, settings) == 1


def test_thresholds_come_from_settings(data_dir: Path, tmp_path: Path) -> None:
    args = parse("knowledge", "test", "--knowledge", str(data_dir / "good"), "--min-p1", "0")
    strict = settings_for(tmp_path, faq={"answer_threshold": 1.0, "suggest_threshold": 1.0})
    out = io.StringIO()
    assert cmd_test(args, out, settings=strict) == 0
    # Nothing reaches a score of 1.0 with a margin, so nothing is answered or suggested.
    assert "outcomes: answer 0, suggest 0," in out.getvalue()
    out = io.StringIO()
    assert cmd_test(args, out) == 0
    assert "outcomes: answer 0, suggest 0," not in out.getvalue()


async def _seed(url: str) -> None:
    engine = create_engine(url)
    now = utcnow()
    rows = [
        FaqQuery(text="where can I walk my dog at night", language="en", outcome="none"),
        FaqQuery(text="where can I walk my dog at night?", language="en", outcome="none"),
        FaqQuery(text="can I walk my dog at night", language="en", outcome="none"),
        FaqQuery(text="摩托车年检在哪里", language="zh", outcome="none"),
        FaqQuery(
            text="how do I pay a fine",
            language="en",
            outcome="answer",
            entry_id="traffic-fine",
            feedback="down",
        ),
        # Answered and liked: not a gap.
        FaqQuery(text="lost passport", language="en", outcome="answer", feedback="up"),
        # Older than the window.
        FaqQuery(
            text="fishing licence",
            language="en",
            outcome="none",
            created_at=now - timedelta(days=90),
        ),
    ]
    try:
        async with create_sessionmaker(engine)() as session:
            session.add_all(rows)
            await session.commit()
    finally:
        await engine.dispose()


def test_gaps_groups_recent_questions(db_url: str, tmp_path: Path) -> None:
    asyncio.run(_seed(db_url))
    settings = settings_for(tmp_path, database={"url": db_url})
    out = io.StringIO()
    args = parse("knowledge", "gaps", "--json")
    assert cmd_gaps(args, settings, out) == 0
    groups = json.loads(out.getvalue())
    by_example = {g["example"]: g for g in groups}
    dog = next(g for g in groups if "dog" in g["example"])
    assert dog["count"] == 3 and dog["unanswered"] == 3
    assert groups[0] is dog  # biggest first
    fine = by_example["how do I pay a fine"]
    assert fine["disliked"] == 1 and fine["entries"] == {"traffic-fine": 1}
    assert "摩托车年检在哪里" in by_example
    assert "lost passport" not in by_example and "fishing licence" not in by_example

    out = io.StringIO()
    assert cmd_gaps(parse("knowledge", "gaps", "--days", "365", "--limit", "1"), settings, out) == 0
    text = out.getvalue().splitlines()
    assert text[0] == "4 group(s) in the last 365 day(s); showing 1"
    assert text[1].split()[0] == "3" and "dog" in text[1]


def test_gaps_migrates_an_empty_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.sqlite3'}"
    args = parse("knowledge", "gaps")
    # Through the parser's func, as the safewell CLI calls it.
    assert args.func(args, settings_for(tmp_path, database={"url": url})) == 0
    assert capsys.readouterr().out.startswith("0 group(s) in the last 30 day(s)")


def test_gaps_needs_settings_and_sane_options(tmp_path: Path) -> None:
    assert cmd_gaps(parse("knowledge", "gaps"), None, io.StringIO()) == 2
    settings = settings_for(tmp_path, database={"url": "sqlite+aiosqlite:///x.db"})
    assert cmd_gaps(parse("knowledge", "gaps", "--days", "0"), settings, io.StringIO()) == 2
