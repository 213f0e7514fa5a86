"""`safewell alert import` as an operator runs it: one line and a non-zero status for a file
it refuses, never a traceback."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.db.models import utcnow
from tests.support import KNOWLEDGE
from tests.support.alerts import cap_sample

# Alembic's INFO lines are not what an operator reads: the command's own output is.
QUIET = ["--env-file", "/nonexistent", "--log-level", "WARNING"]
Import = Callable[[bytes], tuple[int, str, str]]


def cap_time(hours: float) -> str:
    return (utcnow() + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@pytest.fixture
def run(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Import:
    """Import bytes as a file with `safewell alert import`: status, stdout, stderr."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("FAQ_KNOWLEDGE_DIR", str(KNOWLEDGE))

    def import_file(content: bytes) -> tuple[int, str, str]:
        path = tmp_path / "alert.xml"
        path.write_bytes(content)
        status = main([*QUIET, "alert", "import", str(path)])
        out = capsys.readouterr()
        return status, out.out, out.err

    return import_file


def test_utf16_is_imported(run: Import) -> None:
    text = cap_sample("amber_alert.xml").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    status, out, err = run(text.encode("utf-16"))
    assert status == 0, err
    assert "pending_approval" in out


@pytest.mark.parametrize(
    ("sent", "expires", "reason"),
    [
        (None, "9999-12-31T23:00:00-12:00", "is beyond the range of date-times"),
        (cap_time(49), cap_time(48), "is not after <sent>"),
    ],
    ids=["year-9999-at-minus-12", "expires-before-sent"],
)
def test_impossible_expiry_is_one_line(
    run: Import, sent: str | None, expires: str, reason: str
) -> None:
    text = re.sub(
        r"<expires>[^<]+", f"<expires>{expires}", cap_sample("amber_alert.xml").decode(), count=1
    )
    if sent is not None:
        text = re.sub(r"<sent>[^<]+", f"<sent>{sent}", text, count=1)
    status, out, err = run(text.encode())
    assert status == 1 and out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "invalid CAP" in lines[0] and reason in lines[0]


def test_unreadable_file_is_one_line(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("FAQ_KNOWLEDGE_DIR", str(KNOWLEDGE))
    status = main([*QUIET, "alert", "import", "/nonexistent/alert.xml"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.strip() == "/nonexistent/alert.xml: cannot read: No such file or directory"


def test_outside_the_project_folder_is_one_line_naming_the_setting(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no knowledge/ here
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("FAQ_KNOWLEDGE_DIR", raising=False)
    (tmp_path / "alert.xml").write_bytes(cap_sample("amber_alert.xml"))
    status = main(["--env-file", "/nonexistent", "alert", "import", "alert.xml"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1, lines
    assert "FAQ_KNOWLEDGE_DIR" in lines[0] and str(tmp_path / "knowledge") in lines[0]


def test_a_tool_does_not_print_the_schema_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A fresh database is migrated first; at the default log level that is not announced.
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    monkeypatch.setenv("FAQ_KNOWLEDGE_DIR", str(KNOWLEDGE))
    assert main(["--env-file", "/nonexistent", "alert", "list"]) == 0
    captured = capsys.readouterr()
    assert "Running upgrade" not in captured.err, captured.err
    assert (tmp_path / "fresh.db").exists()  # it did migrate
