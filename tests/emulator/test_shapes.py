"""Every object the emulator produces validates against aiogram's types; the CLI serves."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
from aiogram import Bot
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)

from bot.emulator.client import EmulatorClient
from bot.emulator.core import DEFAULT_TOKEN
from tests.support import REPO


async def test_all_stored_messages_and_updates_validate_as_aiogram_types(
    bot: Bot, emu: EmulatorClient
) -> None:
    forum = await emu.create_forum(members=[8], admins=[9])
    citizen = emu.user(42)
    await citizen.send("/start")
    await citizen.send_photo(b"img", caption="#tag @example_city")
    await citizen.send_location(1.5, 2.5)
    topic = await bot.create_forum_topic(forum["id"], "Case")
    tid = topic.message_thread_id
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Claim", callback_data="claim:1")]]
    )
    card = await bot.send_message(
        forum["id"], "New case", message_thread_id=tid, reply_markup=markup
    )
    await emu.user(8).press(card.message_id, text="Claim", chat_id=forum["id"])
    await bot.copy_message(forum["id"], 42, 2, message_thread_id=tid)
    await bot.forward_message(forum["id"], 42, 1, message_thread_id=tid)
    await bot.send_document(42, BufferedInputFile(b"data", "a.txt"))
    await bot.pin_chat_message(forum["id"], card.message_id)
    await bot.close_forum_topic(forum["id"], tid)
    await bot.reopen_forum_topic(forum["id"], tid)
    await bot.edit_forum_topic(forum["id"], tid, name="Case (claimed)")
    await emu.user(8).send("reply", chat_id=forum["id"], reply_to=card.message_id)
    await citizen.block()
    checked = 0
    for chat_id in (42, forum["id"]):
        for entry in await emu.transcript(chat_id):
            Message.model_validate(entry["message"], context={"bot": bot})
            checked += 1
    # 4 private messages; 9 in the forum (5 of them service messages).
    assert checked == 13
    raw = await bot.get_updates()
    kinds = {next(k for k, v in u.model_dump().items() if v and k != "update_id") for u in raw}
    assert {"message", "callback_query", "my_chat_member"} <= kinds
    for update in raw:
        Update.model_validate(update.model_dump(), context={"bot": bot})


async def test_standalone_server_prints_its_url_and_serves() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.emulator",
        "--port",
        "0",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/bot{DEFAULT_TOKEN}/getMe") as response,
        ):
            body = json.loads(await response.text())
        assert body["ok"] is True
        assert body["result"]["is_bot"] is True
    finally:
        process.terminate()
        await process.wait()
        if process.stdout is not None:
            await process.stdout.read()
