"""Fixtures for the handoff service: the real emulator as Telegram, a manual clock, both DBs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cases.service import HandoffService
from bot.config import OfficersSettings
from bot.emulator.client import EmulatorClient
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer
from bot.i18n import Locales
from tests.support import KNOWLEDGE
from tests.support.cases import BACKUP, FORUM, OFFICER, ManualClock
from tests.support.emulator import make_bot


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
async def emu() -> AsyncIterator[tuple[EmulatorServer, EmulatorClient]]:
    """A running emulator with the officers' forum and a backup group."""
    server = EmulatorServer(Emulator(EmulatorConfig(limits=Limits(enabled=False))))
    async with server, EmulatorClient(server.base_url) as client:
        await client.create_user(OFFICER, first_name="Officer Wu")
        await client.create_forum(members=[OFFICER], chat_id=FORUM)
        await client.create_group(title="Backup", members=[OFFICER], chat_id=BACKUP)
        yield server, client


@pytest.fixture
async def bot(emu: tuple[EmulatorServer, EmulatorClient]) -> AsyncIterator[Bot]:
    instance = make_bot(emu[0], default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    yield instance
    await instance.session.close()


@pytest.fixture
def locales() -> Locales:
    return Locales.load(KNOWLEDGE / "locales", "en")


@pytest.fixture
def officers_settings() -> OfficersSettings:
    return OfficersSettings(
        _env_file=None,
        chat_id=FORUM,
        backup_chat_id=BACKUP,
        repage_minutes=5,
        escalate_minutes=15,
        wait_notice_minutes=3,
    )


@pytest.fixture
def service(
    bot: Bot,
    sessionmaker: async_sessionmaker[AsyncSession],
    locales: Locales,
    officers_settings: OfficersSettings,
    clock: ManualClock,
) -> HandoffService:
    return HandoffService(bot, sessionmaker, locales, officers_settings, clock=clock)
