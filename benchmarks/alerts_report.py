"""Every alert measurement of the issue in one run, as a table with its floors.

    python -m benchmarks.alerts_report            # about 10 minutes on 2 cores
    python -m benchmarks.alerts_report --skip-million

Each row runs one of the alert benchmarks in its own process (so peak memory is that
benchmark's own) and reads the JSON line it prints; the emulator runs in a further process.
PostgreSQL is the one named by SAFEWELL_TEST_POSTGRES_URL (default: the local server).
Exits 1 when a floor is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from benchmarks.alerts_common import REPO
from bot.alerts.engine import EngineConfig

FAST = ["--no-limits", "--rate", "100000", "--concurrency", "128", "--batch", "1000"]


def run(module: str, *args: str) -> dict[str, Any]:
    """Run `python -m benchmarks.<module> args` and return its last output line as JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return dict(json.loads(lines[-1]))


@dataclass
class Row:
    measurement: str
    result: str
    floor: str = ""
    ok: bool | None = None  # None: reported, no floor


def throughput(db: str, floor: float | None) -> Callable[[], Row]:
    def measure() -> Row:
        r = run("alerts_throughput", "--db", db, "--subscribers", "100000", *FAST)
        once = r["copies_histogram"].get("1", 0) == r["subscribers"]
        result = (
            f"{r['msgs_per_s']:,.0f} msg/s; sender {r['bot_cpu_ms_per_msg']} ms CPU/msg, "
            f"emulator {r['emulator_cpu_ms_per_msg']}; "
            + ("every subscriber exactly once" if once else f"copies {r['copies_histogram']}")
        )
        label = f"throughput, 100,000 subscribers, {db}"
        if floor is None:
            return Row(label, result, "each once", once)
        return Row(label, result, f">= {floor:,.0f}/s", once and r["msgs_per_s"] >= floor)

    return measure


def rate() -> Row:
    r = run("alerts_throughput", "--db", "sqlite", "--subscribers", "5000", "--duration", "60")
    result = f"{r['msgs_per_s']} msg/s over {r['send_s']} s, {r['emulator_429']} x 429"
    ok = r["emulator_429"] == 0 and r["bot_saw_429"] == 0
    return Row("Telegram's 30/s enforced, bot at its default", result, "0 x 429", ok)


def memory() -> Row:
    small = run("alerts_throughput", "--db", "postgres", "--subscribers", "10000", *FAST)
    big = run(
        "alerts_throughput", "--db", "postgres", "--subscribers", "1000000",
        "--duration", "60", *FAST,
    )  # fmt: skip
    diff = big["peak_rss_mb"] - small["peak_rss_mb"]
    result = (
        f"peak RSS {small['peak_rss_mb']} MB at 10,000, {big['peak_rss_mb']} MB at 1,000,000 "
        f"(+{diff:.1f} MB)"
    )
    # The million-subscriber run stops after 60 s: the peak while a million deliveries are
    # materialised and the first ones sent, not a whole million-message broadcast.
    return Row("memory of the sending process", result, "< 50 MB more", diff < 50)


# The README's "a crash repeats at most the messages in flight": per kill, the sends under way
# (the crash benchmark's --concurrency, 32) plus the results waiting to be written and those in
# the write under way (EngineConfig.flush_max each).
KILLS, CRASH_CONCURRENCY = 3, 32
REPEATS_PER_KILL = CRASH_CONCURRENCY + 2 * EngineConfig().flush_max


def crash(db: str) -> Callable[[], Row]:
    def measure() -> Row:
        r = run(
            "alerts_crash", "--db", db, "--subscribers", "20000", "--kills", str(KILLS),
            "--concurrency", str(CRASH_CONCURRENCY),
        )  # fmt: skip
        h = r["copies_histogram"]
        result = (
            f"0 copies: {r['recipients_with_0']}, 1: {h.get('1', 0)}, "
            f"2+: {r['recipients_with_2plus']}"
        )
        bound = KILLS * REPEATS_PER_KILL
        ok = r["recipients_with_0"] == 0 and r["recipients_with_2plus"] <= bound
        return Row(f"kill -9 three times, 20,000, {db}", result, f"0 with 0, 2+ <= {bound}", ok)

    return measure


def latency(label: str, *args: str) -> Callable[[], Row]:
    def measure() -> Row:
        r = run("alerts_latency", *args)
        result = (
            f"reply p99 {r['busy_reply']['p99_ms']} ms (idle {r['idle_reply']['p99_ms']}), "
            f"topic p99 {r['busy_topic']['p99_ms']} ms (idle {r['idle_topic']['p99_ms']}); "
            f"broadcast {r['broadcast_rate_meanwhile']}/s meanwhile, {r['emulator_429']} x 429"
        )
        return Row(f"crisis latency during {label}", result, "reported", None)

    return measure


def main() -> None:
    """Run the measurements, print the table, exit 1 if a floor is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-million", action="store_true", help="skip the memory row")
    args = parser.parse_args()
    steps: list[Callable[[], Row]] = [
        throughput("sqlite", None),
        throughput("postgres", 1000),
        rate,
        *([] if args.skip_million else [memory]),
        crash("sqlite"),
        crash("postgres"),
        # Three cases before and three during: a group takes 20 messages a minute and each
        # case posts three (card, page, the message), so more would measure that limit.
        latency("a 25/s broadcast, limits on", "--subscribers", "5000", "--citizens", "3"),
        latency(
            "a paid 1,000/s broadcast, limits lifted",
            "--subscribers", "100000", "--citizens", "20", "--rate", "1000", "--paid",
            "--concurrency", "64", "--no-limits",
        ),
    ]  # fmt: skip
    machine = f"{platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}"
    print(f"alert benchmarks, {datetime.now(UTC):%Y-%m-%d}, {machine}")
    print(f"{'measurement':<62} {'floor':<14} {'ok':<4} result")
    failed = False
    for step in steps:
        row = step()
        mark = {True: "yes", False: "NO", None: "-"}[row.ok]
        failed |= row.ok is False
        print(f"{row.measurement:<62} {row.floor:<14} {mark:<4} {row.result}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
