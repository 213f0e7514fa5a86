"""Citizen throughput: messages a second Safewell answers, against a bare aiogram echo bot
(the framework's ceiling) measured in the same run, and one webhook process against two.

    python -m benchmarks.load [--citizens 200] [--questions 3] [--rounds 3] [--database-url URL]

Each bot runs against a fresh emulator with Telegram's limits lifted; Safewell sends at 1,000
messages/s (`ALERTS_RATE`, a bureau paying for broadcasts) and runs the defaults of
`.env.example` otherwise. `--citizens` citizens each send `--questions` FAQ questions (English
and Chinese) at once, after a warm-up of 100 questions from other citizens (a running bot has
its connections open and its statements prepared; not measured). Rate = messages answered /
(last answer - first question); reply p50/p99 per message, from the emulator's event log.
Runs: the echo bot; Safewell, one process, long polling, on SQLite; and with `--database-url`
(a PostgreSQL server: each run gets a scratch database beside the one named, dropped
afterwards) Safewell on PostgreSQL: one process polling, then one and two webhook processes
behind nginx (Debian's), sharing Redis when it answers.

Floors (issue 15): one process at least 0.2 of the echo bot's rate; two webhook processes at
least 1.3x one. Exit status 1 when one is missed.
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


from benchmarks.handoff_latency import percentile
from benchmarks.surge import QUESTIONS, analyse, scratch_database
from bot.config import IntakeSettings, OfficersSettings
from bot.emulator.client import EmulatorClient
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer
from tests.support.processes import BotProcess, Nginx, free_port, nginx_binary, redis_answers

FORUM = -1001000000089
FLOOR = 0.2  # of the echo bot's rate
SCALE_FLOOR = 1.3  # two webhook processes against one
WARM_UP = 100  # questions from other citizens before the measured surge (answers not counted)
WEBHOOK_PATH = "/telegram/webhook"
REDIS_URL = "redis://127.0.0.1:6379/0"


async def run(
    label: str,
    citizens: int,
    questions: int,
    database_url: str | None,
    processes: int = 1,
    webhook: bool = False,
) -> dict[str, Any]:
    """One bot (or several behind nginx), one surge; its rate and reply times."""
    workdir = Path(tempfile.mkdtemp(prefix="safewell-load-"))
    server = EmulatorServer(Emulator(EmulatorConfig(limits=Limits(enabled=False))))
    # No failpoints: the harness arms them by default, and each check reads a file. The
    # harness's quick loops (for its takeover tests) give way to a deployment's defaults.
    settings = {
        "ALERTS_RATE": "1000",
        "SAFEWELL_FAILPOINTS": "",
        "OFFICERS_LOOP_SECONDS": str(OfficersSettings.model_fields["loop_seconds"].default),
        "INTAKE_LEASE_SECONDS": str(IntakeSettings.model_fields["lease_seconds"].default),
    }
    if processes > 1 and redis_answers():
        settings["REDIS_URL"] = REDIS_URL  # the send rate shared, as in a deployment
    nginx = None
    async with server, EmulatorClient(server.base_url) as emu:
        await emu.create_forum(chat_id=FORUM)
        askers = list(range(700_000, 700_000 + citizens))
        warmers = list(range(600_000, 600_000 + WARM_UP))
        for uid in warmers + askers:
            await emu.create_user(uid, first_name=f"Asker{uid}", language_code="en")
        if database_url is None:
            echo = ("-m", "benchmarks.echo_bot")
            bots = [BotProcess(server, "sqlite://", workdir, FORUM, command=echo)]
        elif not webhook:
            bots = [BotProcess(server, database_url, workdir, FORUM, settings=settings)]
        else:
            ports = [free_port() for _ in range(processes)]
            nginx = Nginx(workdir / "nginx", free_port(), ports, WEBHOOK_PATH)
            await nginx.start()
            bots = [
                BotProcess(
                    server,
                    database_url,
                    workdir / f"bot{n}",
                    FORUM,
                    webhook_port=port,
                    settings=settings,
                    public_url=nginx.url,
                )
                for n, port in enumerate(ports)
            ]
        for bot in bots:  # one after the other: each migrates and sets the same webhook
            await bot.start()
        try:

            async def ask(uid: int, count: int) -> None:
                for q in range(count):
                    await emu.user(uid).send(QUESTIONS[(uid + q) % len(QUESTIONS)])

            async def answered(expected: int) -> None:
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    stats = await emu.stats()
                    if stats["calls"].get("sendmessage", 0) >= expected:
                        return
                    await asyncio.sleep(0.5)

            # Warm-up, not measured: a bot that has been running has its connections open
            # and its statements prepared before a surge reaches it.
            await asyncio.gather(*(ask(uid, 1) for uid in warmers))
            await answered(WARM_UP)
            await asyncio.sleep(1.0)
            await asyncio.gather(*(ask(uid, questions) for uid in askers))
            await answered(WARM_UP + citizens * questions)
            await asyncio.sleep(1.0)
            events: list[dict[str, Any]] = []
            while batch := await emu.events(after=len(events)):
                events += batch
        finally:
            for bot in bots:
                await bot.stop()
            if nginx is not None:
                await nginx.stop()
    result = analyse(events, askers, {})
    measured = set(askers)
    mine = [e for e in events if e["type"] == "message" and e.get("chat_id") in measured]
    sent = [e["time"] for e in mine if not e["from_bot"]]
    answers = [e["time"] for e in mine if e["from_bot"]]
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


async def one_round(
    citizens: int, questions: int, database_url: str | None
) -> list[dict[str, Any]]:
    """Every row once: the echo bot, Safewell on SQLite and (with a URL) on PostgreSQL, then
    one and two webhook processes behind nginx."""
    results = [await run("bare aiogram echo bot", citizens, questions, None)]
    sqlite = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='safewell-load-db-')) / 'l.db'}"
    results.append(await run("Safewell, one process, SQLite", citizens, questions, sqlite))
    if database_url:
        runs: list[tuple[str, int, bool]] = [("Safewell, one process, PostgreSQL", 1, False)]
        if nginx_binary() is not None:
            runs += [
                ("Safewell, 1 webhook process, nginx, PG", 1, True),
                ("Safewell, 2 webhook processes, nginx, PG", 2, True),
            ]
        else:
            print("nginx is not installed: no webhook rows (apt-get install nginx)")
        for n, (label, processes, webhook) in enumerate(runs):
            async with scratch_database(database_url, f"safewell_load_{n}") as url:
                results.append(await run(label, citizens, questions, url, processes, webhook))
    return results


async def main_async(
    citizens: int, questions: int, database_url: str | None, rounds: int = 1
) -> bool:
    # The rates vary from round to round on a shared machine, the echo bot's too: each floor
    # is a ratio within one round (the same minute's machine), and the median of the rounds.
    table = [await one_round(citizens, questions, database_url) for _ in range(rounds)]
    print(
        f"load: {citizens} citizens x {questions} questions at once, Telegram's limits lifted, "
        f"Safewell sending at 1,000/s; {rounds} round(s)"
    )
    print(f"{'':<42} {'answered':>9} {'msg/s':>16} {'p50 s':>7} {'p99 s':>7}")
    for row in range(len(table[0])):
        runs = [results[row] for results in table]
        rates = " / ".join(f"{r['rate']:.0f}" for r in runs)
        answered = min(r["answered"] for r in runs)
        p50 = statistics.median(r["p50"] for r in runs)
        p99 = statistics.median(r["p99"] for r in runs)
        print(
            f"{runs[0]['label']:<42} {answered:>4}/{runs[0]['expected']:<4} {rates:>16} "
            f"{p50:>7.2f} {p99:>7.2f}"
        )
    ok = True
    labels = [r["label"] for r in table[0]]
    for row, label in enumerate(labels):
        if row == 0 or "webhook" in label:
            continue
        shares = [results[row]["rate"] / results[0]["rate"] for results in table]
        share = statistics.median(shares)
        met = share >= FLOOR and all(
            results[row]["answered"] >= results[row]["expected"] for results in table
        )
        ok = ok and met
        listed = ", ".join(f"{s:.2f}" for s in shares)
        print(
            f"floor: {label} at {share:.2f} of the echo bot (rounds: {listed}; >= {FLOOR}): "
            f"{'met' if met else 'MISSED'}"
        )
    webhook = [row for row, label in enumerate(labels) if "webhook" in label]
    if len(webhook) == 2:
        one, two = webhook
        gains = [results[two]["rate"] / results[one]["rate"] for results in table]
        gain = statistics.median(gains)
        met = gain >= SCALE_FLOOR and all(
            results[two]["answered"] >= results[two]["expected"] for results in table
        )
        ok = ok and met
        listed = ", ".join(f"{g:.2f}" for g in gains)
        print(
            f"floor: two webhook processes at {gain:.2f}x one (rounds: {listed}; "
            f">= {SCALE_FLOOR}): {'met' if met else 'MISSED'}"
        )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=200)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every row; floors are their medians"
    )
    parser.add_argument(
        "--database-url", help="a PostgreSQL database URL; scratch databases are made beside it"
    )
    args = parser.parse_args()
    raise SystemExit(
        0
        if asyncio.run(main_async(args.citizens, args.questions, args.database_url, args.rounds))
        else 1
    )


if __name__ == "__main__":
    main()
