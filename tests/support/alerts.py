"""Helpers for the alerts tests: CAP samples that do not age, subscribers, what they received,
an engine and a queued alert on the test database, and the Redis server the shared limiter is
tested on."""

from __future__ import annotations

import os
import re
from datetime import timedelta

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts import service
from bot.alerts.catalog import Catalog
from bot.alerts.engine import Broadcaster, EngineConfig
from bot.alerts.ratelimit import LocalRateLimiter
from bot.db import repo
from bot.db.models import utcnow
from bot.emulator.server import EmulatorServer
from tests.support import REPO

REDIS_URL = os.environ.get("SAFEWELL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_REDIS = os.environ.get("SAFEWELL_REQUIRE_REDIS") == "1"
CAP_SAMPLES = REPO / "tests" / "alerts" / "data"


def cap_sample(name: str) -> bytes:
    """A sample CAP file with its expiry moved two days ahead, so the test does not age."""
    text = (CAP_SAMPLES / name).read_text(encoding="utf-8")
    future = (utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S-00:00")
    return re.sub(r"(<(?:cap:)?expires>)[^<]+", rf"\g<1>{future}", text).encode()


async def add_subscribers(
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: EmulatorServer,
    ids: range | list[int],
    category: str = "traffic",
    district: str = "*",
    language: str = "en",
) -> None:
    """Citizens who started the bot (a private chat exists) and subscribed."""
    async with sessionmaker() as session:
        for uid in ids:
            emulator.emulator.create_user(uid, first_name=f"C{uid}", language_code=language)
            emulator.emulator.private_chat(uid)
            await repo.upsert_citizen(
                session,
                uid,
                first_name=f"C{uid}",
                last_name=None,
                username=None,
                telegram_language=language,
            )
            await service.subscribe(session, uid, category, district)
        await session.commit()


def texts_in(emulator: EmulatorServer, chat_id: int) -> list[dict[str, object]]:
    """Messages the bot sent into a private chat."""
    return [
        e["message"]
        for e in emulator.emulator.transcript(chat_id)
        if e["message"].get("from", {}).get("is_bot")
    ]


CONTENT = {
    "en": {"headline": "Road closed", "description": "Bridge works.", "instruction": "Detour."},
    "zh": {"headline": "道路封闭", "description": "桥梁施工。", "instruction": "请绕行。"},
}


def make_engine(
    sessionmaker: async_sessionmaker[AsyncSession],
    tg: Bot,
    catalog: Catalog,
    **config: object,
) -> Broadcaster:
    cfg = EngineConfig(concurrency=8, batch_size=20, flush_interval=0.05, poll_interval=0.05)
    for key, value in config.items():
        setattr(cfg, key, value)
    return Broadcaster(sessionmaker, tg, LocalRateLimiter(10_000, burst=50), catalog, "en", cfg)


async def queued_alert(
    sessionmaker: async_sessionmaker[AsyncSession],
    severity: str = "Moderate",
    districts: list[str] | None = None,
    category: str = "traffic",
    **fields: object,
) -> int:
    draft = service.AlertDraft(
        category=category,
        severity=severity,
        content=CONTENT,
        districts=districts or [],
        **fields,  # type: ignore[arg-type]
    )
    async with sessionmaker() as session:
        alert = await service.create_draft(session, draft, author_id=1)
        await service.submit(session, alert.id, actor_id=1, approval_severities=[])
        await session.commit()
        return alert.id


async def states(sessionmaker: async_sessionmaker[AsyncSession], alert_id: int) -> dict[str, int]:
    async with sessionmaker() as session:
        return await service.alert_counts(session, alert_id)
