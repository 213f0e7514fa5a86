"""Composition root: the only place that builds the Bot, Dispatcher, engine and services."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.aio import cancel_and_wait
from bot.alerts.wiring import build_alerts
from bot.cases.service import HandoffService
from bot.claims import Claims, process_identity
from bot.commands import publish_commands
from bot.config import ConfigError, Settings
from bot.db.migrate import upgrade_async
from bot.db.session import create_engine, create_sessionmaker
from bot.faq.service import FaqService
from bot.forum_check import check_forum
from bot.fsm_storage import DatabaseStorage, FsmSessionMiddleware
from bot.i18n import Locales
from bot.intake import Intake, UrgentReplies
from bot.middlewares import (
    BanMiddleware,
    DbSessionMiddleware,
    FloodMiddleware,
    IdentityMiddleware,
    InflightMiddleware,
)
from bot.retention import RetentionJob
from bot.services import Services
from bot.stats.weekly import WeeklyReport
from bot.telegram import ForumLane, ForumLaneMiddleware, build_bot
from bot.triage import Triage
from bot.windows import window
from handlers import setup_routers

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 20.0
POLL_TIMEOUT_SECONDS = 10
POLL_LIMIT = 100  # updates per getUpdates, Telegram's maximum
INTAKE_LOOP_SECONDS = 1.0


@dataclass
class Safewell:
    """Everything a running bot holds; built by `build`, released by `close`."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bot: Bot
    dispatcher: Dispatcher
    locales: Locales
    faq: FaqService
    inflight: InflightMiddleware
    intake: Intake
    # What the handlers are given (the dispatcher's workflow data).
    services: Services
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    # Set to stop a running `run_polling` (tests and the demo stop it this way).
    stopping: asyncio.Event | None = None
    # Background tasks started once the bot runs (delivery loops and the like), by name; each
    # closes over what it needs (`build` registers them; no feature sees this class).
    workers: dict[str, Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=dict)
    # Other resources features opened (a second bot session, a Redis client), closed last.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # What stops the bot in the officers' forum, as found at start (None: not checked yet).
    forum_problems: list[str] | None = None
    # The shared Redis, when REDIS_URL is set (its health is part of /readyz).
    redis: Redis | None = None

    def stop(self) -> None:
        """Ask a running `run_polling` or `run_webhook` to stop (in-flight work finishes)."""
        if self.stopping is not None:
            self.stopping.set()

    def dead_loops(self) -> list[str]:
        """Background tasks and intake workers that stopped with an error or were cancelled
        while the bot runs (a worker that runs once at start and returns is fine)."""
        if self.stopping is not None and self.stopping.is_set():
            return []
        return [
            task.get_name()
            for task in [*self.background, *self.intake.tasks]
            if task.done() and (task.cancelled() or task.exception() is not None)
        ]

    def start_workers(self) -> None:
        """Start every registered background worker (idempotent per process run)."""
        if self.background:
            return
        for name, worker in self.workers.items():
            self.background.append(asyncio.create_task(worker(), name=name))

    async def close(self) -> None:
        """Let in-flight updates finish, then release the bot session and the database."""
        await self.intake.close(SHUTDOWN_GRACE_SECONDS)
        await self.inflight.wait(SHUTDOWN_GRACE_SECONDS)
        for task in self.background:
            task.cancel()
        for task in self.background:
            await cancel_and_wait(task)
        await self.bot.session.close()
        for close in self.closers:
            await close()
        await self.dispatcher.storage.close()
        await self.engine.dispose()


def build_faq(settings: Settings) -> FaqService:
    """Load the FAQ; a knowledge base with errors refuses to start (there is no last good one)."""
    options = {
        name: value
        for name in ("answer_threshold", "suggest_threshold", "margin")
        if (value := getattr(settings.faq, name)) is not None
    }
    faq = FaqService(settings.faq.knowledge_dir, settings.bot.languages, **options)
    problems = faq.reload()
    errors = [str(p) for p in problems if p.severity == "error"]
    if errors:
        shown = "; ".join(errors[:5]) + (
            f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        )
        raise ConfigError(f"FAQ_KNOWLEDGE_DIR: the knowledge has errors: {shown}")
    return faq


