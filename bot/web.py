"""The aiohttp application: Telegram's webhook, and /healthz for load balancers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.alerts.api import add_routes as add_alert_routes
from bot.db.session import database_ok

if TYPE_CHECKING:
    from bot.app import Safewell

APP_KEY = web.AppKey("safewell", object)


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers, 503 when it does not."""
    app: Safewell = request.app[APP_KEY]  # type: ignore[assignment]
    if await database_ok(app.engine):
        return web.json_response({"status": "ok", "database": "ok"})
    return web.json_response({"status": "unavailable", "database": "down"}, status=503)


def create_web_app(app: Safewell, *, webhook: bool) -> web.Application:
    """Routes for /healthz and, in webhook mode, Telegram's updates with the secret check."""
    web_app = web.Application()
    web_app[APP_KEY] = app
    web_app.router.add_get("/healthz", healthz)
    add_alert_routes(web_app, app)  # POST /api/cap (bearer ALERTS_API_TOKEN)
    if webhook:
        secret = app.settings.webhook.secret
        # Handled in the request, not in the background: a failure answers 500 and Telegram
        # redelivers, and a graceful shutdown waits for the update to finish.
        SimpleRequestHandler(
            dispatcher=app.dispatcher,
            bot=app.bot,
            handle_in_background=False,
            secret_token=secret.get_secret_value() if secret else None,
        ).register(web_app, path=app.settings.webhook.path)
    return web_app
