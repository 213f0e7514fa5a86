"""HTTP API: POST /api/cap with a CAP 1.2 body and `Authorization: Bearer <ALERTS_API_TOKEN>`."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts import service
from bot.alerts.cap import MAX_CAP_BYTES, CapError
from bot.alerts.capio import describe, import_cap, outcome
from bot.alerts.catalog import Catalog
from bot.config import Settings

log = logging.getLogger(__name__)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole request body, or None when it is longer than limit bytes.

    `StreamReader.read(n)` returns what is buffered now (one TCP read or one chunk of a chunked
    body), not n bytes: read until the end of the body.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


async def post_cap(
    request: web.Request,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    catalog: Catalog | None,
) -> web.Response:
    """Validate and queue one CAP alert; 201 with its id and status."""
    token = settings.alerts.api_token
    if token is None:
        return _error(404, "the CAP API is disabled (set ALERTS_API_TOKEN)")
    given = request.headers.get("Authorization", "")
    expected = "Bearer " + token.get_secret_value()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return web.json_response(
            {"ok": False, "error": "missing or wrong bearer token"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if (request.content_length or 0) > MAX_CAP_BYTES:
        return _error(413, f"a CAP message may be at most {MAX_CAP_BYTES} bytes")
    body = await read_body(request, MAX_CAP_BYTES)
    if body is None:
        return _error(413, f"a CAP message may be at most {MAX_CAP_BYTES} bytes")
    if catalog is None:
        catalog = Catalog.load(settings.faq.knowledge_dir)
    async with sessionmaker() as session:
        try:
            alert = await import_cap(
                session,
                body,
                catalog,
                default_lang=settings.bot.default_language,
                approval_severities=settings.alerts.approval_severities,
                source="api",
            )
        except CapError as exc:
            return _error(400, f"invalid CAP: {exc.message}")
        except service.AlertError as exc:
            return _error(422, str(exc))
        await session.commit()
    log.info("CAP %s accepted over HTTP: %s", alert.identifier, describe(alert))
    return web.json_response({"ok": True, **outcome(alert)}, status=201)


def add_routes(
    web_app: web.Application,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    catalog: Catalog | None = None,
) -> None:
    """Register the alert API on an aiohttp application (`catalog`: the running bot's; None
    reads it from the knowledge folder on each request)."""

    async def handler(request: web.Request) -> web.Response:
        return await post_cap(request, settings, sessionmaker, catalog)

    web_app.router.add_post("/api/cap", handler)
