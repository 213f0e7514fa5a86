"""Broadcast throughput, rate compliance and memory through the emulator (separate process).

    python -m benchmarks.alerts_throughput --db sqlite --subscribers 100000 --no-limits
    python -m benchmarks.alerts_throughput --db postgres --subscribers 100000 --no-limits \
        --rate 100000 --concurrency 128 --batch 1000
    python -m benchmarks.alerts_throughput --db sqlite --subscribers 5000 --duration 60
        (emulator enforcing 30/s, bot at its default ALERTS_RATE 25/s: rate and 429s)
    python -m benchmarks.alerts_throughput --db sqlite --subscribers 1000000 --duration 60
        --no-limits (peak memory of the sending process at a million subscribers)

Prints one JSON line: materialise time, sent, seconds, messages/s, 429s, RSS before/peak.
`--worker URL --emulator URL --alert ID` only sends (used by benchmarks/alerts_crash.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.alerts_common import (
    EmulatorProcess,
    cpu_seconds,
    fresh_database,
    peak_rss_mb,
    queue_alert,
    rss_mb,
    seed,
)
from bot.alerts import service
from bot.alerts.catalog import Catalog
from bot.alerts.engine import Broadcaster, EngineConfig
from bot.alerts.ratelimit import LocalRateLimiter
from bot.db.models import AlertStatus
from bot.db.session import create_engine, create_sessionmaker

KNOWLEDGE = Path(__file__).resolve().parents[1] / "knowledge"


def engine_config(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(
        concurrency=args.concurrency,
        batch_size=args.batch,
        paid_broadcast=args.rate > 30,
        poll_interval=0.2,
    )


def limiter(args: argparse.Namespace) -> LocalRateLimiter:
    # burst scales with the rate so that a high rate is not throttled by the bucket size.
    burst = max(5, int(args.rate // 20))
    return LocalRateLimiter(args.rate, burst=burst, urgent_reserve=min(2, burst - 1))


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="safewell-bench-"))
    url = await fresh_database(args.db, workdir)
    db = create_engine(url)
    sessionmaker = create_sessionmaker(db)
    seeded = await seed(db, args.subscribers)
    emulator = EmulatorProcess(args.subscribers, args.port, limits=not args.no_limits)
    bot = emulator.bot(args.concurrency)
    try:
        alert_id = await queue_alert(sessionmaker)
        engine = Broadcaster(
            sessionmaker, bot, limiter(args), Catalog.load(KNOWLEDGE), "en", engine_config(args)
        )
        rss_before = rss_mb()
        start = time.perf_counter()
        await engine.start_due()
        materialised = time.perf_counter() - start
        start = time.perf_counter()
        cpu_bot, cpu_emu = cpu_seconds(), cpu_seconds(emulator.proc.pid)
        task = asyncio.create_task(engine.run(alert_id))
        if args.duration:
            done, _ = await asyncio.wait({task}, timeout=args.duration)
            if not done:
                async with sessionmaker() as session:
                    await service.set_paused(session, alert_id, paused=True, actor_id=None)
                    await session.commit()
        stats = await task
        elapsed = time.perf_counter() - start
        cpu_bot, cpu_emu = cpu_seconds() - cpu_bot, cpu_seconds(emulator.proc.pid) - cpu_emu
        counts = await emulator.counts()
        async with sessionmaker() as session:
            states = await service.alert_counts(session, alert_id)
        return {
            "db": args.db,
            "subscribers": args.subscribers,
            "emulator_limits": not args.no_limits,
            "rate_setting": args.rate,
            "concurrency": args.concurrency,
            "batch": args.batch,
            "seed_s": round(seeded, 2),
            "materialise_s": round(materialised, 2),
            "sent": stats.sent,
            "send_s": round(elapsed, 2),
            "msgs_per_s": round(stats.sent / elapsed, 1),
            "bot_cpu_ms_per_msg": round(cpu_bot * 1000 / max(stats.sent, 1), 3),
            "emulator_cpu_ms_per_msg": round(cpu_emu * 1000 / max(stats.sent, 1), 3),
            "bot_saw_429": stats.rate_limited,
            "emulator_429": counts["stats"].get("too_many_requests", 0),
            "copies_histogram": counts["histogram"],
            "states": states,
            "rss_before_mb": round(rss_before, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "machine": f"{platform.machine()} {platform.processor() or ''} "
            f"{__import__('os').cpu_count()} CPU".strip(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        }
    finally:
        await bot.session.close()
        emulator.close()
        await db.dispose()


async def worker(args: argparse.Namespace) -> None:
    """Send one alert until done (killed with -9 by the crash benchmark)."""
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    db = create_engine(args.worker)
    sessionmaker = create_sessionmaker(db)
    session = AiohttpSession(api=TelegramAPIServer.from_base(args.emulator), limit=args.concurrency)
    bot = Bot(args.token, session=session)
    engine = Broadcaster(
        sessionmaker, bot, limiter(args), Catalog.load(KNOWLEDGE), "en", engine_config(args)
    )
    try:
        await engine.run(args.alert)
        async with sessionmaker() as s:
            status = (await service.get_alert(s, args.alert)).status
        print(json.dumps({"status": status, "done": status == AlertStatus.SENT}), flush=True)
    finally:
        await bot.session.close()
        await db.dispose()


def main() -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=25.0, help="bot limiter rate (ALERTS_RATE)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--duration", type=float, default=0, help="stop after N s (0: all)")
    parser.add_argument("--no-limits", action="store_true", help="emulator limits off")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--worker", help="database URL: only send --alert (crash benchmark)")
    parser.add_argument("--emulator")
    parser.add_argument("--token")
    parser.add_argument("--alert", type=int)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        if args.worker:
            asyncio.run(worker(args))
        else:
            print(json.dumps(asyncio.run(bench(args))), flush=True)


if __name__ == "__main__":
    main()
