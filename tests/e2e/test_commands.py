"""Each kind of user sees their own commands: the menus Telegram shows, and /help."""

from __future__ import annotations

from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat

from bot.commands import ADMIN, CITIZEN, OFFICERS, STAFF
from tests.support.e2e import ADMIN_ID, FORUM_ID, Harness, bot_says, eventually
from tests.support.e2e import STAFF as STAFF_MEMBERS

COMMS = next(iter(STAFF_MEMBERS))


async def test_menus_are_set_per_kind_of_user_and_language(harness: Harness) -> None:
    assert harness.app is not None
    bot = harness.app.bot

    async def menu(scope: BotCommandScopeAllPrivateChats | BotCommandScopeChat, lang: str | None):
        return await bot.get_my_commands(scope=scope, language_code=lang)

    def names(commands: list[BotCommand]) -> list[str]:
        return [c.command for c in commands]

    citizens = BotCommandScopeAllPrivateChats()
    zh = await eventually(lambda: menu(citizens, "zh"))
    assert names(zh) == list(CITIZEN)
    assert dict((c.command, c.description) for c in zh)["human"] == "转人工：与工作人员对话"
    assert names(await menu(citizens, None)) == list(CITIZEN)  # other languages: the default
    en = {c.command: c.description for c in await menu(citizens, "en")}
    assert en["privacy"] == "What I keep about you, and for how long"
    forum = await eventually(lambda: menu(BotCommandScopeChat(chat_id=FORUM_ID), "en"))
    assert names(forum) == list(OFFICERS)
    staff = await eventually(lambda: menu(BotCommandScopeChat(chat_id=COMMS), "en"))
    assert names(staff) == [*CITIZEN, *STAFF]
    admin = await eventually(lambda: menu(BotCommandScopeChat(chat_id=ADMIN_ID), None))
    assert names(admin) == [*CITIZEN, *STAFF, *ADMIN]


async def test_help_lists_what_the_sender_may_do(harness: Harness) -> None:
    ann = await harness.new_citizen(741)
    citizen_help = (await ann.say("/help"))["text"]
    assert "/human" in citizen_help and "/pending" not in citizen_help
    comms = await harness.new_citizen(COMMS, STAFF_MEMBERS[COMMS])
    staff_help = (await comms.say("/help"))["text"]
    assert "/human" in staff_help and "/pending" in staff_help and "/cancel_alert" in staff_help
    assert "/reload" not in staff_help  # admins only
    await harness.emu.user(ADMIN_ID).send("/help", chat_id=FORUM_ID)
    officers = await bot_says(harness, FORUM_ID, "Officers' commands")
    assert "/claim" in officers["text"] and "/onduty" in officers["text"]
