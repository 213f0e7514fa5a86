"""Citizens' questions answered from the FAQ: answer, "Did you mean…", or an honest "no"."""

from __future__ import annotations

import html
import logging

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.types import InlineKeyboardButton as Button
from sqlalchemy.ext.asyncio import AsyncSession

from bot import commands, metrics, refusals
from bot.db.models import Citizen, Role
from bot.faq import questions
from bot.faq.models import FaqEntry
from bot.faq.service import FaqService
from bot.i18n import Locales
from handlers.callbacks import FeedbackCb, HumanCb, PickCb
from handlers.filters import PRIVATE, Is
from handlers.officers import GROUP_COMMANDS, TOPIC_COMMANDS

log = logging.getLogger(__name__)

# Matching reads the start of a message; a 4,000-character story is a report, not a question.
MAX_QUERY_CHARS = 500
MAX_RELATED_BUTTONS = 3


def make_router() -> Router:
    """A new router with this module's handlers, in the order they are tried."""
    router = Router(name=__name__)
    router.message.filter(PRIVATE)
    router.message.register(reload_knowledge, Command("reload"))
    router.message.register(other_command, Is(F.text.regexp(r"^/[A-Za-z0-9_]+(@\w+)?(\s|$)")))
    router.message.register(question, Is(F.text))
    router.callback_query.register(suggestion_picked, PickCb.filter())
    router.callback_query.register(feedback, FeedbackCb.filter())
    return router


def render_entry(entry: FaqEntry, lang: str, locales: Locales) -> str:
    """An entry as the citizen sees it: title, answer, links, date or clarification mark."""
    content = entry.text(lang, fallbacks=(locales.default,))
    parts = []
    if content.is_fallback:
        parts.append(locales.t(lang, "faq_fallback_note"))
    parts.append(locales.t(lang, "faq_answer_title", question=content.question))
    parts.append(content.answer.strip())
    for link in entry.links:
        parts.append(f'🔗 <a href="{html.escape(link.url)}">{html.escape(link.title)}</a>')
    if entry.updated is not None:
        key = "faq_clarification" if entry.clarification else "faq_updated"
        parts.append(locales.t(lang, key, date=entry.updated.isoformat()))
    return "\n\n".join(parts)


