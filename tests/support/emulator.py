"""An aiogram Bot on the emulator, for tests that drive it without the whole application."""

from __future__ import annotations

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.emulator.server import EmulatorServer


def make_bot(
    server: EmulatorServer, token: str | None = None, default: DefaultBotProperties | None = None
) -> Bot:
    """An aiogram Bot whose session talks to the emulator instead of Telegram."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
    return Bot(token or server.token, session=session, default=default)
