"""Shared set-up of the alert benchmarks: a seeded database and an emulator process."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts import service
from bot.db.migrate import upgrade_async

REPO = Path(__file__).resolve().parents[1]
FIRST_ID = 1_000_000
PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CONTENT = {
    "en": {
        "headline": "Benchmark: road closed",
        "description": "Bridge works on the ring road.",
        "instruction": "Use the tunnel.",
    }
}


async def queue_alert(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """A Moderate traffic alert for every district, submitted without approval; its id."""
    async with sessionmaker() as session:
        draft = service.AlertDraft(category="traffic", severity="Moderate", content=CONTENT)
        alert = await service.create_draft(session, draft, author_id=1)
        await service.submit(session, alert.id, actor_id=1, approval_severities=[])
        await session.commit()
        return alert.id


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default)."""
    with open(f"/proc/{pid or 'self'}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb() -> float:
    """Current resident memory of this process."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def fresh_database(kind: str, workdir: Path) -> str:
    """A new, migrated database: a SQLite file or a new PostgreSQL database."""
    if kind == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:6]}.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        import asyncpg

        base = make_url(os.environ.get("SAFEWELL_BENCH_POSTGRES_URL", PG_DEFAULT))
        name = f"safewell_bench_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(
            base.set(drivername="postgresql").render_as_string(hide_password=False)
        )
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        url = base.set(database=name).render_as_string(hide_password=False)
    await upgrade_async(url)
    return url


async def seed(engine: Any, subscribers: int, category: str = "traffic") -> float:
    """N citizens subscribed to category everywhere, inserted inside the database; seconds."""
    start = time.perf_counter()
    last = FIRST_ID + subscribers - 1
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            series = f"SELECT g AS id FROM generate_series({FIRST_ID}, {last}) AS g"
            now = "now()"
            false = "false"
        else:
            series = (
                f"WITH RECURSIVE s(id) AS (SELECT {FIRST_ID} UNION ALL "
                f"SELECT id + 1 FROM s WHERE id < {last}) SELECT id FROM s"
            )
            now = "CURRENT_TIMESTAMP"
            false = "0"
        await conn.execute(
            text(
                "INSERT INTO citizens (id, first_name, telegram_language, blocked_bot, banned, "
                f"ban_notified, created_at, last_seen_at) SELECT id, 'C', 'en', {false}, {false}, "
                f"{false}, {now}, {now} FROM ({series}) AS src"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO subscriptions (citizen_id, category, district, created_at) "
                f"SELECT id, '{category}', '*', {now} FROM ({series}) AS src"
            )
        )
    return time.perf_counter() - start


class EmulatorProcess:
    """`python -m benchmarks.alerts_emulator` in its own process."""

    def __init__(self, users: int, port: int, limits: bool) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        args = [sys.executable, "-m", "benchmarks.alerts_emulator", "--users", str(users)]
        args += ["--first-id", str(FIRST_ID), "--port", str(port)]
        if not limits:
            args.append("--no-limits")
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("ready"):
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.token = line.strip().split("token=")[1]

    def bot(self, connections: int) -> Bot:
        """An aiogram Bot on the emulator with enough HTTP connections for the concurrency."""
        session = AiohttpSession(api=TelegramAPIServer.from_base(self.url), limit=connections)
        return Bot(self.token, session=session)

    async def counts(self) -> dict[str, Any]:
        """Delivered messages per chat, as a histogram of copies."""
        import aiohttp

        async with aiohttp.ClientSession() as http, http.get(self.url + "/_bench/counts") as r:
            return dict(await r.json())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run(coro: Any) -> Any:
    """asyncio.run for the benchmark entry points."""
    return asyncio.run(coro)
