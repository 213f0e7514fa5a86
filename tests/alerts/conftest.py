"""Fixtures for the alerts engine: an in-process emulator, a Bot on it, the sample catalog."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts import service
from bot.alerts.catalog import Catalog
from bot.db import repo
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer

KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"
REDIS_URL = os.environ.get("SAFEWELL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_REDIS = os.environ.get("SAFEWELL_REQUIRE_REDIS") == "1"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The sample Example City categories and districts."""
    return Catalog.load(KNOWLEDGE)


@pytest.fixture
def emulator_limits() -> Limits:
    """Flood limits off unless a test turns them on."""
    return Limits(enabled=False)


@pytest.fixture
async def emulator(emulator_limits: Limits) -> AsyncIterator[EmulatorServer]:
    """A running emulator."""
    async with EmulatorServer(Emulator(EmulatorConfig(limits=emulator_limits))) as server:
        yield server


@pytest.fixture
async def tg(emulator: EmulatorServer) -> AsyncIterator[Bot]:
    """A real aiogram Bot talking to the emulator."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(emulator.base_url))
    bot = Bot(emulator.token, session=session)
    try:
        yield bot
    finally:
        await bot.session.close()


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


@pytest.fixture
async def redis_factory() -> AsyncIterator[Callable[[], Redis]]:
    probe: Redis = Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        await probe.ping()
    except Exception as exc:  # any connection failure means "no Redis here"
        await probe.aclose()
        message = (
            f"Redis not reachable at SAFEWELL_TEST_REDIS_URL ({REDIS_URL}: {exc}); start one "
            "there to test the shared limiter"
        )
        if REQUIRE_REDIS:
            pytest.fail(message)
        pytest.skip(message)
    clients: list[Redis] = [probe]

    def make() -> Redis:
        # A separate client (own connection pool) per simulated process.
        client: Redis = Redis.from_url(REDIS_URL)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
