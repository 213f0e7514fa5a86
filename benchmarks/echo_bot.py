"""The framework's ceiling for `benchmarks.load`: a bare aiogram bot that echoes every text.

Run by the benchmark as its own process, like Safewell: `BOT_TOKEN` and `BOT_API_BASE_URL` from
the environment, long polling, aiogram's own defaults (updates handled as concurrent tasks).
"""

from __future__ import annotations

import asyncio
import os

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message


async def main() -> None:
    api = TelegramAPIServer.from_base(os.environ["BOT_API_BASE_URL"])
    bot = Bot(os.environ["BOT_TOKEN"], session=AiohttpSession(api=api))
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "?")

    await dispatcher.start_polling(bot, handle_signals=True)


if __name__ == "__main__":
    asyncio.run(main())
