"""Citizen throughput: messages a second one Safewell process answers, against a bare aiogram
echo bot (the framework's ceiling) measured in the same run.

    python -m benchmarks.load [--citizens 200] [--questions 3] [--database-url URL]

Each bot runs as its own process against a fresh emulator with Telegram's limits lifted;
Safewell sends at 1,000 messages/s (`ALERTS_RATE`, a bureau paying for broadcasts) and runs the
defaults of `.env.example` otherwise (long polling). `--citizens` citizens each send
`--questions` FAQ questions (English and Chinese) at once. Rate = messages answered / (last
answer - first question); reply p50/p99 per message, from the emulator's event log. Runs: the
echo bot, Safewell on SQLite, and Safewell on PostgreSQL when `--database-url` names an EMPTY
PostgreSQL database.

Floor (issue 15): one Safewell process answers at least 0.2 of the echo bot's rate. Exit status
1 when it is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.surge import QUESTIONS, analyse, percentile
from bot.emulator.client import EmulatorClient
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer
from tests.e2e.faults import BotProcess

FORUM = -1001000000089
FLOOR = 0.2  # of the echo bot's rate


async def run(
    label: str, citizens: int, questions: int, database_url: str | None
) -> dict[str, Any]:
    """One bot, one surge; its rate and reply times."""
    workdir = Path(tempfile.mkdtemp(prefix="safewell-load-"))
    server = EmulatorServer(Emulator(EmulatorConfig(limits=Limits(enabled=False))))
    async with server, EmulatorClient(server.base_url) as emu:
        await emu.create_forum(chat_id=FORUM)
        askers = list(range(700_000, 700_000 + citizens))
        for uid in askers:
            await emu.create_user(uid, first_name=f"Asker{uid}", language_code="en")
        if database_url is None:
            bot = BotProcess(
                server, "sqlite://", workdir, FORUM, command=("-m", "benchmarks.echo_bot")
            )
        else:
            bot = BotProcess(server, database_url, workdir, FORUM, settings={"ALERTS_RATE": "1000"})
        await bot.start()
        try:
            expected = citizens * questions

            async def ask(uid: int) -> None:
                for q in range(questions):
                    await emu.user(uid).send(QUESTIONS[(uid + q) % len(QUESTIONS)])

            await asyncio.gather(*(ask(uid) for uid in askers))
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                stats = await emu.stats()
                if stats["calls"].get("sendmessage", 0) >= expected:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)
            events: list[dict[str, Any]] = []
            while batch := await emu.events(after=len(events)):
                events += batch
        finally:
            await bot.stop()
    result = analyse(events, askers, {})
    sent = [e["time"] for e in events if e["type"] == "message" and not e["from_bot"]]
    answers = [
        e["time"]
        for e in events
        if e["type"] == "message" and e["from_bot"] and (e.get("chat_id") or 0) > 0
    ]
    span = max(answers) - min(sent) if answers and sent else float("inf")
    ordinary = result["ordinary"]
    return {
        "label": label,
        "answered": len(ordinary),
        "expected": citizens * questions,
        "rate": len(ordinary) / span,
        "p50": statistics.median(ordinary) if ordinary else float("nan"),
        "p99": percentile(ordinary, 99) if ordinary else float("nan"),
    }


async def main_async(citizens: int, questions: int, database_url: str | None) -> bool:
    runs = [("bare aiogram echo bot", None)]
    sqlite = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='safewell-load-db-')) / 'l.db'}"
    runs.append(("Safewell, one process, SQLite", sqlite))
    if database_url:
        runs.append(("Safewell, one process, PostgreSQL", database_url))
    results = [await run(label, citizens, questions, url) for label, url in runs]
    print(
        f"load: {citizens} citizens x {questions} questions at once, Telegram's limits lifted, "
        "Safewell sending at 1,000/s"
    )
    print(f"{'':<36} {'answered':>9} {'msg/s':>7} {'p50 s':>7} {'p99 s':>7}")
    for r in results:
        print(
            f"{r['label']:<36} {r['answered']:>4}/{r['expected']:<4} {r['rate']:>7.0f} "
            f"{r['p50']:>7.2f} {r['p99']:>7.2f}"
        )
    echo = results[0]["rate"]
    ok = True
    for r in results[1:]:
        share = r["rate"] / echo
        met = share >= FLOOR and r["answered"] >= r["expected"]
        ok = ok and met
        print(
            f"floor: {r['label']} at {share:.2f} of the echo bot (>= {FLOOR}): "
            f"{'met' if met else 'MISSED'}"
        )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=200)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--database-url", help="an EMPTY PostgreSQL database to use as well")
    args = parser.parse_args()
    raise SystemExit(
        0 if asyncio.run(main_async(args.citizens, args.questions, args.database_url)) else 1
    )


if __name__ == "__main__":
    main()
