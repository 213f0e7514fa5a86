"""The aiohttp side: /healthz reflects the database; the webhook refuses a wrong secret."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Safewell, build
from bot.config import load_settings
from bot.db.session import create_engine
from bot.web import create_web_app

TOKEN = "123456789:AAH-valid_looking_secret_for_tests_only"


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[Safewell]:
    settings = load_settings(
        env_file=None,
        bot={"token": TOKEN, "api_base_url": "http://127.0.0.1:9"},
        database={"url": db_url},
        webhook={"url": "https://bot.example.org", "secret": "s3cret-token"},
    )
    safewell = await build(settings, migrate=False)
    yield safewell
    await safewell.close()


async def test_healthz_ok_then_503_when_database_is_down(app: Safewell) -> None:
    async with TestClient(TestServer(create_web_app(app, webhook=False))) as client:
        resp = await client.get("/healthz")
        assert resp.status == 200
        assert (await resp.json())["database"] == "ok"
        healthy_engine = app.engine
        app.engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
        try:
            resp = await client.get("/healthz")
            assert resp.status == 503
            assert (await resp.json())["database"] == "down"
        finally:
            await app.engine.dispose()
            app.engine = healthy_engine


async def test_webhook_requires_the_secret_header(app: Safewell) -> None:
    update = {
        "update_id": 1,
        "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}},
    }
    async with TestClient(TestServer(create_web_app(app, webhook=True))) as client:
        resp = await client.post("/telegram/webhook", json=update)
        assert resp.status == 401
        resp = await client.post(
            "/telegram/webhook",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"},
        )
        assert resp.status == 401
