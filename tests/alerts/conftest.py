"""Fixtures for the alerts engine: an in-process emulator, a Bot on it, the sample catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts import service
from bot.alerts.catalog import Catalog
from bot.db import repo
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer

KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"


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
