"""Crisis latency while a broadcast runs at full speed: to the citizen's reply and the topic.

    python -m benchmarks.alerts_latency --subscribers 100000 --rate 1000 --paid --no-limits
        (a paid broadcast at 1,000/s, the emulator's limits lifted)
    python -m benchmarks.alerts_latency --subscribers 5000 --citizens 3
        (Telegram's limits on, the bot at its default ALERTS_RATE 25/s)

The real application (`bot.app.build`, long polling, the officers' forum configured) talks to
the emulator in its own process. Citizens write a crisis message one after another, first
with nothing else going on, then while the broadcast runs; we time, on this side of the HTTP
connection, until the bot's reply reaches their chat and until the case card reaches the
officers' forum. (With Telegram's limits on, a group takes 20 messages a minute: each case
posts three, so with more than three citizens per phase the group limit is what you measure:
six per phase gave topic p99 55 s and 429s from the group.)
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.alerts_common import EmulatorProcess, fresh_database, queue_alert, seed
from benchmarks.handoff_latency import percentile
from bot.alerts import service
from bot.app import build, run_polling
from bot.config import load_settings
from bot.db.session import create_engine
from bot.emulator.client import EmulatorClient

KNOWLEDGE = Path(__file__).resolve().parents[1] / "knowledge"
FORUM = -1001000000077
FIRST_CITIZEN = 4_000
CRISIS = "I want to kill myself tonight"


class ForumWatch:
    """Records when each bot message reaches the forum (long-polled, so to the millisecond)."""

    def __init__(self, emu: EmulatorClient) -> None:
        self.emu = emu
        self.seen: list[tuple[float, str]] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                message = await self.emu.wait_bot_message(FORUM, timeout=30)
                self.seen.append((time.perf_counter(), message.get("text", "")))

    async def card_for(self, name: str, since: float) -> float:
        """perf_counter time at which a case card naming `name` arrived (waits up to 60 s)."""
        async with asyncio.timeout(60):
            while True:
                for at, text in self.seen:
                    if at >= since and name in text and "Case #" in text:
                        return at
                await asyncio.sleep(0.01)


async def sample(
    emu: EmulatorClient, forum: ForumWatch, first: int, n: int
) -> list[tuple[float, float]]:
    """(to reply, to case card) in seconds for n new citizens, one after another."""
    out = []
    for uid in range(first, first + n):
        name = f"Citizen{uid}"
        await emu.create_user(uid, first_name=name, language_code="en")
        start = time.perf_counter()
        await emu.user(uid).send(CRISIS)
        await emu.wait_bot_message(uid, timeout=60)
        replied = time.perf_counter()
        card = await forum.card_for(f"{name} ", start)
        out.append((replied - start, card - start))
        await asyncio.sleep(0.2)
    return out


def summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    url = await fresh_database(args.db, Path(tempfile.mkdtemp(prefix="safewell-lat-")))
    db = create_engine(url)
    await seed(db, args.subscribers)
    await db.dispose()
    emulator = EmulatorProcess(args.subscribers, args.port, limits=not args.no_limits)
    settings = load_settings(
        env_file=None,
        bot={"token": emulator.token, "api_base_url": emulator.url},
        database={"url": url},
        officers={"chat_id": FORUM},
        faq={"knowledge_dir": KNOWLEDGE},
        alerts={"rate": args.rate, "paid_broadcast": args.paid, "concurrency": args.concurrency},
    )
    try:
        async with EmulatorClient(emulator.url) as emu:
            await emu.create_forum(chat_id=FORUM)
            app = await build(settings)
            polling = asyncio.create_task(run_polling(app, handle_signals=False))
            forum = ForumWatch(emu)
            try:
                await asyncio.sleep(0.5)
                idle = await sample(emu, forum, FIRST_CITIZEN, args.citizens)
                alert_id = await queue_alert(app.sessionmaker)
                for _ in range(300):  # until the broadcast is under way
                    await asyncio.sleep(0.1)
                    async with app.sessionmaker() as session:
                        if (await service.alert_counts(session, alert_id))["sent"] > 50:
                            break
                async with app.sessionmaker() as session:
                    sent_before = (await service.alert_counts(session, alert_id))["sent"]
                began = time.perf_counter()
                busy = await sample(emu, forum, FIRST_CITIZEN + 1000, args.citizens)
                took = time.perf_counter() - began
                async with app.sessionmaker() as session:
                    counts = await service.alert_counts(session, alert_id)
                stats = await emu.stats()
            finally:
                forum.task.cancel()
                with contextlib.suppress(RuntimeError):
                    app.stop()
                await polling
        return {
            "db": args.db,
            "subscribers": args.subscribers,
            "emulator_limits": not args.no_limits,
            "rate_setting": args.rate,
            "paid": args.paid,
            "idle_reply": summary([r for r, _ in idle]),
            "idle_topic": summary([c for _, c in idle]),
            "busy_reply": summary([r for r, _ in busy]),
            "busy_topic": summary([c for _, c in busy]),
            "broadcast_rate_meanwhile": round((counts["sent"] - sent_before) / took, 1),
            "broadcast_still_pending": counts["pending"] + counts.get("sending", 0),
            "emulator_429": stats.get("too_many_requests", 0),
        }
    finally:
        emulator.close()


def main() -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--citizens", type=int, default=3, help="crisis messages per phase")
    parser.add_argument("--rate", type=float, default=25.0, help="ALERTS_RATE")
    parser.add_argument("--paid", action="store_true", help="ALERTS_PAID_BROADCAST")
    parser.add_argument("--concurrency", type=int, default=16, help="ALERTS_CONCURRENCY")
    parser.add_argument("--no-limits", action="store_true", help="emulator limits off")
    parser.add_argument("--port", type=int, default=18084)
    print(json.dumps(asyncio.run(bench(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
