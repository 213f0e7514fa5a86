"""Catch-alls: whatever no feature router took gets a clear answer, never silence."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import refusals
from bot.i18n import Locales
from handlers.filters import PRIVATE, Is


def make_router() -> Router:
    """A new router with this module's handlers, in the order they are tried."""
    router = Router(name=__name__)
    router.edited_message.register(edited, PRIVATE)
    router.message.register(unsupported, PRIVATE, Is(~F.text))
    router.message.register(text, PRIVATE, Is(F.text))
    router.callback_query.register(stale_button)
    return router


async def edited(message: Message, locales: Locales, lang: str) -> None:
    """A citizen edited an earlier message outside a case."""
    await message.answer(locales.t(lang, "edited_ignored"))


async def unsupported(message: Message, locales: Locales, lang: str) -> None:
    """Stickers, photos, voice, files, locations… outside a case."""
    await message.answer(locales.t(lang, "unsupported_content"))


async def text(message: Message, locales: Locales, lang: str) -> None:
    """Any text nothing else answered."""
    await message.answer(locales.t(lang, "not_understood"))


async def stale_button(
    query: CallbackQuery, session: AsyncSession, locales: Locales, lang: str
) -> None:
    """A button whose data no router understands: old, or forged (audited)."""
    refusals.unknown_button(session, actor_id=query.from_user.id, data=query.data)
    await query.answer(locales.t(lang, "button_expired"), show_alert=True)
