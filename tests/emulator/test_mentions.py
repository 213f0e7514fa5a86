"""Mentions by link become text_mention entities carrying the User, as on Telegram."""

from __future__ import annotations

from aiogram import Bot

from bot.emulator.client import EmulatorClient


async def test_known_user_link_is_a_text_mention_and_unknown_is_dropped(
    bot: Bot, emu: EmulatorClient
) -> None:
    await emu.create_user(42, first_name="Wang")
    await emu.user(42).send("hi")
    sent = await bot.send_message(
        42,
        '<a href="tg://user?id=42">Wang</a> and <a href="tg://user?id=77">nobody</a>',
        parse_mode="HTML",
    )
    assert sent.entities is not None and len(sent.entities) == 1
    mention = sent.entities[0]
    assert mention.type == "text_mention" and mention.user is not None
    assert (mention.user.id, mention.user.first_name) == (42, "Wang")
    assert sent.text == "Wang and nobody"