async def build(
    settings: Settings,
    *,
    migrate: bool = True,
    faq: FaqService | None = None,
    triage: Triage | None = None,
) -> Safewell:
    """Build the whole application from settings (migrating the database first).

    `faq` and `triage` may be passed in already loaded (both are safe to share): loading the
    triage content takes seconds, which a test suite starting hundreds of apps should pay once.
    """
    bot = build_bot(settings)  # fails fast on a missing token, before touching the database
    faq = faq or build_faq(settings)
    if migrate:
        await upgrade_async(settings.database.url)
    # The handlers' pool: as many connections as updates handled at once. With half as many
    # (they give theirs back before each Telegram call) a surge still opened and closed
    # overflow connections all the time, each preparing its statements anew (SQLite: a thread
    # and the pragmas each): 0.15-0.25 of a question's CPU in the load benchmark.
    pool = max(5, settings.intake.concurrency)
    engine = create_engine(settings.database.url, echo=settings.database.echo, pool_size=pool)
    sessionmaker = create_sessionmaker(engine)
    locales = Locales.load(settings.faq.knowledge_dir / "locales", settings.bot.default_language)

    inflight = InflightMiddleware()
    # aiogram's FSM middleware is placed by hand, after the session: the state it reads for
    # every update then comes through the update's own session, not a connection of its own.
    # FSM state in the database, so wizards survive a restart and every process sees them;
    # also with Redis: the update's first read fetches it with the sender's identity
    # (`repo.identify_with_state`), where Redis would cost a round trip of its own per update.
    dp = Dispatcher(storage=DatabaseStorage(sessionmaker), disable_fsm=True)
    dp.update.outer_middleware(inflight)
    dp.update.outer_middleware(DbSessionMiddleware(sessionmaker))
    dp.update.outer_middleware(FsmSessionMiddleware())  # FSM reads and writes join the session
    dp.update.outer_middleware(dp.fsm)
    dp.update.outer_middleware(IdentityMiddleware(locales, settings.bot.admin_ids))
    redis = Redis.from_url(settings.redis.url) if settings.redis.url else None
    flood = window(redis, settings.bot.flood_window_seconds, "safewell:flood")
    dp.update.outer_middleware(FloodMiddleware(locales, settings.bot.flood_messages, flood))
    dp.update.outer_middleware(BanMiddleware(locales))
    dp.include_router(setup_routers())
    triage = triage or Triage.load(settings.faq.knowledge_dir / "triage")
    lane = None
    if settings.officers.chat_id is not None and settings.officers.per_minute:
        lane = ForumLane(
            settings.officers.per_minute,
            settings.officers.urgent_reserve,
            window=window(redis, ForumLane.WINDOW, "safewell:forum"),
        )
        bot.session.middleware(ForumLaneMiddleware(lane, settings.officers.chat_id))
    # Work several processes could both do (a case's card, relays and pages, a crisis reply)
    # is claimed in the database first, signed with this process's identity.
    owner = process_identity()
    claims = Claims(sessionmaker, settings.officers.claim_seconds, owner=owner)
    handoff = HandoffService(
        bot,
        sessionmaker,
        locales,
        settings.officers,
        lane=lane,
        claims=claims,
        tz=settings.bot.zone,
    )
    # The intake and the crisis replies have connections of their own: in a surge every
    # handler holds one of the main pool's, and a crisis must not wait for them.
    intake_engine = create_engine(settings.database.url, echo=settings.database.echo)
    intake_sessions = create_sessionmaker(intake_engine)
    replies = UrgentReplies(
        bot,
        intake_sessions,
        handoff.citizen_text,
        unreachable=handoff.urgent_reply_unreachable,
        owner=owner,
        lease_seconds=settings.intake.lease_seconds,
    )
    # Whether a sender is half-way through a form, read on the intake's connections too.
    forms = DatabaseStorage(intake_sessions)
    intake = Intake(
        dp,
        bot,
        intake_sessions,
        triage,
        locales,
        replies,
        settings.intake,
        forms=forms,
        owner=owner,
    )
    # Old messages, FAQ questions, update ids and finished alerts' delivery rows are deleted
    # by one process at a time (a claim in the database), once per interval.
    retention = RetentionJob(sessionmaker, settings.retention, claims)
    alerts = build_alerts(settings, bot, locales, sessionmaker)
    report = None
    if settings.stats.weekly_report:
        report = WeeklyReport(sessionmaker, bot, settings, locales, faq, alerts.catalog, claims)
    services = Services(
        settings=settings,
        sessionmaker=sessionmaker,
        locales=locales,
        faq=faq,
        triage=triage,
        handoff=handoff,
        urgent_replies=replies,
        catalog=alerts.catalog,
        rate_limiter=alerts.limiter,
        broadcaster=alerts.broadcaster,
        weekly_report=report,
    )
    # Long-lived services reach handlers as workflow data, each under its field's name; this
    # is the only place it is filled.
    dp.workflow_data.update(services.workflow_data())
    app = Safewell(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        bot=bot,
        dispatcher=dp,
        locales=locales,
        faq=faq,
        inflight=inflight,
        intake=intake,
        services=services,
        redis=redis,
    )
    app.closers.append(intake_engine.dispose)
    if redis is not None:
        app.closers.append(redis.aclose)
    app.closers.extend(alerts.closers)

    async def forum_check() -> None:  # the bot's rights in the officers' forum, at start
        app.forum_problems = await check_forum(bot, settings, locales)

    app.workers.update(
        intake=functools.partial(run_intake_worker, app),
        handoff=functools.partial(handoff.run, settings.officers.loop_seconds),
        retention=retention.run,
        # The command menus, once at start.
        commands=functools.partial(publish_commands, bot, settings, locales, sessionmaker),
        forum_check=forum_check,
        alerts=alerts.broadcaster.serve,
    )
    if report is not None:
        app.workers["weekly_report"] = report.run
    return app


