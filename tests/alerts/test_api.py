"""POST /api/cap on its own: the whole body is read (large and chunked), sizes and bad input
are refused with the right status and a reason."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts.api import add_routes
from bot.alerts.cap import MAX_CAP_BYTES
from bot.alerts.catalog import Catalog
from bot.config import load_settings
from bot.db.models import Alert, utcnow
from tests.support import KNOWLEDGE, REPO
from tests.support.alerts import cap_sample
from tests.support.processes import free_port

TOKEN = "cap-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/cap+xml"}


def padded(size: int) -> bytes:
    """A valid alert of about `size` bytes: a long English description."""
    text = cap_sample("severe_weather.xml").decode()
    base = len(text.encode())
    filler = ("Stay indoors and away from windows. " * (size // 36 + 1))[: size - base]
    out = re.sub(r"(<description>)", rf"\g<1>{filler}", text, count=1).encode()
    assert abs(len(out) - size) < 100
    return out


@pytest.fixture
async def client(
    sessionmaker: async_sessionmaker[AsyncSession], catalog: Catalog
) -> AsyncIterator[TestClient[Any, Any]]:
    """The CAP route on a bare aiohttp app, backed by the test database."""
    settings = load_settings(
        env_file=None, alerts={"api_token": TOKEN}, faq={"knowledge_dir": KNOWLEDGE}
    )
    web_app = web.Application()
    add_routes(web_app, settings, sessionmaker, catalog)
    async with TestClient(TestServer(web_app)) as test_client:
        yield test_client


async def test_a_large_alert_is_read_whole(
    client: TestClient[Any, Any], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = padded(990 * 1024)
    resp = await client.post("/api/cap", data=io.BytesIO(body), headers=AUTH)
    assert resp.status == 201, await resp.text()
    async with sessionmaker() as session:
        alert = (await session.scalars(select(Alert))).one()
    assert len(alert.content["en"]["description"]) > 980 * 1024


async def test_a_chunked_alert_is_read_whole(client: TestClient[Any, Any]) -> None:
    body = padded(84 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]
            await asyncio.sleep(0.002)  # the server sees the body arrive piece by piece

    resp = await client.post("/api/cap", data=chunks(), headers=AUTH)
    assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert resp.status == 201, await resp.text()


async def test_too_big_is_413_with_or_without_a_length(client: TestClient[Any, Any]) -> None:
    body = padded(MAX_CAP_BYTES + 10)
    resp = await client.post("/api/cap", data=io.BytesIO(body), headers=AUTH)
    assert resp.status == 413
    assert "at most" in (await resp.json())["error"]

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    resp = await client.post("/api/cap", data=chunks(), headers=AUTH)
    assert resp.status == 413


def utf16(text: str, codec: str) -> bytes:
    return text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode(codec)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be"])
async def test_utf16_cap_is_decoded_and_stored_as_text(
    client: TestClient[Any, Any], sessionmaker: async_sessionmaker[AsyncSession], codec: str
) -> None:
    # XML parsers must read UTF-16 (XML 1.0, 4.3.3): expat does, so it is accepted, and what
    # is kept is the text, not UTF-8-decoded UTF-16 full of NUL characters.
    resp = await client.post(
        "/api/cap", data=utf16(cap_sample("amber_alert.xml").decode(), codec), headers=AUTH
    )
    assert resp.status == 201, await resp.text()
    async with sessionmaker() as session:
        alert = (await session.scalars(select(Alert))).one()
    assert alert.content["zh"]["headline"] == "儿童失踪警报：河畔区一名7岁女童走失"
    assert alert.cap_xml is not None and "\x00" not in alert.cap_xml
    assert "<identifier>EXAMPLECITY-PSB-2026-11-21-0001</identifier>" in alert.cap_xml


def cap_time(hours: float) -> str:
    return (utcnow() + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@pytest.mark.parametrize(
    ("sent", "expires", "reason"),
    [
        (None, "9999-12-31T23:00:00-12:00", "9999-12-31T23:00:00-12:00 is beyond"),
        # Both in the future, so that only the order is wrong (not "expired already").
        (cap_time(49), cap_time(48), "is not after <sent>"),
        (cap_time(48), cap_time(48), "is not after <sent>"),
    ],
    ids=["year-9999-at-minus-12", "expires-before-sent", "expires-at-sent"],
)
async def test_impossible_expiry_is_400_with_the_reason(
    client: TestClient[Any, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
    sent: str | None,
    expires: str,
    reason: str,
) -> None:
    text = cap_sample("amber_alert.xml").decode()
    text = re.sub(r"<expires>[^<]+", f"<expires>{expires}", text, count=1)
    if sent is not None:
        text = re.sub(r"<sent>[^<]+", f"<sent>{sent}", text, count=1)
    resp = await client.post("/api/cap", data=text.encode(), headers=AUTH)
    body = await resp.json()
    assert resp.status == 400, body
    assert "invalid CAP" in body["error"] and reason in body["error"]
    assert "info[1]/expires" in body["error"]
    async with sessionmaker() as session:
        assert (await session.scalars(select(Alert))).all() == []


async def test_safewell_api_serves_without_a_bot_token_or_the_bot(tmp_path: Path) -> None:
    """`safewell api` beside a polling bot builds only what its routes read: it starts with no
    BOT_TOKEN, is ready with an officers' forum configured (it handles no update, so it checks
    no forum), and queues a CAP alert."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_"))}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'api.sqlite3'}",
        FAQ_KNOWLEDGE_DIR=str(KNOWLEDGE),
        ALERTS_API_TOKEN=TOKEN,
        OFFICERS_CHAT_ID="-1001000000001",
        PYTHONPATH=str(REPO),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "api",
        "--port",
        str(port),
        cwd=tmp_path,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                if proc.returncode is not None:
                    stderr = await proc.stderr.read() if proc.stderr else b""
                    raise AssertionError(f"safewell api exited: {stderr.decode()[-2000:]}")
                try:
                    async with http.get(f"{base}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["database"] == "ok"
            sample = cap_sample("severe_weather.xml")
            async with http.post(f"{base}/api/cap", data=sample, headers=AUTH) as resp:
                assert resp.status == 201, await resp.text()
    finally:
        proc.terminate()
        await proc.wait()
