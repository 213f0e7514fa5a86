"""Citizen commands every chat has: /start, /help, /language, /privacy, /forget; block
tracking."""

from __future__ import annotations

import contextlib

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from bot import citizens
from bot.config import Settings
from bot.db.models import ALERT_ROLES, Citizen, Role
from bot.i18n import Locales
from bot.privacy import ForgetOutcome, forget_and_commit, privacy_notice
from handlers.filters import PRIVATE, PRIVATE_CALLBACK


class LanguageCb(CallbackData, prefix="lang"):
    code: str


class ForgetCb(CallbackData, prefix="forget"):
    confirm: bool


def make_router() -> Router:
    """A new router with this module's handlers, in the order they are tried."""
    router = Router(name=__name__)
    router.message.filter(PRIVATE)
    router.callback_query.filter(PRIVATE_CALLBACK)
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(language, Command("language"))
    router.callback_query.register(language_chosen, LanguageCb.filter())
    router.message.register(forget, Command("forget"))
    router.callback_query.register(forget_confirmed, ForgetCb.filter())
    router.message.register(privacy, Command("privacy"))
    router.my_chat_member.register(blocked_or_unblocked, PRIVATE)
    return router


async def start(message: Message, locales: Locales, lang: str, command: CommandObject) -> None:
    """/start, optionally with a deep-link payload."""
    name = message.from_user.first_name if message.from_user else ""
    await message.answer(locales.t(lang, "start", name=name))


async def help_(message: Message, locales: Locales, lang: str, roles: set[Role]) -> None:
    """/help: the citizen's help, then the commands the sender's staff roles allow."""
    text = locales.t(lang, "help")
    if roles & ALERT_ROLES:
        text += "\n" + locales.t(lang, "help_staff")
    if Role.ADMIN in roles:
        text += locales.t(lang, "help_admin")
    await message.answer(text)


async def language(message: Message, locales: Locales, lang: str) -> None:
    """/language: offers every language with interface texts."""
    kb = InlineKeyboardBuilder()
    for code in locales.languages:
        kb.button(text=locales.language_name(code), callback_data=LanguageCb(code=code))
    kb.adjust(2)
    await message.answer(locales.t(lang, "language_choose"), reply_markup=kb.as_markup())


async def language_chosen(
    query: CallbackQuery,
    callback_data: LanguageCb,
    citizen: Citizen | None,
    locales: Locales,
    session: AsyncSession,
) -> None:
    """A language button was pressed."""
    if citizen is None or callback_data.code not in locales.languages:
        await query.answer(locales.t(None, "button_expired"), show_alert=True)
        return
    await citizens.choose_language(session, citizen, callback_data.code)
    text = locales.t(callback_data.code, "language_set")
    await query.answer()
    if query.message is not None:
        await query.message.answer(text)


async def forget(message: Message, locales: Locales, lang: str) -> None:
    """/forget: asks before deleting the citizen's data."""
    kb = InlineKeyboardBuilder()
    kb.button(text=locales.t(lang, "forget_yes"), callback_data=ForgetCb(confirm=True))
    kb.button(text=locales.t(lang, "forget_no"), callback_data=ForgetCb(confirm=False))
    await message.answer(locales.t(lang, "forget_confirm"), reply_markup=kb.as_markup())


async def forget_confirmed(
    query: CallbackQuery,
    callback_data: ForgetCb,
    citizen: Citizen | None,
    session: AsyncSession,
    locales: Locales,
    lang: str,
) -> None:
    """Deletes what the bot stores, keeping only case records the bureau must retain
    (`bot.privacy.forget_and_commit`)."""
    await query.answer()
    if isinstance(query.message, Message):
        with contextlib.suppress(TelegramBadRequest):  # pressed twice: already removed
            await query.message.edit_reply_markup(reply_markup=None)
    if citizen is None or not callback_data.confirm:
        await query.bot.send_message(query.from_user.id, locales.t(lang, "forget_kept"))  # type: ignore[union-attr]
        return
    outcome = await forget_and_commit(session, citizen.id)  # committed before Telegram
    key = {
        ForgetOutcome.DONE: "forget_done",
        ForgetOutcome.DONE_CASES_KEPT: "forget_done_cases_kept",
        ForgetOutcome.OPEN_CASE: "forget_open_case",
    }.get(outcome, "forget_kept")
    await query.bot.send_message(query.from_user.id, locales.t(lang, key))  # type: ignore[union-attr]


async def privacy(message: Message, locales: Locales, lang: str, settings: Settings) -> None:
    """/privacy: what is kept about the citizen and for how long (from the settings)."""
    await message.answer(privacy_notice(locales, lang, settings.retention))


async def blocked_or_unblocked(event: ChatMemberUpdated, citizen: Citizen | None) -> None:
    """The citizen blocked (kicked) or unblocked the bot."""
    if citizen is None:
        return
    citizens.record_blocked(citizen, event.new_chat_member.status == "kicked")
