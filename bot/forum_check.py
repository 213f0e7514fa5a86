"""At start: can the bot work in the officers' forum? What is missing is said clearly (an
error log line, /healthz's detail and a message to the admins) instead of surfacing later as
"not enough rights to create a topic" when the first citizen needs an officer."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ChatMemberAdministrator, ChatMemberOwner

from bot.i18n import Locales

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)


async def forum_problems(bot: Bot, chat_id: int) -> list[str]:
    """What stops the bot from opening and managing topics in `chat_id` (empty: nothing)."""
    try:
        chat = await bot.get_chat(chat_id)
        me = await bot.me()
        member = await bot.get_chat_member(chat_id, me.id)
    except TelegramAPIError as error:
        return [f"the bot cannot read the chat ({error.message}): add the bot to the group"]
    problems = []
    if not chat.is_forum:
        problems.append("topics are off: turn on Topics in the group's settings")
    if isinstance(member, ChatMemberOwner):
        return problems
    if not isinstance(member, ChatMemberAdministrator):
        problems.append("the bot is not an administrator: make it one, with 'Manage topics'")
    elif not member.can_manage_topics:
        problems.append("the bot lacks the administrator right 'Manage topics'")
    return problems


async def check_forum(bot: Bot, settings: Settings, locales: Locales) -> list[str] | None:
    """Check the officers' forum once at start; log and tell the admins what is missing.
    The problems found (None: no forum configured)."""
    chat_id = settings.officers.chat_id
    if chat_id is None:
        return None
    problems = await forum_problems(bot, chat_id)
    if not problems:
        log.info("officers' forum %s: the bot can open and manage topics", chat_id)
        return problems
    log.error("officers' forum %s: %s", chat_id, "; ".join(problems))
    for admin in settings.bot.admin_ids:
        lang = locales.default
        text = locales.t(lang, "forum_problems", chat=chat_id, problems="\n• ".join(problems))
        with contextlib.suppress(TelegramAPIError):  # an admin who never opened the chat
            await bot.send_message(admin, text, parse_mode=None)
    return problems
