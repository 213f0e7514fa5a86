"""`safewell alert worker`: an extra sender process that shares a running broadcast."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts.catalog import Catalog
from bot.alerts.ratelimit import LocalRateLimiter
from bot.cli import main
from bot.db.models import AlertDelivery
from bot.emulator.server import EmulatorServer
from tests.support import KNOWLEDGE, REPO
from tests.support.alerts import (
    REDIS_URL,
    add_subscribers,
    make_engine,
    queued_alert,
    states,
    texts_in,
)
from tests.support.metrics import metric, parse_metrics
from tests.support.processes import free_port


def worker_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_", "REDIS_"))}
    env.update(
        BOT_TOKEN="123456789:AAExampleCityWorkerTestToken_0123456",
        FAQ_KNOWLEDGE_DIR=str(KNOWLEDGE),
        PYTHONPATH=str(REPO),
    )
    env.update(values)
    return env


def test_refuses_sqlite_and_a_missing_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for key in [k for k in os.environ if k.startswith(("BOT_", "DATABASE_", "REDIS_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("BOT_TOKEN", "123456789:AAExampleCityWorkerTestToken_0123456")
    monkeypatch.setenv("FAQ_KNOWLEDGE_DIR", str(KNOWLEDGE))
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/x.sqlite3")
    assert main(["alert", "worker"]) == 2
    assert "need PostgreSQL" in capsys.readouterr().err
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1/test")
    assert main(["alert", "worker"]) == 2
    assert "REDIS_URL" in capsys.readouterr().err


async def test_a_worker_process_shares_a_broadcast_and_stops_cleanly(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    tg: Bot,
    catalog: Catalog,
    db_url: str,
    redis_factory: Callable[[], Redis],
    tmp_path: Path,
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("extra workers need PostgreSQL (SKIP LOCKED)")
    recipients = range(6000, 6300)
    await add_subscribers(sessionmaker, emulator, recipients)
    env = worker_env(
        tmp_path,
        BOT_TOKEN=emulator.token,
        BOT_API_BASE_URL=emulator.base_url,
        DATABASE_URL=db_url,
        REDIS_URL=REDIS_URL,
        ALERTS_RATE="1000",
        ALERTS_PAID_BROADCAST="true",
        ALERTS_CONCURRENCY="4",
    )
    port = free_port()
    # The bot's own worker starts the broadcast, slowly (10/s alone: 30 s), and the extra one
    # joins once it has begun: so both send part of it however long the process takes to start
    # (started first, it could take the whole broadcast before the bot's own worker began).
    alert_id = await queued_alert(sessionmaker)
    own = make_engine(sessionmaker, tg, catalog, concurrency=1, batch_size=5)
    own.limiter = LocalRateLimiter(10, burst=1, urgent_reserve=0)
    await own.start_due()
    running = asyncio.create_task(own.run(alert_id))
    for _ in range(100):
        if (await states(sessionmaker, alert_id))["sent"] > 0:
            break
        await asyncio.sleep(0.1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "alert", "worker", "--metrics-port", str(port),
        cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        started = await asyncio.wait_for(proc.stderr.readline(), 60)
        while b"broadcast worker" not in started:
            started = await asyncio.wait_for(proc.stderr.readline(), 60)
        stats = await running
        for _ in range(100):  # the worker's last results are being written
            if (await states(sessionmaker, alert_id))["sent"] == len(recipients):
                break
            await asyncio.sleep(0.1)
        assert (await states(sessionmaker, alert_id))["sent"] == len(recipients)
        assert all(len(texts_in(emulator, uid)) == 1 for uid in recipients)
        async with sessionmaker() as session:
            owners = set((await session.scalars(select(AlertDelivery.claimed_by))).all())
        helpers = {o for o in owners if o and f":{proc.pid}:" in o}
        assert helpers, owners  # the worker process sent part of the broadcast
        assert 0 < stats.sent < len(recipients)
        # Its sends and waits are scraped from its own port.
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            scraped = parse_metrics(await resp.text())
        ok = {"method": "SendMessage", "result": "ok"}
        sent = metric(scraped, "safewell_telegram_requests_total", **ok)
        assert sent == len(recipients) - stats.sent
        waits = metric(scraped, "safewell_rate_limiter_wait_seconds_count", line="broadcast")
        assert waits >= len(recipients) - stats.sent
    finally:
        running.cancel()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stderr.read(), 30)
        await proc.wait()
    assert proc.returncode == 0, rest.decode()[-2000:]