def answer_keyboard(
    entry: FaqEntry, query_id: int, lang: str, locales: Locales, faq: FaqService
) -> InlineKeyboardMarkup:
    """👍/👎 plus buttons for related entries.

    The markup is built directly: aiogram's keyboard builder copies every button at each
    step, and this runs for every answer in a surge."""
    rows = [
        [
            Button(
                text=locales.t(lang, "faq_helpful"),
                callback_data=FeedbackCb(query_id=query_id, up=True).pack(),
            ),
            Button(
                text=locales.t(lang, "faq_not_helpful"),
                callback_data=FeedbackCb(query_id=query_id, up=False).pack(),
            ),
        ]
    ]
    related = [faq.kb.entries[r] for r in entry.related if r in faq.kb.entries]
    for other in related[:MAX_RELATED_BUTTONS]:
        title = other.text(lang, fallbacks=(locales.default,)).question
        pick = PickCb(query_id=query_id, entry_id=other.id).pack()
        rows.append([Button(text=f"↪ {title}", callback_data=pick)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def send_entry(
    message: Message, entry: FaqEntry, query_id: int, lang: str, locales: Locales, faq: FaqService
) -> None:
    """Send one FAQ answer with its feedback buttons."""
    await message.answer(
        render_entry(entry, lang, locales),
        reply_markup=answer_keyboard(entry, query_id, lang, locales, faq),
        disable_web_page_preview=True,
    )


async def reload_knowledge(
    message: Message,
    roles: set[Role],
    faq: FaqService,
    locales: Locales,
    lang: str,
    session: AsyncSession,
) -> None:
    """/reload: an admin swaps in the edited knowledge (the old stays if the new is broken)."""
    user_id = message.from_user.id if message.from_user else None
    errors = await faq.reload_by(session, actor_id=user_id, roles=roles)
    if errors is None:
        await message.answer(locales.t(lang, "not_allowed"))
        return
    if errors:
        listed = "\n".join(str(p) for p in errors[:10])
        await message.answer(locales.t(lang, "reload_failed", problems=listed))
    else:
        await message.answer(locales.t(lang, "reload_done", entries=len(faq.kb.entries)))


# Staff and officers' commands: a citizen who sends one is told it is not theirs (and it is
# audited), instead of an FAQ answer to "/close".
STAFF_COMMANDS = frozenset(
    {*commands.STAFF, *commands.ADMIN} | set(TOPIC_COMMANDS) | set(GROUP_COMMANDS)
)


async def other_command(
    message: Message, session: AsyncSession, locales: Locales, lang: str, roles: set[Role]
) -> None:
    """A command no router took: someone else's, or unknown; never an FAQ question."""
    name = (message.text or "").split()[0][1:].split("@")[0].lower()
    if name in STAFF_COMMANDS:
        user_id = message.from_user.id if message.from_user else None
        refusals.command_refused(session, actor_id=user_id, command=name, roles=roles)
        await message.answer(locales.t(lang, "not_allowed"))
        return
    await message.answer(locales.t(lang, "unknown_command"))


async def question(
    message: Message,
    session: AsyncSession,
    citizen: Citizen | None,
    faq: FaqService,
    locales: Locales,
    throttled: bool,
) -> None:
    """Any other text from a citizen: small talk, or a question for the FAQ."""
    text = (message.text or "").strip()
    lang = locales.for_citizen(citizen, text)
    citizen_id = citizen.id if citizen else None
    if throttled:
        # Kept for curators; the flood notice was already sent once by the middleware.
        questions.record_throttled(session, citizen_id, text, lang)
        metrics.FAQ.labels("throttled").inc()
        return
    talk = faq.small_talk(text, lang)
    if talk is not None:
        await message.answer(locales.t(lang, f"smalltalk_{talk}"))
        return
    result = faq.match(text[:MAX_QUERY_CHARS], lang)
    metrics.FAQ.labels(result.outcome).inc()
    # The connection goes back before the answer; the question is written after it.
    query_id = await questions.record_question(session, citizen_id, text, lang, result)
    best = result.best
    if result.outcome == "answer" and best is not None:
        await send_entry(message, faq.kb.entries[best.entry_id], query_id, lang, locales, faq)
        return
    human = HumanCb(query_id=query_id).pack()
    if result.outcome == "suggest":
        rows = []
        for scored in result.suggestions:
            title = faq.kb.entries[scored.entry_id].text(lang, fallbacks=(locales.default,))
            pick = PickCb(query_id=query_id, entry_id=scored.entry_id).pack()
            rows.append([Button(text=title.question, callback_data=pick)])
        rows.append([Button(text=locales.t(lang, "faq_none_of_these"), callback_data=human)])
        await message.answer(
            locales.t(lang, "faq_did_you_mean"),
            reply_markup=InlineKeyboardMarkup(inline_keyboard=rows),
        )
        return
    officer = Button(text=locales.t(lang, "faq_talk_to_officer"), callback_data=human)
    await message.answer(
        locales.t(lang, "faq_no_answer"),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[officer]]),
    )


async def suggestion_picked(
    callback: CallbackQuery,
    callback_data: PickCb,
    session: AsyncSession,
    citizen: Citizen | None,
    faq: FaqService,
    locales: Locales,
    lang: str,
) -> None:
    """A "Did you mean…" or related-entry button: answer with that entry."""
    query = await questions.own_question(session, callback_data.query_id, callback.from_user.id)
    entry = faq.kb.entries.get(callback_data.entry_id)
    if query is None or entry is None or not isinstance(callback.message, Message):
        await callback.answer(locales.t(lang, "button_expired"), show_alert=True)
        return
    await callback.answer()
    await questions.record_pick(session, query, entry.id)
    await send_entry(callback.message, entry, query.id, query.language, locales, faq)


async def feedback(
    callback: CallbackQuery,
    callback_data: FeedbackCb,
    session: AsyncSession,
    locales: Locales,
    lang: str,
) -> None:
    """👍 / 👎 under an answer: recorded once, buttons removed."""
    rating = await questions.rate_answer(
        session, callback_data.query_id, callback.from_user.id, up=callback_data.up
    )
    if rating is None:
        await callback.answer(locales.t(lang, "button_expired"), show_alert=True)
        return
    if rating.recorded:
        key = "faq_feedback_thanks" if callback_data.up else "faq_feedback_sorry"
        await callback.answer(locales.t(rating.language, key), show_alert=not callback_data.up)
    else:  # rated before: this press changed nothing
        await callback.answer(locales.t(rating.language, "faq_feedback_given"))
    if isinstance(callback.message, Message) and callback.message.reply_markup is not None:
        kept = [
            row
            for row in callback.message.reply_markup.inline_keyboard
            if not any(
                b.callback_data and b.callback_data.startswith(FeedbackCb.__prefix__) for b in row
            )
        ]
        if kept != callback.message.reply_markup.inline_keyboard:  # unchanged: pressed twice
            await callback.message.edit_reply_markup(
                reply_markup=InlineKeyboardMarkup(inline_keyboard=kept) if kept else None
            )
