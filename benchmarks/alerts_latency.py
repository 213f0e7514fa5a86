"""Crisis reply latency while a broadcast runs at full (default) speed.

    python -m benchmarks.alerts_latency --subscribers 3000 --samples 10

The real application (`bot.app.build`, long polling) talks to the emulator in its own process
with Telegram's limits on. A citizen writes a crisis message before and during the broadcast;
we time until the bot's reply reaches their chat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.alerts_common import EmulatorProcess, fresh_database, seed
from benchmarks.alerts_throughput import CONTENT
from bot.alerts import service
from bot.app import build, run_polling
from bot.config import load_settings
from bot.db.session import create_engine
from bot.emulator.client import EmulatorClient

KNOWLEDGE = Path(__file__).resolve().parents[1] / "knowledge"
CITIZEN = 4242
CRISIS = "I want to kill myself tonight"


async def sample(emu: EmulatorClient, first: int, n: int) -> list[float]:
    """Seconds from a crisis message to the bot's first reply, for n different citizens.

    A citizen with an open case is relayed to officers rather than answered again, so every
    sample is a new person.
    """
    out = []
    for uid in range(first, first + n):
        await emu.create_user(uid, first_name="Ann", language_code="en")
        start = time.perf_counter()
        await emu.user(uid).send(CRISIS)
        await emu.wait_bot_message(uid, timeout=60)
        out.append(time.perf_counter() - start)
    return out


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    url = await fresh_database("sqlite", Path(tempfile.mkdtemp(prefix="safewell-lat-")))
    db = create_engine(url)
    await seed(db, args.subscribers)
    await db.dispose()
    emulator = EmulatorProcess(args.subscribers, args.port, limits=True)
    settings = load_settings(
        env_file=None,
        bot={"token": emulator.token, "api_base_url": emulator.url},
        database={"url": url},
        faq={"knowledge_dir": KNOWLEDGE},
    )
    app = await build(settings)
    polling = asyncio.create_task(run_polling(app, handle_signals=False))
    try:
        async with EmulatorClient(emulator.url) as emu:
            idle = await sample(emu, CITIZEN, args.samples)
            async with app.sessionmaker() as session:
                draft = service.AlertDraft(category="traffic", severity="Moderate", content=CONTENT)
                alert = await service.create_draft(session, draft, author_id=1)
                await service.submit(session, alert.id, actor_id=1, approval_severities=[])
                await session.commit()
            for _ in range(300):
                await asyncio.sleep(0.1)
                async with app.sessionmaker() as session:
                    if (await service.alert_counts(session, alert.id))["sent"] > 50:
                        break
            busy = await sample(emu, CITIZEN + 1000, args.samples)
            async with app.sessionmaker() as session:
                counts = await service.alert_counts(session, alert.id)
            stats = await emu.stats()
        return {
            "subscribers": args.subscribers,
            "idle": summary(idle),
            "during_broadcast": summary(busy),
            "broadcast_sent_meanwhile": counts["sent"],
            "emulator_429": stats.get("too_many_requests"),
        }
    finally:
        await app.dispatcher.stop_polling()
        await polling
        emulator.close()


def main() -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--port", type=int, default=18084)
    print(json.dumps(asyncio.run(bench(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
