"""`safewell cases …`: case statistics for the bureau, computed from the cases table."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bot.config import Settings


async def _stats(settings: Settings) -> int:
    from bot.db.migrate import upgrade_async
    from bot.db.session import create_engine, create_sessionmaker
    from bot.stats.figures import case_stats, format_stats

    await upgrade_async(settings.database.url)
    engine = create_engine(settings.database.url)
    try:
        async with create_sessionmaker(engine)() as session:
            print(format_stats(await case_stats(session)))
    finally:
        await engine.dispose()
    return 0


def _cmd_cases(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_stats(settings))


def add_commands(sub: Any) -> None:
    """Register `cases stats` on the CLI's subparsers."""
    cases = sub.add_parser("cases", help="officer case statistics")
    cases_sub = cases.add_subparsers(dest="cases_cmd", required=True, metavar="ACTION")
    cases_sub.add_parser(
        "stats", help="time to first officer reply and to close, per priority (p50/p90)"
    )
    cases.set_defaults(func=_cmd_cases, uses_knowledge=False)
