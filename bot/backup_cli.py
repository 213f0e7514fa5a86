"""`safewell backup DIR`: a consistent copy of the database, taken while the bot runs.

SQLite: SQLite's online backup API copies the database page by page under its own locking
(writers go on), then the copy is checked with `PRAGMA integrity_check`. PostgreSQL: `pg_dump`
in its custom format (a consistent snapshot; the PostgreSQL client must be installed), restored
with `pg_restore`. The README's Operations section has the restore steps.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bot.config import Settings


class BackupError(Exception):
    """The backup could not be taken; the message says why."""


def backup(database_url: str, folder: Path, now: datetime | None = None) -> Path:
    """Take a backup into `folder`; the file written."""
    url = make_url(database_url)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == "sqlite":
        source = Path(url.database or "")
        if not url.database or url.database == ":memory:" or not source.is_file():
            raise BackupError(f"no SQLite database file at {source}")
        target = folder / f"safewell-{stamp}.sqlite3"
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            # One self-contained file (the source's WAL mode would leave -wal/-shm beside it).
            dst.execute("PRAGMA journal_mode=DELETE")
            checked = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
            src.close()
        if checked != "ok":
            raise BackupError(f"the copy failed its integrity check: {checked}")
        return target
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError("pg_dump not found: install the PostgreSQL client (postgresql-client)")
    target = folder / f"safewell-{stamp}.dump"
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    done = subprocess.run(
        [pg_dump, "--format=custom", "--no-owner", "--file", str(target), plain],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        target.unlink(missing_ok=True)
        password = url.password
        why = done.stderr.strip()
        if password:
            why = why.replace(str(password), "[REDACTED]")
        raise BackupError(f"pg_dump failed: {why}")
    return target


def _cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    try:
        path = backup(settings.database.url, Path(args.folder))
    except (BackupError, OSError, sqlite3.Error) as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"backup written: {path} ({path.stat().st_size:,} bytes)")
    return 0


def add_commands(sub: Any) -> None:
    """Register `backup DIR` on the CLI's subparsers."""
    p = sub.add_parser("backup", help="a consistent copy of the database, while the bot runs")
    p.add_argument("folder", help="where to write it (created if missing)")
    p.set_defaults(func=_cmd_backup, uses_knowledge=False)
