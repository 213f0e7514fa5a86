"""The aiohttp application: Telegram's webhook, /healthz and /readyz, /metrics."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from typing import Protocol

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import metrics
from bot.alerts.api import add_routes as add_alert_routes
from bot.alerts.catalog import Catalog
from bot.config import Settings
from bot.db.session import database_ok
from bot.intake import Intake

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class Running(Protocol):
    """What the web routes read of a running application (``bot.app.Safewell``), named here
    so that this module does not import the composition root."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bot: Bot
    dispatcher: Dispatcher
    intake: Intake
    redis: Redis | None
    forum_problems: list[str] | None

    def dead_loops(self) -> list[str]: ...


APP_KEY = web.AppKey("safewell", Running)


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers, 503 when it does not."""
    app = request.app[APP_KEY]
    # The forum's state is a detail for the operator: the bot still answers citizens without
    # it, so it does not take the process out of the load balancer.
    forum = {"forum": app.forum_problems or "ok"} if app.forum_problems is not None else {}
    if await database_ok(app.engine):
        return web.json_response({"status": "ok", "database": "ok", **forum})
    return web.json_response({"status": "unavailable", "database": "down", **forum}, status=503)


async def readyz(request: web.Request) -> web.Response:
    """200 when every piece the bot needs works, else 503 naming what does not.

    `/healthz` says the process can answer at all (the database); `/readyz` says it is doing
    its job: the database, Redis when configured, the officers' forum with the rights to open
    and manage topics, the relay outbox draining, and every background loop alive.
    """
    app = request.app[APP_KEY]
    checks: dict[str, str] = {}
    checks["database"] = "ok" if await database_ok(app.engine) else "down"
    if app.redis is not None:
        try:
            await asyncio.wait_for(app.redis.ping(), app.settings.redis.ping_seconds)
            checks["redis"] = "ok"
        except Exception as exc:  # refused, timed out, or answering with an error
            checks["redis"] = f"down ({type(exc).__name__})"
    if app.settings.officers.chat_id is not None:
        if app.forum_problems is None:
            checks["forum"] = "not checked yet"
        else:
            checks["forum"] = "; ".join(app.forum_problems) or "ok"
    if checks["database"] == "ok":
        try:
            async with app.sessionmaker() as session:
                _, waited = await metrics.relay_outbox(session)
        except Exception as exc:
            checks["outbox"] = f"unknown ({type(exc).__name__})"
        else:
            stuck = waited > app.settings.officers.outbox_stuck_seconds
            checks["outbox"] = f"stuck for {waited:.0f} s" if stuck else "ok"
    dead = app.dead_loops()
    checks["loops"] = ("stopped: " + ", ".join(dead)) if dead else "ok"
    ready = all(value == "ok" for value in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", **checks}, status=200 if ready else 503
    )


async def metrics_page(request: web.Request) -> web.Response:
    """Prometheus's text exposition: this process's counters, the database's gauges."""
    app = request.app[APP_KEY]
    body = await metrics.render(app.engine)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE_LATEST})


def webhook_secret(settings: Settings) -> str:
    """WEBHOOK_SECRET, or one derived from the bot token when it is not set.

    There is never an open webhook. The derived secret is as unguessable as the token itself,
    and every process of one bot derives the same one, so several processes behind a proxy
    agree without configuration (a random one per process would let the last to start win).
    """
    if settings.webhook.secret is not None:
        return settings.webhook.secret.get_secret_value()
    token = settings.require_token().get_secret_value().encode()
    digest = hmac.new(token, b"safewell webhook secret", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def telegram_webhook(request: web.Request) -> web.Response:
    """One update from Telegram: 200 once it is kept by the intake (handled from there)."""
    app = request.app[APP_KEY]
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), request.app[SECRET_KEY].encode()):
        return web.Response(status=401, text="Unauthorized")
    try:
        update = Update.model_validate(await request.json(), context={"bot": app.bot})
    except (ValueError, ValidationError) as exc:  # not JSON, or not an Update
        log.warning("webhook: refused a body that is not an Update: %s", str(exc)[:200])
        return web.Response(status=400, text="Bad Request: not a Telegram Update")
    try:
        await app.intake.accept([update])
    except Exception:
        # Neither the database nor the disk kept it: Telegram delivers it again.
        log.exception("webhook: update %s not kept", update.update_id)
        return web.Response(status=500, text="not kept, deliver again")
    return web.Response(status=200)


SECRET_KEY = web.AppKey("webhook_secret", str)


def create_metrics_app(engine: AsyncEngine) -> web.Application:
    """/metrics and /healthz alone: for `safewell alert worker --metrics-port`."""
    web_app = web.Application()
    _database_routes(web_app, engine, "/healthz")
    return web_app


def create_web_app(app: Running, *, webhook: bool) -> web.Application:
    """Routes for /healthz, /readyz, /metrics and, in webhook mode, Telegram's updates with
    the secret check."""
    web_app = web.Application()
    web_app[APP_KEY] = app
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)
    web_app.router.add_get("/metrics", metrics_page)
    # POST /api/cap (bearer ALERTS_API_TOKEN)
    add_alert_routes(
        web_app, app.settings, app.sessionmaker, app.dispatcher.workflow_data.get("catalog")
    )
    if webhook:
        web_app[SECRET_KEY] = webhook_secret(app.settings)
        web_app.router.add_post(app.settings.webhook.path, telegram_webhook)
    return web_app


def create_api_app(
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    catalog: Catalog,
) -> web.Application:
    """`safewell api` beside a polling bot: POST /api/cap, /metrics, and /healthz and /readyz
    on the database alone (this process handles no update: no forum, Redis or loops)."""
    web_app = web.Application()
    _database_routes(web_app, engine, "/healthz", "/readyz")
    add_alert_routes(web_app, settings, sessionmaker, catalog)
    return web_app


def _database_routes(web_app: web.Application, engine: AsyncEngine, *paths: str) -> None:
    """/metrics, and `paths` (/healthz, /readyz) answering 200 while the database answers, for
    a process that handles no update (`safewell api`, `safewell alert worker`)."""

    async def database(request: web.Request) -> web.Response:
        ready = request.path == "/readyz"
        if await database_ok(engine):
            return web.json_response({"status": "ready" if ready else "ok", "database": "ok"})
        down = "not ready" if ready else "unavailable"
        return web.json_response({"status": down, "database": "down"}, status=503)

    async def metrics_page(request: web.Request) -> web.Response:
        body = await metrics.render(engine)
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE_LATEST})

    for path in paths:
        web_app.router.add_get(path, database)
    web_app.router.add_get("/metrics", metrics_page)
