"""A surge with crises in it: is every crisis answered within a second, and its card posted
within five, while hundreds of citizens ask questions at once?

    python -m benchmarks.surge [--citizens 200] [--questions 3] [--database-url URL] [--webhook]

The bot runs as its own process (`python -m bot run`: long polling, or with `--webhook` a
webhook server the emulator delivers to concurrently; the defaults of `.env.example`) against
the emulator with Telegram's flood limits on (30 messages/s overall, 1/s per private chat after
a burst of 3, 20/min per group). `--citizens` citizens each send `--questions` FAQ questions
(English and Chinese) within about a second; during the burst six more citizens send a crisis
message, three that the content rules recognise and three that only the model does. Times come
from the emulator's event log. With `--database-url` (a PostgreSQL server) each run gets a
scratch database beside the one named, dropped afterwards.

Floors (issue 14): every message answered; every crisis reply within 1 s; every case card in
the officers' forum within 5 s. Exit status 1 when a floor is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.engine import make_url

from benchmarks.handoff_latency import percentile
from bot.emulator.client import EmulatorClient
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer
from tests.support.processes import BotProcess, free_port

FORUM = -1001000000088
QUESTIONS = [
    "what time does the passport office open",
    "how do I report a lost ID card",
    "where can I pay a traffic fine",
    "护照办理需要什么材料",
    "身份证丢了怎么办",
    "how do I get a certificate of no criminal record",
]
RULES_CRISIS = "I want to kill myself tonight"
MODEL_CRISIS = "tonight I'm going to make the pain stop for good"
CRISIS_MARKS = ("A person from our team is joining you", "我们团队的工作人员")


def analyse(
    events: list[dict[str, Any]], askers: list[int], crises: dict[int, str]
) -> dict[str, Any]:
    """Per chat, the k-th bot message answers the k-th citizen message."""
    sent: dict[int, list[float]] = {}
    answered: dict[int, list[float]] = {}
    crisis_reply: dict[int, float] = {}
    cards: dict[int, float] = {}
    names = {f"Crisis{uid} ": uid for uid in crises}
    for event in events:
        if event["type"] != "message":
            continue
        chat, message = event.get("chat_id"), event["message"]
        text = message.get("text") or ""
        if chat == FORUM:
            if event["from_bot"] and "Case #" in text:
                for name, uid in names.items():
                    if name in text:
                        cards.setdefault(uid, event["time"])
            continue
        if chat is None or chat < 0:
            continue
        if not event["from_bot"]:
            sent.setdefault(chat, []).append(event["time"])
        else:
            answered.setdefault(chat, []).append(event["time"])
            if chat in crises and any(mark in text for mark in CRISIS_MARKS):
                crisis_reply.setdefault(chat, event["time"])
    ordinary = [
        a - s
        for uid in askers
        for s, a in zip(sent.get(uid, []), answered.get(uid, []), strict=False)
    ]
    unanswered = sum(max(0, len(sent.get(uid, [])) - len(answered.get(uid, []))) for uid in askers)
    return {
        "ordinary": ordinary,
        "unanswered": unanswered,
        "crisis": {uid: crisis_reply[uid] - sent[uid][0] for uid in crisis_reply},
        "cards": {uid: cards[uid] - sent[uid][0] for uid in cards},
    }


@contextlib.asynccontextmanager
async def scratch_database(base_url: str, name: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database beside the one `base_url` names; dropped after."""
    import asyncpg

    url = make_url(base_url)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await run(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def surge(citizens: int, questions: int, database_url: str | None, webhook: bool) -> bool:
    if database_url:
        # A fresh database each run: the emulator numbers updates from 1 again, and a database
        # that handled a run before would drop them all as redeliveries.
        async with scratch_database(database_url, "safewell_surge") as url:
            return await _surge(citizens, questions, url, webhook)
    return await _surge(citizens, questions, None, webhook)


async def _surge(citizens: int, questions: int, database_url: str | None, webhook: bool) -> bool:
    workdir = Path(tempfile.mkdtemp(prefix="safewell-surge-"))
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'surge.sqlite3'}"
    server = EmulatorServer(Emulator(EmulatorConfig(limits=Limits())))
    async with server, EmulatorClient(server.base_url) as emu:
        await emu.create_forum(chat_id=FORUM)
        askers = list(range(800_000, 800_000 + citizens))
        crises = {900_001 + n: (RULES_CRISIS if n % 2 == 0 else MODEL_CRISIS) for n in range(6)}
        for uid in askers:
            await emu.create_user(uid, first_name=f"Asker{uid}", language_code="en")
        for uid in crises:
            await emu.create_user(uid, first_name=f"Crisis{uid}", language_code="en")
        bot = BotProcess(server, url, workdir, FORUM, webhook_port=free_port() if webhook else None)
        await bot.start()
        try:
            started = time.monotonic()

            async def ask(uid: int) -> None:
                for q in range(questions):
                    await emu.user(uid).send(QUESTIONS[(uid + q) % len(QUESTIONS)])

            async def crisis(uid: int, delay: float) -> None:
                await asyncio.sleep(delay)
                await emu.user(uid).send(crises[uid])

            await asyncio.gather(
                *(ask(uid) for uid in askers),
                *(crisis(uid, 0.1 + 0.15 * n) for n, uid in enumerate(crises)),
            )
            burst = time.monotonic() - started
            expected = citizens * questions
            # Wait on the emulator's counters only: reading its event log while the surge runs
            # would take CPU from the emulator (and so from the bot) and slow what is measured.
            # Every answer, crisis reply and case card is one sendMessage (a page rides on
            # its card; the crisis messages are copied into their topics with copyMessage).
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                stats = await emu.stats()
                if stats["calls"].get("sendmessage", 0) >= expected + 2 * len(crises):
                    break
                await asyncio.sleep(1.0)
            await asyncio.sleep(2.0)
            events: list[dict[str, Any]] = []
            while batch := await emu.events(after=len(events)):
                events += batch
            result = analyse(events, askers, crises)
        finally:
            await bot.stop()
    backend = url.split(":", 1)[0].split("+", 1)[0]
    ordinary, crisis, cards = result["ordinary"], result["crisis"], result["cards"]
    print(
        f"surge: {citizens} citizens x {questions} questions sent in {burst:.1f} s "
        f"+ {len(crises)} crisis messages ({backend}, {'webhook' if webhook else 'polling'}, "
        "Telegram's limits on)"
    )
    print(f"{'':<34} {'n':>5} {'p50 s':>7} {'p99 s':>7} {'max s':>7}")

    def line(label: str, values: list[float]) -> None:
        if values:
            print(
                f"{label:<34} {len(values):>5} {statistics.median(values):>7.2f} "
                f"{percentile(values, 99):>7.2f} {max(values):>7.2f}"
            )
        else:
            print(f"{label:<34} {0:>5}")

    line("ordinary answer", ordinary)
    line("crisis reply (rules and model)", list(crisis.values()))
    line("  recognised by the rules", [v for u, v in crisis.items() if crises[u] == RULES_CRISIS])
    line("  recognised by the model", [v for u, v in crisis.items() if crises[u] == MODEL_CRISIS])
    line("case card in the forum", list(cards.values()))
    ok = (
        len(ordinary) >= citizens * questions
        and len(crisis) == len(crises)
        and len(cards) == len(crises)
        and max(crisis.values(), default=99) <= 1.0
        and max(cards.values(), default=99) <= 5.0
    )
    print(
        f"floors: every message answered ({len(ordinary)}/{citizens * questions}), "
        f"crisis reply <= 1 s, card <= 5 s: {'met' if ok else 'MISSED'}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=200)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument(
        "--database-url", help="an EMPTY database to use (default: a new SQLite file)"
    )
    parser.add_argument(
        "--webhook", action="store_true", help="webhook mode (concurrent delivery), not polling"
    )
    args = parser.parse_args()
    ok = asyncio.run(surge(args.citizens, args.questions, args.database_url, args.webhook))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
