"""The aiohttp side: /healthz reflects the database; the webhook is never open, keeps an
update before it answers 200, and refuses what is not an Update."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Safewell, build
from bot.config import load_settings
from bot.db.models import InboxUpdate
from bot.db.session import create_engine, create_sessionmaker
from bot.web import create_web_app, webhook_secret

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


@pytest.fixture
async def open_app(db_url: str, tmp_path: Path) -> AsyncIterator[Safewell]:
    """Webhook mode with WEBHOOK_SECRET unset."""
    settings = load_settings(
        env_file=None,
        bot={"token": TOKEN, "api_base_url": "http://127.0.0.1:9"},
        database={"url": db_url},
        webhook={"url": "https://bot.example.org"},
        intake={"spool_dir": tmp_path / "spool"},
    )
    safewell = await build(settings, migrate=False)
    yield safewell
    await safewell.close()


async def test_an_unset_secret_is_derived_never_open(open_app: Safewell) -> None:
    secret = webhook_secret(open_app.settings)
    assert len(secret) >= 32 and TOKEN not in secret
    assert webhook_secret(open_app.settings) == secret  # every process derives the same one
    update = {
        "update_id": 7,
        "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}},
    }
    async with TestClient(TestServer(create_web_app(open_app, webhook=True))) as client:
        assert (await client.post("/telegram/webhook", json=update)).status == 401
        signed = {"X-Telegram-Bot-Api-Secret-Token": secret}
        resp = await client.post("/telegram/webhook", json=update, headers=signed)
        assert resp.status == 200
        # Kept before the 200: the update is in the inbox, to be handled from there.
        async with open_app.sessionmaker() as session:
            kept = await session.get(InboxUpdate, 7)
        assert kept is not None and json.loads(kept.payload)["update_id"] == 7
        for body in ("{not json", '{"hello": "world"}', "[1, 2]"):
            resp = await client.post("/telegram/webhook", data=body, headers=signed)
            assert resp.status == 400, body
            assert "not a Telegram Update" in await resp.text()


async def test_an_update_neither_database_nor_disk_can_keep_answers_500(
    open_app: Safewell, tmp_path: Path
) -> None:
    secret = webhook_secret(open_app.settings)
    healthy = open_app.intake.sessionmaker
    away = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    open_app.intake.sessionmaker = create_sessionmaker(away)
    (tmp_path / "spool").write_text("a file where the spool folder should be")
    update = {
        "update_id": 8,
        "message": {"message_id": 2, "date": 0, "chat": {"id": 1, "type": "private"}},
    }
    try:
        async with TestClient(TestServer(create_web_app(open_app, webhook=True))) as client:
            resp = await client.post(
                "/telegram/webhook",
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": secret},
            )
            assert resp.status == 500  # Telegram will deliver it again
    finally:
        open_app.intake.sessionmaker = healthy
        await away.dispose()
