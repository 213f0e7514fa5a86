"""Crisis handoff latency through the emulator: citizen message -> bot reply, -> topic post.

    python -m benchmarks.handoff_latency --citizens 60 --concurrency 4

The real application (`bot.app.build`, long polling, migrations, routers, middlewares, the
handoff loop) runs against the emulator on loopback with Telegram's flood limits off (they
would measure Telegram's 20-messages-a-minute group limit, not the bot). Each citizen writes
one crisis message; we time until the safe-messaging reply reaches their chat and until the
case card, and the copied message, reach the officers' forum topic.
Times come from the emulator's own event log, so the client's polling adds nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import build, run_polling
from bot.config import load_settings
from bot.emulator.client import EmulatorClient
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer

KNOWLEDGE = Path(__file__).resolve().parents[1] / "knowledge"
FORUM = -1001000000077
CRISIS = "I want to kill myself tonight"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def one(emu: EmulatorClient, user_id: int) -> None:
    """One citizen writes a crisis message and waits for the reply and the topic post."""
    await emu.create_user(user_id, first_name=f"Citizen{user_id}", language_code="en")
    await emu.user(user_id).send(CRISIS)
    await emu.wait_bot_message(user_id, timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        names = [t["name"] for t in await emu.topics(FORUM)]
        if any(f"Citizen{user_id}" in n for n in names):
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"citizen {user_id}: no topic within 30 s")


def measure(events: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
    """Per citizen, from the emulator's clock: seconds to reply, to card, to copied message."""
    sent: dict[int, float] = {}
    replied: dict[int, float] = {}
    card: dict[int, float] = {}
    thread_of: dict[int, int] = {}
    copied: dict[int, float] = {}
    for event in events:
        if event["type"] != "message":
            continue
        message = event["message"]
        chat = event.get("chat_id")
        if chat != FORUM and chat is not None and chat > 0:
            if not event["from_bot"] and message.get("text") == CRISIS:
                sent.setdefault(chat, event["time"])
            elif event["from_bot"] and chat in sent:
                replied.setdefault(chat, event["time"])
        elif chat == FORUM and event["from_bot"]:
            text = message.get("text", "")
            thread = message.get("message_thread_id")
            for user_id in sent:
                if f"Citizen{user_id} " in text and "Case #" in text and user_id not in card:
                    card[user_id] = event["time"]
                    thread_of[thread] = user_id
            if text == CRISIS and thread in thread_of:
                copied.setdefault(thread_of[thread], event["time"])
    return [
        (replied[u] - t, card[u] - t, copied[u] - t)
        for u, t in sent.items()
        if u in replied and u in card and u in copied
    ]


def row(label: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{label:<28} {len(ms):>5} {statistics.median(ms):>9.1f} "
        f"{percentile(ms, 99):>9.1f} {max(ms):>9.1f}"
    )


async def bench(citizens: int, concurrency: int, database_url: str | None) -> None:
    """Run the benchmark and print the table."""
    db = Path(tempfile.mkdtemp(prefix="safewell-handoff-")) / "bench.sqlite3"
    url = database_url or f"sqlite+aiosqlite:///{db}"
    server = EmulatorServer(Emulator(EmulatorConfig(limits=Limits(enabled=False))))
    async with server, EmulatorClient(server.base_url) as emu:
        await emu.create_forum(chat_id=FORUM)
        settings = load_settings(
            env_file=None,
            bot={"token": server.token, "api_base_url": server.base_url},
            database={"url": url},
            officers={"chat_id": FORUM, "loop_seconds": 1.0},
            faq={"knowledge_dir": KNOWLEDGE},
        )
        app = await build(settings)
        task = asyncio.create_task(run_polling(app, handle_signals=False))
        await asyncio.sleep(0.3)
        try:
            ids = iter(range(700_000, 700_000 + citizens))

            async def worker() -> None:
                for user_id in ids:
                    await one(emu, user_id)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            # The last citizens' messages may still be on their way into their topics.
            events: list[dict[str, Any]] = []
            deadline = time.monotonic() + 30
            while True:
                while batch := await emu.events(after=len(events)):
                    events += batch
                results = measure(events)
                if len(results) == citizens or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        finally:
            with contextlib.suppress(RuntimeError):
                app.stop()
            await task
    backend = url.split(":", 1)[0].split("+", 1)[0]
    print(f"handoff latency, {citizens} crisis messages, {concurrency} at a time ({backend})")
    print(f"{'from the citizen message to':<28} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    print(row("bot reply to the citizen", [r[0] for r in results]))
    print(row("case card in the topic", [r[1] for r in results]))
    print(row("message copied to the topic", [r[2] for r in results]))


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--database-url", help="an EMPTY database to use (default: a new SQLite file)"
    )
    args = parser.parse_args()
    asyncio.run(bench(args.citizens, args.concurrency, args.database_url))


if __name__ == "__main__":
    main()
