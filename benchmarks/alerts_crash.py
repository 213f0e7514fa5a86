"""Crash safety: kill -9 the sending process at random moments, restart it, count copies.

    python -m benchmarks.alerts_crash --db sqlite --subscribers 20000 --kills 3

Each worker is `python -m benchmarks.alerts_throughput --worker …`; it is killed with SIGKILL
at a random moment 0.3-3 s after it began sending, three times, then a last worker finishes
the broadcast. The emulator counts messages per chat: the floor is zero recipients with 0
copies; recipients with 2+ copies are the messages in flight (sent, not yet recorded) when a
process died.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.alerts_common import REPO, EmulatorProcess, fresh_database, queue_alert, seed
from bot.alerts import service
from bot.alerts.catalog import Catalog
from bot.alerts.engine import Broadcaster
from bot.alerts.ratelimit import LocalRateLimiter
from bot.db.session import create_engine, create_sessionmaker

KNOWLEDGE = REPO / "knowledge"


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    url = await fresh_database(args.db, Path(tempfile.mkdtemp(prefix="safewell-crash-")))
    db = create_engine(url)
    sessionmaker = create_sessionmaker(db)
    await seed(db, args.subscribers)
    emulator = EmulatorProcess(args.subscribers, args.port, limits=False)
    try:
        alert_id = await queue_alert(sessionmaker)
        materialiser = Broadcaster(
            sessionmaker, emulator.bot(4), LocalRateLimiter(10), Catalog.load(KNOWLEDGE), "en"
        )
        await materialiser.start_due()
        await materialiser.bot.session.close()
        materialiser.close()
        cmd = [
            sys.executable, "-m", "benchmarks.alerts_throughput",
            "--worker", url, "--emulator", emulator.url, "--token", emulator.token,
            "--alert", str(alert_id), "--rate", str(args.rate),
            "--concurrency", str(args.concurrency), "--batch", str(args.batch),
        ]  # fmt: skip
        rng = random.Random(args.seed)
        kills: list[dict[str, Any]] = []
        start = time.perf_counter()
        for _ in range(args.kills):
            proc = await asyncio.create_subprocess_exec(*cmd, cwd=REPO, stdout=subprocess.DEVNULL)
            # Python start-up takes a while: kill at a random moment after sending began.
            async with sessionmaker() as session:
                before = (await service.alert_counts(session, alert_id))["sent"]
            for _ in range(600):
                await asyncio.sleep(0.1)
                async with sessionmaker() as session:
                    if (await service.alert_counts(session, alert_id))["sent"] > before:
                        break
            delay = rng.uniform(0.3, 3.0)
            await asyncio.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            async with sessionmaker() as session:
                states = await service.alert_counts(session, alert_id)
            kills.append({"after_sending_began_s": round(delay, 2), "states_at_kill": states})
        last = await asyncio.create_subprocess_exec(
            *cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await last.communicate()
        elapsed = time.perf_counter() - start
        counts = await emulator.counts()
        async with sessionmaker() as session:
            states = await service.alert_counts(session, alert_id)
        histogram = counts["histogram"]
        return {
            "db": args.db,
            "subscribers": args.subscribers,
            "kills": kills,
            "final_worker": out.decode().strip() or err.decode().strip()[-300:],
            "final_states": states,
            "copies_histogram": histogram,
            "recipients_with_0": histogram.get("0", 0),
            "recipients_with_2plus": sum(v for k, v in histogram.items() if int(k) >= 2),
            "seconds": round(elapsed, 1),
        }
    finally:
        emulator.close()
        await db.dispose()


def main() -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=18082)
    print(json.dumps(asyncio.run(bench(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
