"""`safewell audit export`: the append-only audit log for a period, as CSV or JSON lines.

Days are the bureau's (`BOT_TIMEZONE`), both ends included; times in the output are UTC
(ISO 8601). Rows come in the order they were written, read in batches, so a year's log does
not have to fit in memory. The export itself is recorded in the audit log.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import IO, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.stats.figures import Period, PeriodError
from bot.stats.report import iso_day

COLUMNS = ("id", "at", "actor_id", "action", "target_type", "target_id", "details")
BATCH = 1000


async def rows(
    sessions: async_sessionmaker[AsyncSession], start: datetime, end: datetime
) -> AsyncIterator[dict[str, Any]]:
    """Audit rows written in [start, end), oldest first, as plain values."""
    from sqlalchemy import select

    from bot.db.models import AuditLog

    after = 0
    while True:
        async with sessions() as session:
            batch = (
                await session.scalars(
                    select(AuditLog)
                    .where(AuditLog.at >= start, AuditLog.at < end, AuditLog.id > after)
                    .order_by(AuditLog.id)
                    .limit(BATCH)
                )
            ).all()
        for row in batch:
            yield {
                "id": row.id,
                "at": row.at.isoformat(),
                "actor_id": row.actor_id,
                "action": row.action,
                "target_type": row.target_type,
                "target_id": row.target_id,
                "details": row.details,
            }
        if len(batch) < BATCH:
            return
        after = batch[-1].id


async def export(settings: Settings, first: date, last: date, kind: str, out: IO[str]) -> int:
    """Write the rows of days `first`..`last` (inclusive) to `out`; how many were written."""
    from bot.db import repo
    from bot.db.migrate import upgrade_async
    from bot.db.session import create_engine, create_sessionmaker

    await upgrade_async(settings.database.url)
    period = Period(first, last, settings.bot.zone)
    start, end = period.start, period.end
    writer = csv.DictWriter(out, COLUMNS) if kind == "csv" else None
    if writer is not None:
        writer.writeheader()
    count = 0
    engine = create_engine(settings.database.url)
    try:
        sessions = create_sessionmaker(engine)
        async for row in rows(sessions, start, end):
            if writer is not None:
                writer.writerow({**row, "details": json.dumps(row["details"], ensure_ascii=False)})
            else:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
        async with sessions() as session:
            repo.audit(
                session,
                "audit.export",
                actor_id=None,
                first=first.isoformat(),
                last=last.isoformat(),
                rows=count,
                format=kind,
            )
            await session.commit()
    finally:
        await engine.dispose()
    return count


def _cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    try:
        Period(args.first, args.last, settings.bot.zone)
    except PeriodError as exc:
        print(f"safewell audit export: {exc}", file=sys.stderr)
        return 2
    if args.out is None:
        count = asyncio.run(export(settings, args.first, args.last, args.format, sys.stdout))
    else:
        with open(args.out, "w", encoding="utf-8", newline="") as handle:
            count = asyncio.run(export(settings, args.first, args.last, args.format, handle))
    print(f"{count} audit row(s) exported", file=sys.stderr)
    return 0


def add_commands(sub: Any) -> None:
    """Register `audit export` on the CLI's subparsers."""
    audit = sub.add_parser("audit", help="the audit log of staff actions")
    audit_sub = audit.add_subparsers(dest="audit_cmd", required=True, metavar="ACTION")
    p = audit_sub.add_parser("export", help="export a period as CSV or JSON lines")
    p.add_argument(
        "--from", dest="first", type=iso_day, required=True, help="first day, YYYY-MM-DD"
    )
    p.add_argument("--to", dest="last", type=iso_day, required=True, help="last day, YYYY-MM-DD")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--out", help="file to write (default: standard output)")
    audit.set_defaults(func=_cmd_audit, uses_knowledge=False)