async def run_intake_worker(app: Safewell) -> None:
    """Hand kept updates to the workers; retry owed crisis replies; take over dead leases."""
    app.intake.start()
    while True:
        for tick in (app.intake.tick, app.intake.replies.tick):
            try:
                await tick()
            except Exception as exc:  # the database may be away; the next pass tries again
                log.warning("intake pass failed: %s", exc)
        await asyncio.sleep(INTAKE_LOOP_SECONDS)


async def run_polling(
    app: Safewell, *, handle_signals: bool = True, stop: asyncio.Event | None = None
) -> None:
    """Long polling until SIGINT/SIGTERM (or `stop` is set); in-flight updates finish first.

    An offset is confirmed to Telegram (by asking from the next id) only after the batch is
    kept by the intake, so a crash before that gets the same updates again.
    """
    stop = stop or asyncio.Event()
    app.stopping = stop
    await app.bot.delete_webhook(drop_pending_updates=False)
    app.start_workers()
    poller = asyncio.create_task(poll(app, stop), name="polling")
    try:
        if handle_signals:
            await wait_for_stop(stop)
        else:
            await stop.wait()
    finally:
        await cancel_and_wait(poller)
        await app.close()


async def poll(app: Safewell, stop: asyncio.Event) -> None:
    """getUpdates in a loop; each batch is kept before the next offset is asked for."""
    allowed = app.dispatcher.resolve_used_update_types()
    offset: int | None = None
    pause = 0.5
    more = False
    while not stop.is_set():
        try:
            # After a full batch, ask without waiting: when it was the surge's last, handling
            # (held while more are fetched) must not wait out a long poll for nothing.
            timeout = 0 if more else POLL_TIMEOUT_SECONDS
            updates = await app.bot.get_updates(
                offset=offset,
                limit=POLL_LIMIT,
                timeout=timeout,
                allowed_updates=allowed,
                request_timeout=int(app.bot.session.timeout + timeout),
            )
            # A full batch: more are waiting at Telegram (a surge), fetched before handling.
            more = len(updates) >= POLL_LIMIT
            await app.intake.accept(updates, more=more)
            if updates:
                offset = updates[-1].update_id + 1
            pause = 0.5
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Telegram away, or neither the database nor the disk kept them
            log.error("polling: %s: %s; again in %.1fs", type(exc).__name__, exc, pause)
            more = False
            await app.intake.accept([])  # nothing more known to be waiting: handling goes on
            await asyncio.sleep(pause)
            pause = min(pause * 2, 30.0)


async def wait_for_stop(stop: asyncio.Event | None = None) -> None:
    """Return on SIGINT or SIGTERM (or when `stop` is set by the caller)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_webhook(app: Safewell, stop: asyncio.Event | None = None) -> None:
    """Serve the webhook and /healthz until SIGINT/SIGTERM (or `stop` is set)."""
    from bot.web import create_web_app, webhook_secret

    stop = stop or asyncio.Event()
    app.stopping = stop
    settings = app.settings.webhook
    assert settings.url is not None
    web_app = create_web_app(app, webhook=True)
    runner = web.AppRunner(web_app, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    await app.bot.set_webhook(
        settings.url.rstrip("/") + settings.path,
        secret_token=webhook_secret(app.settings),
        allowed_updates=app.dispatcher.resolve_used_update_types(),
        max_connections=settings.max_connections,
    )
    log.info("webhook server listening on %s:%s%s", settings.host, settings.port, settings.path)
    app.start_workers()
    try:
        await wait_for_stop(stop)
    finally:
        # The webhook stays registered: Telegram queues updates while we restart.
        await runner.cleanup()
        await app.close()


def reload_on_sighup(app: Safewell) -> None:
    """SIGHUP swaps in the edited knowledge, like an admin's /reload."""

    async def reload() -> None:
        problems = await app.faq.areload()
        errors = [str(p) for p in problems if p.severity == "error"]
        if errors:
            log.error("knowledge NOT reloaded, the last good version stays: %s", "; ".join(errors))
        else:
            log.info("knowledge reloaded: %d entries", len(app.faq.kb.entries))

    def on_signal() -> None:
        app.background.append(asyncio.create_task(reload()))

    with contextlib.suppress(NotImplementedError, AttributeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_signal)


async def run(settings: Settings) -> None:
    """`safewell run`: polling by default, webhook when WEBHOOK_URL is set."""
    app = await build(settings)
    reload_on_sighup(app)
    # What is built now (content, indexes, models, the ORM's mappings: ~300,000 objects) lives
    # as long as the process. Frozen, the collector's full passes skip it: in a surge each
    # full pass took 200-250 ms of the event loop, frozen ones take ~15 ms.
    gc.freeze()
    if settings.webhook.url:
        await run_webhook(app)
    else:
        await run_polling(app)
