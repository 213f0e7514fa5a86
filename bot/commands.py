"""The command menus Telegram shows: each kind of user sees their own commands, in their
language (set once at start by a background worker; a failure is logged, never fatal)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BotCommandScopeUnion,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import ALERT_ROLES, Role, StaffRole
from bot.i18n import Locales

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

CITIZEN = (
    "start",
    "help",
    "human",
    "subscribe",
    "unsubscribe",
    "mysubscriptions",
    "alerts",
    "language",
    "privacy",
    "forget",
)
# Communications staff, in their private chat with the bot (besides the citizen commands).
STAFF = ("alert", "pending", "stop", "resume", "cancel_alert", "update_alert", "stats")
ADMIN = ("reload",)
# Officers, in the forum (the topic commands work inside a case's topic).
OFFICERS = (
    "help",
    "cases",
    "onduty",
    "offduty",
    "claim",
    "close",
    "note",
    "transfer",
    "ban",
    "unban",
)


def menu(locales: Locales, lang: str, names: tuple[str, ...]) -> list[BotCommand]:
    """The commands `names` with their descriptions (`cmd_<name>`) in `lang`."""
    return [BotCommand(command=n, description=locales.t(lang, f"cmd_{n}")) for n in names]


def staff_menu(roles: set[Role]) -> tuple[str, ...]:
    """A staff member's private-chat menu: the citizen's, then what their roles allow."""
    names: tuple[str, ...] = CITIZEN
    if roles & ALERT_ROLES:
        names += STAFF
    if Role.ADMIN in roles:
        names += ADMIN
    return names


async def publish_commands(
    bot: Bot,
    settings: Settings,
    locales: Locales,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Set every menu: citizens (all private chats), the officers' forum, and each staff
    member's private chat; one per language plus the default for other languages.

    Run once at start, in the background (start never waits on it); a failure is logged:
    Telegram or the database away at start leaves the menus as they were."""
    try:
        await _publish(bot, settings, locales, sessionmaker)
    except Exception as error:
        log.warning("command menus not set: %s: %s", type(error).__name__, error)


async def _publish(
    bot: Bot,
    settings: Settings,
    locales: Locales,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    menus: list[tuple[BotCommandScopeUnion, tuple[str, ...]]] = [
        (BotCommandScopeAllPrivateChats(), CITIZEN)
    ]
    forum = settings.officers.chat_id
    if forum is not None:
        menus.append((BotCommandScopeChat(chat_id=forum), OFFICERS))
    async with sessionmaker() as session:
        rows = (await session.execute(select(StaffRole.user_id, StaffRole.role))).all()
    staff: dict[int, set[Role]] = {}
    for user_id, role in rows:
        staff.setdefault(user_id, set()).add(Role(role))
    for user_id in settings.bot.admin_ids:  # admins by configuration (BOT_ADMIN_IDS)
        staff.setdefault(user_id, set()).add(Role.ADMIN)
    for user_id, roles in sorted(staff.items()):
        if roles & ALERT_ROLES:
            menus.append((BotCommandScopeChat(chat_id=user_id), staff_menu(roles)))
    for scope, names in menus:
        for lang in (None, *locales.languages):
            try:
                await bot.set_my_commands(
                    menu(locales, lang or locales.default, names), scope=scope, language_code=lang
                )
            except TelegramAPIError as error:  # a staff member who never opened the chat
                log.warning("commands for %s (%s): %s", scope.type, lang or "default", error)
    log.info("command menus set: %d scopes", len(menus))
