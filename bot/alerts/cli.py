"""`safewell alert import FILE.xml`, `safewell alert export ID`, `safewell alert list`,
`safewell alert worker` (extra broadcast senders) and `safewell api` (the HTTP API without
the webhook). The last two are entry points: they build the application (`bot.app`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.aio import cancel_and_wait
from bot.alerts import service
from bot.alerts.cap import CapError
from bot.alerts.capio import describe, export_cap, import_cap
from bot.alerts.catalog import Catalog
from bot.config import Settings
from bot.db.models import Alert

log = logging.getLogger(__name__)


async def _with_session(settings: Settings, work: Any) -> int:
    from bot.db.migrate import upgrade_async
    from bot.db.session import create_engine, create_sessionmaker

    await upgrade_async(settings.database.url)
    engine = create_engine(settings.database.url)
    try:
        async with create_sessionmaker(engine)() as session:
            return int(await work(session))
    finally:
        await engine.dispose()


def _cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    catalog = Catalog.load(settings.faq.knowledge_dir)
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"{args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1

    async def work(session: Any) -> int:
        try:
            alert = await import_cap(
                session,
                data,
                catalog,
                default_lang=settings.bot.default_language,
                approval_severities=settings.alerts.approval_severities,
            )
        except CapError as exc:
            print(f"{args.file}: invalid CAP: {exc.message}", file=sys.stderr)
            return 1
        except service.AlertError as exc:
            print(f"{args.file}: not imported: {exc}", file=sys.stderr)
            return 1
        await session.commit()
        print(describe(alert))
        return 0

    return asyncio.run(_with_session(settings, work))


def _cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    catalog = Catalog.load(settings.faq.knowledge_dir)

    out: list[bytes] = []

    async def work(session: Any) -> int:
        try:
            out.append(await export_cap(session, args.alert_id, catalog))
        except service.AlertError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        return 0

    status = asyncio.run(_with_session(settings, work))
    if status == 0 and args.output:
        Path(args.output).write_bytes(out[0])
    elif status == 0:
        sys.stdout.write(out[0].decode("utf-8") + "\n")
    return status


def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: Any) -> int:
        rows = (await session.scalars(select(Alert).order_by(Alert.id.desc()).limit(50))).all()
        for a in rows:
            headline = (a.content.get(settings.bot.default_language) or {}).get("headline", "")
            print(f"#{a.id}\t{a.kind}\t{a.status}\t{a.severity}\t{a.total_recipients}\t{headline}")
        return 0

    return asyncio.run(_with_session(settings, work))


async def serve_api(settings: Settings, host: str | None, port: int | None) -> None:
    """`safewell api`: POST /api/cap, /healthz, /readyz and /metrics, beside a polling bot.

    It handles no update, so it builds none of the bot: no token, FAQ, triage or intake; the
    database (migrated, as the bot would) and the alert catalogue are all its routes read."""
    from aiohttp import web

    from bot.app import wait_for_stop
    from bot.db.migrate import upgrade_async
    from bot.db.session import create_engine, create_sessionmaker
    from bot.web import create_api_app

    await upgrade_async(settings.database.url)
    engine = create_engine(settings.database.url)
    catalog = Catalog.load(settings.faq.knowledge_dir)
    web_app = create_api_app(settings, engine, create_sessionmaker(engine), catalog)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, host or settings.webhook.host, port or settings.webhook.port)
    await site.start()
    log.info("API listening on %s:%s", host or settings.webhook.host, port or settings.webhook.port)
    try:
        await wait_for_stop()
    finally:
        await runner.cleanup()
        await engine.dispose()


def worker_refusal(settings: Settings) -> str | None:
    """Why `safewell alert worker` cannot run with these settings, or None."""
    if not settings.database.url.startswith("postgresql"):
        return (
            "safewell alert worker: extra broadcast workers need PostgreSQL (DATABASE_URL); "
            "on SQLite the bot's own worker sends"
        )
    if not settings.redis.url:
        return (
            "safewell alert worker: set REDIS_URL, so that every sending process shares one "
            "rate limit (ALERTS_RATE) instead of each sending at the full rate"
        )
    return None


async def serve_worker(
    settings: Settings,
    stop: asyncio.Event | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    """`safewell alert worker`: the broadcast engine alone, beside a running bot.

    It claims batches of the same broadcasts (`SELECT … FOR UPDATE SKIP LOCKED`) and shares
    the rate limit through Redis, so throughput grows with processes, not the send rate.
    With `metrics_port` it serves `/metrics` and `/healthz` there (its sends and waits).
    """
    from bot.alerts.wiring import build_alerts
    from bot.app import wait_for_stop
    from bot.db.migrate import upgrade_async
    from bot.db.session import create_engine, create_sessionmaker
    from bot.i18n import Locales
    from bot.telegram import build_bot

    # It never handles an update: the bot (for the staff's progress messages), the database
    # and the alert services are all it builds (no FAQ, triage, intake or case desk).
    bot = build_bot(settings)
    await upgrade_async(settings.database.url)
    engine = create_engine(settings.database.url)
    sessionmaker = create_sessionmaker(engine)
    locales = Locales.load(settings.faq.knowledge_dir / "locales", settings.bot.default_language)
    alerts = build_alerts(settings, bot, locales, sessionmaker)
    broadcaster = alerts.broadcaster
    runner = None
    if metrics_port is not None:
        from aiohttp import web

        from bot.web import create_metrics_app

        runner = web.AppRunner(create_metrics_app(engine))
        await runner.setup()
        await web.TCPSite(runner, metrics_host, metrics_port).start()
    task = asyncio.create_task(broadcaster.serve(), name="alerts-worker")
    log.info("broadcast worker %s started", broadcaster.worker_id)
    try:
        await wait_for_stop(stop)
    finally:
        await cancel_and_wait(task)
        if runner is not None:
            await runner.cleanup()
        for close in alerts.closers:
            await close()
        await bot.session.close()
        await engine.dispose()
        log.info("broadcast worker %s stopped", broadcaster.worker_id)


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_token()
    refusal = worker_refusal(settings)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    asyncio.run(
        serve_worker(settings, metrics_port=args.metrics_port, metrics_host=args.metrics_host)
    )
    return 0


def _cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(serve_api(settings, args.host, args.port))
    return 0


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not an alert id")
    return int(value)


def add_commands(sub: Any) -> None:
    """Add `alert …` and `api` to the safewell parser."""
    alert = sub.add_parser("alert", help="import, export and list public-safety alerts")
    alert_sub = alert.add_subparsers(dest="alert_cmd", required=True, metavar="ACTION")
    p = alert_sub.add_parser("import", help="queue a CAP 1.2 alert (approval rules apply)")
    p.add_argument("file")
    p.set_defaults(func=_cmd_import)
    p = alert_sub.add_parser("export", help="write an alert as CAP 1.2 XML")
    p.add_argument("alert_id", type=_positive)
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.set_defaults(func=_cmd_export)
    p = alert_sub.add_parser("list", help="the 50 newest alerts")
    p.set_defaults(func=_cmd_list)
    p = alert_sub.add_parser(
        "worker", help="send broadcasts only: more sender processes (PostgreSQL and Redis)"
    )
    p.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz on this port")
    p.add_argument("--metrics-host", default="127.0.0.1", help="(default 127.0.0.1)")
    p.set_defaults(func=_cmd_worker)
    p = sub.add_parser("api", help="serve the HTTP API (POST /api/cap, /healthz) only")
    p.add_argument("--host", default=None, help="default: WEBHOOK_HOST")
    p.add_argument("--port", type=int, default=None, help="default: WEBHOOK_PORT")
    p.set_defaults(func=_cmd_api)
